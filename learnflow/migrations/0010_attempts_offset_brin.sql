-- The btree on (kafka_partition, kafka_offset) served one read: the students a partition's
-- events above an offset name, when a restarted shard finds Redis behind PostgreSQL. Every
-- attempt row paid for it on the hot path: 1.3-1.7 µs of PostgreSQL CPU of the 5.5-6 a row
-- costs with it. Rows go in in offset order per partition and the partitions move on together,
-- so a block range index on the offset finds the recent rows for almost nothing per row (ranges
-- not yet summarized are always read: the newest rows are never missed).
DROP INDEX attempts_source;
CREATE INDEX attempts_offset_brin ON attempts USING brin (kafka_offset);
