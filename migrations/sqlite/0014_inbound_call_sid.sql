-- Version 14: only inbound requests are found by their call sid (issue 18).
-- The status callback set on an inbound number is the one webhook that names
-- a call without its request: an outbound call's webhooks carry the request
-- id in their URLs. Indexing every request's call sid cost each outbound
-- call an index entry on a random leaf, one more page in its commit. The
-- column is generated, so no statement that writes a request names it, and a
-- server of the version before writes requests that are indexed right.
ALTER TABLE auth_requests ADD COLUMN inbound_call_sid TEXT
    GENERATED ALWAYS AS (CASE WHEN mode = 'inbound' THEN call_sid END) VIRTUAL;
CREATE INDEX IF NOT EXISTS auth_requests_inbound_call_sid
    ON auth_requests (inbound_call_sid) WHERE inbound_call_sid IS NOT NULL;
DROP INDEX IF EXISTS auth_requests_call_sid;
