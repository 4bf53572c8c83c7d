-- Version 13: only inbound requests are found by their call sid (issue 18).
-- The status callback set on an inbound number is the one webhook that names
-- a call without its request: an outbound call's webhooks carry the request
-- id in their URLs. While an index named call_sid, the update that records
-- an outbound call's sid changed an indexed column, so it could not be a HOT
-- update: it added an entry to every index of the table whose condition the
-- row meets. Now the only indexed copy is this generated column, which stays
-- NULL for outbound requests. It is generated, so no statement that writes a
-- request names it, and nodes of the version before, during a rolling
-- upgrade, write requests that are indexed right. Adding a stored generated
-- column rewrites the table once.
ALTER TABLE auth_requests ADD COLUMN IF NOT EXISTS inbound_call_sid text
    GENERATED ALWAYS AS (CASE WHEN mode = 'inbound' THEN call_sid END) STORED;
CREATE INDEX IF NOT EXISTS auth_requests_inbound_call_sid
    ON auth_requests (inbound_call_sid) WHERE inbound_call_sid IS NOT NULL;
DROP INDEX IF EXISTS auth_requests_call_sid;
