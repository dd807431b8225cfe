-- Tracking outbound copies (issue 13, "Tracking"): what each receiver did with its copy.
--
-- Business statuses back (QCVN 102 status messages 01-06, 15, 16, any code): a status from a
-- RECEIVER of one of our outbound documents (From = the copy's receiver, ResponseFor = our
-- sender and DocumentId) is stored in status_events as before and, on that receiver's copy,
-- as its latest business status (by the message's Timestamp; a late 01 never hides a 03):
--   status_code, status_description, status_staff (StaffInfo as JSON), status_at (the
--   message's Timestamp), status_received_at (when the gateway took it).
-- A status from an agency that is not a receiver is kept unmatched (status_events.problem
-- STATUS_NOT_FROM_RECEIVER), never attached.
--
-- Forwarded to the sending eOffice exactly once: one delivery of kind 'status' per status
-- event (deliveries.status_event_id), on the sending agency's queue. Deliveries of the other
-- kinds stay one per document, agency and kind.
--
-- Axis receive state (getSentEdocList, polled while it matters):
--   axis_send_status / axis_send_status_desc, axis_receive_status / axis_receive_status_desc
--     as the axis reports them (opaque, bounded);
--   axis_sent_time / axis_received_time the axis's own times, as text (its format varies);
--   axis_received_at when the gateway first saw the copy received (receiveStatus done);
--   axis_checks, axis_checked_at, axis_next_check_at: the polling schedule;
--   axis_tracking: ACTIVE (polled while SENT), DONE (received or refused at the axis, or a
--     business status came back), EXPIRED (outbound.track_for passed), STOPPED (the axis
--     refused the question for good, e.g. an unknown DocId).
ALTER TABLE outbound_sends
    ADD COLUMN status_code               text,
    ADD COLUMN status_description        text,
    ADD COLUMN status_staff              jsonb,
    ADD COLUMN status_at                 timestamptz,
    ADD COLUMN status_received_at        timestamptz,
    ADD COLUMN axis_send_status          text,
    ADD COLUMN axis_send_status_desc     text,
    ADD COLUMN axis_receive_status       text,
    ADD COLUMN axis_receive_status_desc  text,
    ADD COLUMN axis_sent_time            text,
    ADD COLUMN axis_received_time        text,
    ADD COLUMN axis_received_at          timestamptz,
    ADD COLUMN axis_checks               integer NOT NULL DEFAULT 0,
    ADD COLUMN axis_checked_at           timestamptz,
    ADD COLUMN axis_next_check_at        timestamptz,
    ADD COLUMN axis_tracking             text NOT NULL DEFAULT 'ACTIVE'
        CHECK (axis_tracking IN ('ACTIVE', 'DONE', 'EXPIRED', 'STOPPED'));
CREATE INDEX outbound_sends_tracked ON outbound_sends (axis, axis_next_check_at)
    WHERE state = 'SENT' AND axis_tracking = 'ACTIVE';

ALTER TABLE deliveries
    ADD COLUMN status_event_id bigint REFERENCES status_events(id) ON DELETE CASCADE;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('document', 'revoke', 'update', 'replace', 'take_back', 'status'));
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_event
    CHECK ((kind = 'status') = (status_event_id IS NOT NULL));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_document_agency_kind;
CREATE UNIQUE INDEX deliveries_document_agency_kind ON deliveries (document_id, agency_code, kind)
    WHERE status_event_id IS NULL;
CREATE UNIQUE INDEX deliveries_status_agency ON deliveries (status_event_id, agency_code)
    WHERE status_event_id IS NOT NULL;
