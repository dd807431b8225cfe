-- A package is a duplicate only when its content is the same (issue 11, item 4).
-- identity_key: who says it and which document (sender + DocumentId; for a business action
-- also the action and its content). content_sha256: the business content (header without the
-- trace hops and receivers, plus the attachments' SHA-256). A second package under a known
-- identity with other content is kept in state CONFLICT, linked to the first by conflicts_with.
-- Rows stored before this migration have no content_sha256: a repeat of their identity is a
-- duplicate, as it was when they arrived.
ALTER TABLE documents
    ADD COLUMN identity_key   text,
    ADD COLUMN content_sha256 text,
    ADD COLUMN conflicts_with uuid REFERENCES documents(id);
UPDATE documents SET identity_key = dedup_key
 WHERE direction = 'inbound' AND dedup_key LIKE 'inbound:%';
CREATE INDEX documents_identity ON documents (identity_key) WHERE identity_key IS NOT NULL;
