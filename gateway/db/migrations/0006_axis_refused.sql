-- Axis items the gateway refused as malformed (gateway.refused): an axis that keeps listing an
-- item after updateStatus(fail) must not make the poller download, parse and fail it on every
-- round. The poller skips an item recorded here (by axis connection and axis docId), counts it
-- as nothing new for its idle back-off, and only repeats the `fail` acknowledgement until the
-- axis took one. Operators list the rows (GET /v1/axis/refused).
CREATE TABLE axis_refused (
    axis         text NOT NULL,                 -- axis connection name
    axis_doc_id  text NOT NULL,                 -- the axis' own docId
    message_type text NOT NULL,                 -- edoc | status
    sha256       text NOT NULL,                 -- of the package as downloaded
    code         text NOT NULL,                 -- the EDXML_* reason it was refused
    document_id  uuid,                          -- the REJECTED documents row, if any
    acked        boolean NOT NULL DEFAULT false, -- the axis accepted updateStatus(fail)
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    seen_count   integer NOT NULL DEFAULT 1,    -- listings by the axis, the first included
    PRIMARY KEY (axis, axis_doc_id)
);
CREATE INDEX axis_refused_last_seen ON axis_refused (last_seen DESC);
