-- The outbox relay leases the rows it sends (gateway.bus.relay). A lease is written to
-- leased_until, a column no index covers, so that the update stays on its page (a HOT update:
-- no new entry in the four outbox indexes, as a lease written to the indexed available_at
-- would need); the table keeps half of each page free for those new row versions (a queue
-- table: rows live seconds). Stop every gateway of the older version before migrating: it
-- claims rows without looking at leases.
ALTER TABLE outbox ADD COLUMN leased_until timestamptz;
ALTER TABLE outbox SET (fillfactor = 50);
