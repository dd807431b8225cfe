-- The axis relay claims only the oldest outbox row of each document (statuses in order).
CREATE INDEX outbox_document_order ON outbox (destination, document_id, id)
    WHERE document_id IS NOT NULL;
