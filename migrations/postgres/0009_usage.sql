-- Version 9: usage for billing (issue 17). One row per use, appended in the
-- commit of the change it comes from; `kind` call_placed, call_taken,
-- call_seconds or sms. Kept 400 days, apart from the requests.
CREATE TABLE IF NOT EXISTS usage_events (
    tenant_id UUID NOT NULL,
    request_id UUID NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    country TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_events_tenant ON usage_events (tenant_id, at);
CREATE INDEX IF NOT EXISTS usage_events_at ON usage_events (at);
-- A call's seconds are counted once, however often its end is reported.
CREATE UNIQUE INDEX IF NOT EXISTS usage_events_call_seconds ON usage_events (request_id) WHERE kind = 'call_seconds';
