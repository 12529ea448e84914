-- Attempt history: one row per attempt.graded event, the source every state can be rebuilt from.
-- event_id is the idempotency key, so replays insert nothing twice.
CREATE TABLE attempts (
    event_id       uuid PRIMARY KEY,
    student_id     text        NOT NULL CHECK (length(student_id) BETWEEN 1 AND 64),
    exercise_id    text        NOT NULL CHECK (length(exercise_id) BETWEEN 1 AND 64),
    components     text[]      NOT NULL CHECK (cardinality(components) >= 1),
    passed         boolean     NOT NULL,
    score          double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    tests_passed   integer     NOT NULL CHECK (tests_passed >= 0),
    tests_total    integer     NOT NULL CHECK (tests_total >= 1 AND tests_passed <= tests_total),
    duration_ms    integer     NOT NULL CHECK (duration_ms >= 0),
    submitted_at   timestamptz NOT NULL,
    kafka_partition integer    NOT NULL,
    kafka_offset   bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX attempts_student_time ON attempts (student_id, submitted_at);
CREATE INDEX attempts_source ON attempts (kafka_partition, kafka_offset);
