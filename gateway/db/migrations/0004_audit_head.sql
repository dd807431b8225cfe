-- The audit chain's head in a one-row table, so that appending an entry is ONE statement
-- (gateway.db.audit.append): an UPDATE of this row computes the next hash from the previous one
-- and takes the row lock that keeps the chain linear (it replaces a transaction-level advisory
-- lock, a SELECT of the last hash and an INSERT: three round trips per entry). Under READ
-- COMMITTED a waiting UPDATE re-reads the row its predecessor committed, so no two entries
-- share a predecessor. Stop every gateway of the older version before migrating: they append
-- without updating the head.
CREATE TABLE audit_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);

INSERT INTO audit_head (prev_hash, hash)
SELECT coalesce(last.prev_hash, repeat('0', 64)), coalesce(last.hash, repeat('0', 64))
FROM (SELECT NULL) AS one
LEFT JOIN (SELECT prev_hash, hash FROM audit_log ORDER BY id DESC LIMIT 1) AS last ON true;
