-- Weekly aggregates are read from the attempt rows instead of being upserted by every
-- checkpoint: an attempt row now carries each component's P(mastered) right after it
-- (`mastery`, in the order of `components`), and `weekly_mastery` becomes a view that groups
-- them. A checkpoint writes one row per event and nothing else, and a week's figures cannot
-- drift from the history they are made of. A read names a student (or a few), whose rows the
-- (student_id, submitted_at) index finds.
--
-- Rows recorded before this migration have no `mastery`; their weeks stay in the table the
-- checkpoints filled until now, which the view adds in (a week recorded on both sides of the
-- migration is summed, its P(mastered) taken from the later attempt).
ALTER TABLE attempts ADD COLUMN mastery double precision[]
    CHECK (mastery IS NULL OR cardinality(mastery) = cardinality(components));

ALTER TABLE weekly_mastery RENAME TO weekly_mastery_until_0008;

CREATE VIEW weekly_mastery AS
SELECT student_id, component, iso_year, iso_week,
       sum(attempts)::integer AS attempts,
       sum(correct)::integer AS correct,
       (array_agg(p_mastered ORDER BY last_offset DESC))[1] AS p_mastered,
       max(last_offset) AS last_offset
FROM (
    SELECT a.student_id, step.component,
           extract(isoyear FROM a.submitted_at AT TIME ZONE 'UTC')::integer AS iso_year,
           extract(week FROM a.submitted_at AT TIME ZONE 'UTC')::integer AS iso_week,
           1 AS attempts, a.passed::integer AS correct, step.p_mastered,
           a.kafka_offset AS last_offset
    FROM attempts AS a
    CROSS JOIN LATERAL unnest(a.components, a.mastery) AS step(component, p_mastered)
    WHERE a.mastery IS NOT NULL
    UNION ALL
    SELECT student_id, component, iso_year, iso_week, attempts, correct, p_mastered, last_offset
    FROM weekly_mastery_until_0008
) AS steps
GROUP BY student_id, component, iso_year, iso_week;
