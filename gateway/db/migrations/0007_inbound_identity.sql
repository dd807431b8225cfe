-- A package is a duplicate only when its content is the same (issue 11, item 4).
-- One stored package owns an identity (conflicts_with NULL): the unique index makes a second
-- owner's INSERT do nothing, and intake then looks at what owns it (no lock, no extra query on
-- the common path).
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
CREATE UNIQUE INDEX documents_identity_owner ON documents (identity_key)
    WHERE identity_key IS NOT NULL AND conflicts_with IS NULL;
