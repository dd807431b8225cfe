-- Outbound documents (issue 13, "Send"): an agency's eOffice submits a document, the gateway
-- sends one copy per receiver to the axis (sendEdoc with to = [receiver]).
--
-- The document itself is a `documents` row with direction 'outbound' (its columns as for an
-- inbound one: sender_code is the sending agency, edxml the package as built, dedup_key
-- 'outbound:<sender>:<DocumentId>'), its files are `attachments` rows. Its state
-- (gateway.outbound.states): QUEUED while a copy waits for the axis; then SENT (every copy
-- accepted), PARTLY_FAILED (some accepted, some refused) or FAILED (every copy refused).
--
-- One row per receiver: the copy's own state, so that one bad receiver never fails the others.
--   QUEUED   in the outbox; `attempts` sendEdoc calls begun so far, `last_error` the last
--            transient failure (the relay retries with backoff)
--   SENT     the axis accepted it: `axis_doc_id` is the axis's DocId, `sent_at` when
--   FAILED   the axis refused it for good: `error_code`/`error_desc` are the axis's ErrorCode
--            and ErrorDesc, `failed_at` when; never sent again
-- `edxml_sha256` is the SHA-256 (hex) of the package sent: a copy whose sendEdoc may have
-- reached the axis (attempts > 0, no DocId recorded) is first looked for at the axis by it, so
-- a crash between sendEdoc and the commit of its DocId never sends a second copy.
CREATE TABLE outbound_sends (
    id            uuid PRIMARY KEY,
    document_id   uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    receiver_code text NOT NULL,
    axis          text NOT NULL,                 -- axis connection name
    state         text NOT NULL DEFAULT 'QUEUED' CHECK (state IN ('QUEUED', 'SENT', 'FAILED')),
    attempts      integer NOT NULL DEFAULT 0,
    edxml_sha256  text NOT NULL,
    axis_doc_id   text,
    error_code    text,
    error_desc    text,
    last_error    text,
    attempted_at  timestamptz,
    sent_at       timestamptz,
    failed_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, receiver_code)
);
CREATE INDEX outbound_sends_state ON outbound_sends (state, created_at);

-- A submission's idempotency: (sending agency, Idempotency-Key — or 'document-id:' and the
-- DocumentId when the request carried no key). The same key with the same request (digest of
-- the metadata and the files) answers the first submission's `response`; with another request
-- it is refused (409 IDEMPOTENCY_KEY_REUSED).
CREATE TABLE outbound_idempotency (
    agency_code     text NOT NULL,
    idempotency_key text NOT NULL,
    request_sha256  text NOT NULL,
    document_id     uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_code, idempotency_key)
);
