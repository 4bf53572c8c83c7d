-- Version 11: the webhooks' writes of a request leave its indexes alone
-- (issue 18). PostgreSQL rewrites a row on every update; when no indexed
-- column changed and the row's page has room, the new version stays on the
-- page (a HOT update) and no index gets a new entry. Before this version every
-- update changed an indexed column (status, updated_at), so each one added an
-- entry to all eleven indexes of the table. Now only the updates that name
-- the call (call_sid) or end the request (terminal) do.

-- auth_requests_tenant_created leads with the same column.
DROP INDEX IF EXISTS auth_requests_tenant;

-- Inbound requests still open, by number: the pending ones are among them
-- (the query asks for both), and a change of status no longer touches it.
CREATE INDEX IF NOT EXISTS auth_requests_inbound_open
    ON auth_requests (phone_number, created_at) WHERE mode = 'inbound' AND NOT terminal;
DROP INDEX IF EXISTS auth_requests_inbound;

-- Finished requests by expiry, for the retention purge: expires_at never
-- changes. The purge still asks for updated_at before the cut-off, so it never
-- deletes a request sooner than before; one that ended early is kept at most
-- its time to live longer.
CREATE INDEX IF NOT EXISTS auth_requests_ended ON auth_requests (expires_at) WHERE terminal;
DROP INDEX IF EXISTS auth_requests_finished;

-- Room on each page for the new versions of its rows.
ALTER TABLE auth_requests SET (fillfactor = 80);
