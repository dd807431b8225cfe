-- The first schema of the gateway: directory, documents and their parts, deliveries,
-- business statuses, the transactional outbox, consumer deduplication, audit, API clients.

CREATE TABLE agencies (
    code        text PRIMARY KEY,              -- OrganId (mã định danh)
    code102     text,
    name        text NOT NULL DEFAULT '',
    parent_code text,
    email       text,
    served      boolean NOT NULL DEFAULT false, -- this gateway serves its eOffice
    axis        text,                           -- axis connection name
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id                 uuid PRIMARY KEY,
    direction          text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    dedup_key          text NOT NULL UNIQUE,     -- e.g. inbound:<DocumentId> or inbound-raw:<sha256>
    edxml_document_id  text,                     -- MessageHeader/DocumentId, opaque
    axis               text,                     -- axis connection name
    axis_doc_id        text,                     -- the axis' own docId
    sender_code        text,
    sender_name        text,
    code_number        text,
    code_notation      text,
    subject            text,
    type_name          text,
    promulgation_date  date,
    due_date           date,
    priority           integer,
    bussiness_doc_type integer NOT NULL DEFAULT 0,
    state              text NOT NULL,
    reject_code        text,
    reject_reason      text,
    signature_verdict  text,                     -- valid | invalid | indeterminate | unsigned
    correlation_id     text NOT NULL,
    header             jsonb NOT NULL DEFAULT '{}'::jsonb,
    edxml_sha256       text,
    edxml              bytea,                    -- the package as received/sent, kept for inspection
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_edxml_document_id ON documents (edxml_document_id);
CREATE INDEX documents_state ON documents (direction, state);
CREATE INDEX documents_created ON documents (created_at DESC);

CREATE TABLE attachments (
    id           uuid PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    content_id   text,
    name         text NOT NULL,
    description  text,
    content_type text,
    size         bigint NOT NULL,
    sha256       text NOT NULL,
    data         bytea NOT NULL,
    UNIQUE (document_id, ordinal)
);

CREATE TABLE signature_reports (
    id            uuid PRIMARY KEY,
    document_id   uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    attachment_id uuid REFERENCES attachments(id) ON DELETE CASCADE,
    verdict       text NOT NULL,
    summary       text,
    report        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signature_reports_document ON signature_reports (document_id);

-- One delivery per receiving agency that this gateway serves.
CREATE TABLE deliveries (
    id            uuid PRIMARY KEY,
    document_id   uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    agency_code   text NOT NULL,
    message_id    uuid NOT NULL UNIQUE,          -- stable id of the queue message (dedup key)
    state         text NOT NULL DEFAULT 'PENDING'
                  CHECK (state IN ('PENDING', 'PUBLISHED', 'RETRYING', 'DELIVERED', 'DEAD')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz,
    last_error    text,
    published_at  timestamptz,
    delivered_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, agency_code)
);
CREATE INDEX deliveries_state ON deliveries (state, agency_code);

-- Business statuses (edXML status messages), in both directions.
CREATE TABLE status_events (
    id           bigserial PRIMARY KEY,
    document_id  uuid REFERENCES documents(id) ON DELETE CASCADE,
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    agency_code  text,                            -- the reporting agency (From)
    status_code  text NOT NULL,
    description  text,
    staff        jsonb,
    occurred_at  timestamptz NOT NULL,
    dedup_key    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_events_document ON status_events (document_id, occurred_at);

-- Transport timeline of a document: one row per state change or notable event.
CREATE TABLE document_events (
    id           bigserial PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    event        text NOT NULL,
    agency_code  text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX document_events_document ON document_events (document_id, at);

-- Transactional outbox: every message that must leave is a row committed with the state change.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    message_id    uuid NOT NULL UNIQUE,
    destination   text NOT NULL,                  -- 'amqp' or 'axis:<connection>'
    exchange      text NOT NULL DEFAULT '',
    routing_key   text NOT NULL DEFAULT '',
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    content_type  text NOT NULL DEFAULT 'application/json',
    body          bytea NOT NULL,
    correlation_id text,
    document_id   uuid,
    delivery_id   uuid,
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_ready ON outbox (destination, available_at, id);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('edoc_outbox', NEW.destination);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_notify();

-- Messages a consumer has already handled (effectively-once on top of at-least-once).
CREATE TABLE processed_messages (
    consumer     text NOT NULL,
    message_id   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Append-only audit log; each entry hashes the previous one (tamper evidence).
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash  text NOT NULL,
    hash       text NOT NULL UNIQUE
);

CREATE TABLE api_clients (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,            -- sha256 of the bearer token
    token_prefix text NOT NULL,                   -- first characters, to recognise a token in lists
    role         text NOT NULL CHECK (role IN ('eoffice', 'officer', 'operator', 'admin', 'axis')),
    agencies     text[] NOT NULL DEFAULT '{}',
    key_aliases  text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
