-- Version 9: the audit trail and the funnel (issue 17).
-- Audit events are inserted unsealed (seq and hash NULL) in the commit of the
-- change they tell of; the sealer links them afterwards, per chain, in id order.
-- `chain` is the tenant id (text) or 'server'; `at` in ms; `data` JSON text.
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain TEXT NOT NULL,
    kind TEXT NOT NULL,
    tenant_id BLOB,
    request_id BLOB,
    at INTEGER NOT NULL,
    data TEXT NOT NULL,
    seq INTEGER,
    hash BLOB
);
CREATE INDEX IF NOT EXISTS audit_events_tenant ON audit_events (tenant_id, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_unsealed ON audit_events (id) WHERE seq IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain_seq ON audit_events (chain, seq) WHERE seq IS NOT NULL;
-- Each chain's head (its last sealed event) and anchor (its last purged one).
CREATE TABLE IF NOT EXISTS audit_chains (
    chain TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    anchor_seq INTEGER NOT NULL,
    anchor_hash BLOB NOT NULL
);
-- The funnel: each step a request reached (`detail`: a failure reason, right/wrong).
CREATE TABLE IF NOT EXISTS request_steps (
    request_id BLOB NOT NULL,
    tenant_id BLOB NOT NULL,
    step TEXT NOT NULL,
    detail TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS request_steps_tenant ON request_steps (tenant_id, at);
CREATE INDEX IF NOT EXISTS request_steps_at ON request_steps (at);
