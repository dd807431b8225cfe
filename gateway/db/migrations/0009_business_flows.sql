-- Business flows received from other agencies (issue 13, receiving side; QCVN 102:2016
-- TraceHeaderList/Bussiness and status 13/15/16; Decree 30/2020 Art. 18).
--
-- documents.original_id: a revoke (BussinessDocType 1), update (2) or replace (3) package is
--   stored as its own inbound row (its package, files and signature reports) LINKED to the
--   original inbound document of the same sender it names; the original's state moves to
--   REVOKED / UPDATED / REPLACED (documents.state has no CHECK: states are documented in
--   gateway/business/flow_rules.py). A replace naming several documents links the first here
--   and every one in document_events.
-- documents.take_back: a take-back request (status 13) from the original sender: PENDING until
--   an eOffice answers, then AGREED (15; the document becomes TAKEN_BACK) or REFUSED (16).
-- deliveries.kind: what a delivery carries to the agency's eOffice: the document itself, or a
--   typed business message about it (revoke, update, replace on the action's row; take_back on
--   the original's row). One delivery per document, agency and kind.
-- status_events.problem: why a status message from the axis was kept unmatched for an
--   operator (BUSINESS_ORIGINAL_UNKNOWN, BUSINESS_NOT_ORIGINAL_SENDER).
ALTER TABLE documents
    ADD COLUMN original_id uuid REFERENCES documents(id),
    ADD COLUMN take_back   text CHECK (take_back IN ('PENDING', 'AGREED', 'REFUSED'));
CREATE INDEX documents_original ON documents (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX documents_sender_document ON documents (sender_code, edxml_document_id)
    WHERE direction = 'inbound';

ALTER TABLE deliveries
    ADD COLUMN kind text NOT NULL DEFAULT 'document'
        CHECK (kind IN ('document', 'revoke', 'update', 'replace', 'take_back'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_document_id_agency_code_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_document_agency_kind
    UNIQUE (document_id, agency_code, kind);

ALTER TABLE status_events ADD COLUMN problem text;
CREATE INDEX status_events_unmatched ON status_events (created_at DESC)
    WHERE document_id IS NULL;
