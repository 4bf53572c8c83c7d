-- Version 8: outbound call pacing per provider account, shared by every server.
-- The next free start slot of each paced account, in microseconds since the epoch.
CREATE TABLE IF NOT EXISTS call_pacing (
    account TEXT PRIMARY KEY,
    next_free INTEGER NOT NULL
);
-- The seats of accounts' concurrent-call caps: one per request whose call is up,
-- held until its call ends or, if no end is reported, until `until` (ms).
CREATE TABLE IF NOT EXISTS call_seats (
    request_id BLOB PRIMARY KEY,
    account TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS call_seats_account ON call_seats (account, until);
