-- A checkpoint of a few events in one round trip. At a steady rate a checkpoint carries a few
-- events, and the transaction of migration 0005 (BEGIN, lock the watermarks, COPY the rows,
-- move the watermarks, COMMIT) was six round trips for them: the client and the server spent
-- more on the trips than on the rows. This function does the same steps in one call, so one
-- statement (its own transaction) records a small checkpoint; a backlog's large checkpoints
-- still go through COPY. The rows come as a JSON array of objects named like the columns.
CREATE FUNCTION record_checkpoint(
    p_topic text, p_partitions integer[], p_last_offsets bigint[], p_rows jsonb
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Lock each partition's watermark (made at -1 if new) and record the rows above it: every
    -- row at or below it was recorded by the checkpoint that moved it there.
    WITH marks AS (
        INSERT INTO partition_checkpoints AS c (topic, partition, kafka_offset)
        SELECT p_topic, p, -1 FROM unnest(p_partitions) AS p
        ON CONFLICT (topic, partition) DO UPDATE SET kafka_offset = c.kafka_offset
        RETURNING c.partition, c.kafka_offset
    )
    INSERT INTO attempts (
        event_id, student_id, exercise_id, components, passed, score, tests_passed,
        tests_total, duration_ms, submitted_at, kafka_partition, kafka_offset, model_version,
        mastery
    )
    SELECT r.event_id, r.student_id, r.exercise_id, r.components, r.passed, r.score,
           r.tests_passed, r.tests_total, r.duration_ms, r.submitted_at, r.kafka_partition,
           r.kafka_offset, r.model_version, r.mastery
    FROM jsonb_to_recordset(p_rows) AS r(
        event_id uuid, student_id text, exercise_id text, components text[], passed boolean,
        score double precision, tests_passed integer, tests_total integer, duration_ms integer,
        submitted_at timestamptz, kafka_partition integer, kafka_offset bigint,
        model_version integer, mastery double precision[]
    )
    JOIN marks AS m ON m.partition = r.kafka_partition
    WHERE r.kafka_offset > m.kafka_offset;

    UPDATE partition_checkpoints AS c SET kafka_offset = m.kafka_offset, updated_at = now()
    FROM unnest(p_partitions, p_last_offsets) AS m(partition, kafka_offset)
    WHERE c.topic = p_topic AND c.partition = m.partition AND c.kafka_offset < m.kafka_offset;
END
$$;
