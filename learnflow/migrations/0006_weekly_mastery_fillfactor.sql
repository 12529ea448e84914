-- A checkpoint updates each weekly row its steps touch, in place of the row it had. With pages
-- filled to the brim every update moved the row to another page and added an entry to the
-- primary key; room left in each page lets most updates stay on their page (heap-only tuples),
-- with no index write. Rows written from now on get the room.
ALTER TABLE weekly_mastery SET (fillfactor = 75);
