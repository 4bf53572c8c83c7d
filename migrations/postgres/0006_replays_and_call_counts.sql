-- Version 6: what every server must remember together.
-- Signed site requests and sealed hold tokens already used, each kept as
-- long as it could still be accepted (a digest, never the token itself).
CREATE TABLE IF NOT EXISTS used_tokens (
    digest BYTEA PRIMARY KEY,
    until TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS used_tokens_until ON used_tokens (until);
-- Outbound registrations per tenant, budget and time bucket: an upper bound
-- of a call budget's use that one registration reads cheaply, in the same
-- transaction that inserts it.
CREATE TABLE IF NOT EXISTS call_counts (
    tenant_id UUID NOT NULL,
    budget SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, budget, bucket)
);
