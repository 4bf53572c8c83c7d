-- Version 6: how each request's code reaches the user (its channel,
-- fallback and attempts), as JSON; NULL on older rows: voice_dtmf, no fallback.
ALTER TABLE auth_requests ADD COLUMN delivery TEXT;
