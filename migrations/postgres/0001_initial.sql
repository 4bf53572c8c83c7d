-- ivr-auth schema, PostgreSQL dialect, version 1.
-- Created in the first schema of the connection's search_path. Times are
-- timestamptz kept to the millisecond; job times come from the database's
-- clock (now()), so the nodes' clocks never decide who holds a lease.

CREATE TABLE IF NOT EXISTS server_secret (
    id      integer PRIMARY KEY CHECK (id = 1),
    secret  bytea NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    id                        uuid PRIMARY KEY,
    name                      text NOT NULL UNIQUE,
    key_id                    text NOT NULL UNIQUE,
    key_hash                  bytea NOT NULL,          -- SHA-256 of the key's secret half
    callback_secret           text NOT NULL,
    previous_callback_secret  text,
    previous_until            timestamptz,
    created_at                timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_requests (
    id              uuid PRIMARY KEY,                -- UUIDv7: time-ordered, cheap to insert
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    external_id     text,
    fingerprint     bytea NOT NULL,                  -- keyed hash of the registration body
    mode            text NOT NULL,
    phone_number    text NOT NULL,                   -- E.164
    code_hash       bytea NOT NULL,                  -- HMAC-SHA256(server key, id, code)
    code_salt       bytea,                           -- generated codes only
    code_length     smallint NOT NULL,
    user_id         text,
    locale          text NOT NULL,
    max_attempts    smallint NOT NULL,
    attempts        smallint NOT NULL DEFAULT 0,
    no_input_count  smallint NOT NULL DEFAULT 0,
    callback_url    text,
    status          text NOT NULL,
    failure_reason  text,
    call_sid        text,
    call_status     text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    verified_at     timestamptz,
    terminal        boolean NOT NULL DEFAULT false,
    -- Counts the writes of the row (for operators; writes lock the row).
    version         bigint NOT NULL DEFAULT 0,
    -- The id of the batch that last wrote the row: a batch retried after a
    -- lost connection recognises its own earlier commit instead of applying twice.
    last_op         uuid
);

CREATE UNIQUE INDEX IF NOT EXISTS auth_requests_external_id
    ON auth_requests (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS auth_requests_inbound
    ON auth_requests (phone_number, created_at) WHERE mode = 'inbound' AND status = 'pending';
CREATE INDEX IF NOT EXISTS auth_requests_call_sid
    ON auth_requests (call_sid) WHERE call_sid IS NOT NULL;
CREATE INDEX IF NOT EXISTS auth_requests_open_expiry
    ON auth_requests (expires_at) WHERE NOT terminal;
CREATE INDEX IF NOT EXISTS auth_requests_finished
    ON auth_requests (updated_at) WHERE terminal;
CREATE INDEX IF NOT EXISTS auth_requests_phone_created
    ON auth_requests (phone_number, created_at);
CREATE INDEX IF NOT EXISTS auth_requests_tenant
    ON auth_requests (tenant_id);

CREATE TABLE IF NOT EXISTS jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    request_id    uuid NOT NULL,
    payload       text NOT NULL,
    run_at        timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    lease_owner   uuid,                              -- token of the claim holding the lease
    lease_until   timestamptz,
    dead          boolean NOT NULL DEFAULT false,    -- gave up; kept for the operator
    last_error    text,
    created_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (run_at) WHERE NOT dead;

-- Servers alive on this database: limits that hold across servers share
-- themselves out by their number.
CREATE TABLE IF NOT EXISTS nodes (
    id          uuid PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);

-- A job that any runner may take now wakes the runners of every server
-- (LISTEN ivr_auth_jobs); the payload names the schema, so installations
-- that share a database ignore each other's jobs.
CREATE OR REPLACE FUNCTION ivr_auth_job_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ivr_auth_jobs', current_schema());
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jobs_added ON jobs;
CREATE TRIGGER jobs_added AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.lease_owner IS NULL AND NEW.run_at <= NEW.created_at)
    EXECUTE FUNCTION ivr_auth_job_added();
