-- Weekly mastery aggregate per (student, component, ISO week), upserted at each checkpoint.
CREATE TABLE weekly_mastery (
    student_id   text    NOT NULL,
    component    text    NOT NULL,
    iso_year     integer NOT NULL,
    iso_week     integer NOT NULL CHECK (iso_week BETWEEN 1 AND 53),
    attempts     integer NOT NULL CHECK (attempts >= 0),
    correct      integer NOT NULL CHECK (correct >= 0 AND correct <= attempts),
    p_mastered   double precision NOT NULL CHECK (p_mastered >= 0 AND p_mastered <= 1),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, component, iso_year, iso_week)
);
