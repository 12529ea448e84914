-- Replay guards for the checkpoint. A student lives on one partition, so Kafka offsets order each
-- student's events: a weekly row counts only events above its last_offset, and each partition's
-- checkpoint says how far PostgreSQL has recorded (to detect and repair a Redis that lost data).
ALTER TABLE weekly_mastery ADD COLUMN last_offset bigint NOT NULL DEFAULT -1;

CREATE TABLE partition_checkpoints (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    kafka_offset bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
