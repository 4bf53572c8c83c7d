-- Version 12: most writes of a request leave its indexes alone (issue 18).
-- SQLite rewrites an index entry on every update that assigns a column the
-- index names (in its key or its WHERE). Every update assigned status and
-- updated_at, named by the inbound and the purge indexes. Now the indexes
-- name, of what changes, only call_sid and terminal, and the update assigns
-- those two only when they change (`rows::update_request`).

-- Inbound requests still open, by number: the pending ones are among them
-- (the query asks for both, in these words).
CREATE INDEX IF NOT EXISTS auth_requests_inbound_open
    ON auth_requests (phone_number, created_at) WHERE mode = 'inbound' AND NOT terminal;
DROP INDEX IF EXISTS auth_requests_inbound;

-- Finished requests by expiry, for the retention purge (which also asks for
-- updated_at before the cut-off): expires_at never changes.
CREATE INDEX IF NOT EXISTS auth_requests_ended ON auth_requests (expires_at) WHERE terminal = 1;
DROP INDEX IF EXISTS auth_requests_finished;
