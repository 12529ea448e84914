-- A checkpoint records only the attempts above its partition's watermark, which it moves on in
-- the same transaction, so a replay inserts nothing twice without a unique index on event_id
-- (a B-tree insert at a random place for every row). Reads go by student or by source offset.
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
