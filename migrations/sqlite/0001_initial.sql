-- ivr-auth schema, SQLite dialect, version 1 (migrations/sqlite/ holds the later steps).
-- Times are INTEGER milliseconds since the Unix epoch (UTC); ids are 16-byte UUIDs.
-- Applied by the server at start-up; `ivr-auth migrate` applies it alone.

CREATE TABLE IF NOT EXISTS server_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    id                        BLOB PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    key_id                    TEXT NOT NULL UNIQUE,
    key_hash                  BLOB NOT NULL,          -- SHA-256 of the key's secret half
    callback_secret           TEXT NOT NULL,
    previous_callback_secret  TEXT,
    previous_until            INTEGER,
    created_at                INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_requests (
    id              BLOB PRIMARY KEY,                -- UUIDv7: time-ordered, cheap to insert
    tenant_id       BLOB NOT NULL REFERENCES tenants(id),
    external_id     TEXT,
    fingerprint     BLOB NOT NULL,                   -- keyed hash of the registration body
    mode            TEXT NOT NULL,
    phone_number    TEXT NOT NULL,                   -- E.164
    code_hash       BLOB NOT NULL,                   -- HMAC-SHA256(server key, id, code)
    code_salt       BLOB,                            -- generated codes only
    code_length     INTEGER NOT NULL,
    user_id         TEXT,
    locale          TEXT NOT NULL,
    max_attempts    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    no_input_count  INTEGER NOT NULL DEFAULT 0,
    callback_url    TEXT,
    status          TEXT NOT NULL,
    failure_reason  TEXT,
    call_sid        TEXT,
    call_status     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    verified_at     INTEGER,
    terminal        INTEGER NOT NULL DEFAULT 0       -- 1 once the status is terminal
) WITHOUT ROWID;

CREATE UNIQUE INDEX IF NOT EXISTS auth_requests_external_id
    ON auth_requests (tenant_id, external_id) WHERE external_id IS NOT NULL;
-- Inbound matching: the newest pending inbound request for a caller ID.
CREATE INDEX IF NOT EXISTS auth_requests_inbound
    ON auth_requests (phone_number, created_at) WHERE mode = 'inbound' AND status = 'pending';
CREATE INDEX IF NOT EXISTS auth_requests_call_sid
    ON auth_requests (call_sid) WHERE call_sid IS NOT NULL;
-- The expiry sweeper and the retention purge.
CREATE INDEX IF NOT EXISTS auth_requests_open_expiry
    ON auth_requests (expires_at) WHERE terminal = 0;
CREATE INDEX IF NOT EXISTS auth_requests_finished
    ON auth_requests (updated_at) WHERE terminal = 1;

CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    request_id    BLOB NOT NULL,
    payload       TEXT NOT NULL,
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    dead          INTEGER NOT NULL DEFAULT 0,        -- gave up; kept for the operator
    last_error    TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (run_at) WHERE dead = 0;
