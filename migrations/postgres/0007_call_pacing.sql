-- Version 7: outbound call pacing per provider account, shared by every server.
-- The next free start slot of each paced account, in microseconds since the epoch.
CREATE TABLE IF NOT EXISTS call_pacing (
    account TEXT PRIMARY KEY,
    next_free BIGINT NOT NULL
);
-- The seats of accounts' concurrent-call caps: one per request whose call is up,
-- held until its call ends or, if no end is reported, until `until`.
CREATE TABLE IF NOT EXISTS call_seats (
    request_id UUID PRIMARY KEY,
    account TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS call_seats_account ON call_seats (account, until);
