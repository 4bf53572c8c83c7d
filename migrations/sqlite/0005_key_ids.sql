-- Version 5: the id of the secret key that hashed each request's code, so
-- that keys can be rotated with requests in flight (NULL on older rows: the
-- key that was current when they were made).
ALTER TABLE auth_requests ADD COLUMN key_id TEXT;
