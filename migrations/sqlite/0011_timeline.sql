-- Version 11: one request's timeline, and searching a tenant's requests (issue 17).
-- Each change a webhook, the site or the clock made, written in its commit,
-- and each delivery attempt of the result callback; `detail` JSON text, `at`
-- in ms. Purged with the request. One B-tree (no rowid): an entry the same
-- as another in every column (the same ms) says nothing more and is kept once.
CREATE TABLE IF NOT EXISTS request_events (
    request_id BLOB NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (request_id, at, kind, detail)
) WITHOUT ROWID;
-- The funnel's purge goes per tenant along request_steps_tenant: one index
-- fewer to keep up on every step written.
DROP INDEX IF EXISTS request_steps_at;
-- The console's search: a tenant's requests, newest first, and by user id.
CREATE INDEX IF NOT EXISTS auth_requests_tenant_created ON auth_requests (tenant_id, created_at);
CREATE INDEX IF NOT EXISTS auth_requests_tenant_user
    ON auth_requests (tenant_id, user_id, created_at) WHERE user_id IS NOT NULL;
