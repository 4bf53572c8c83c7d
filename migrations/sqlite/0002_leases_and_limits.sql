-- Version 2: job leases name their holder, so only the runner that holds a
-- lease can finish, retry or bury the job; per-number registration limits
-- count stored requests.
ALTER TABLE jobs RENAME COLUMN locked_until TO lease_until;
ALTER TABLE jobs ADD COLUMN lease_owner BLOB;           -- 16-byte token of the claim holding the lease
CREATE INDEX IF NOT EXISTS auth_requests_phone_created
    ON auth_requests (phone_number, created_at);
