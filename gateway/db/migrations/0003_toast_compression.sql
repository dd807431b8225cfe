-- Large values are already compressed (PDF, zip, base64 of zip) or short-lived (outbox):
-- PostgreSQL's default pglz tries to compress every value over 2 KB and, on such data, spends
-- ~3 ms of server CPU per received document to give up (measured: 3.8 ms with pglz, 1.0 ms with
-- lz4, 0.8 ms uncompressed for a 117 KB package plus its 100 KB PDF). lz4 gives up fast and
-- still shrinks what does compress (text attachments, JSON). Servers built without lz4 keep
-- pglz for JSON and store the large binary columns uncompressed.
DO $$
BEGIN
    ALTER TABLE documents ALTER COLUMN edxml SET COMPRESSION lz4;
    ALTER TABLE attachments ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE signature_reports ALTER COLUMN report SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    ALTER TABLE documents ALTER COLUMN edxml SET STORAGE EXTERNAL;
    ALTER TABLE attachments ALTER COLUMN data SET STORAGE EXTERNAL;
END
$$;
