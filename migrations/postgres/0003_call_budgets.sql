-- Version 3: a tenant's call budgets count its outbound requests of the
-- last minute and day.
CREATE INDEX IF NOT EXISTS auth_requests_outbound_tenant
    ON auth_requests (tenant_id, created_at) WHERE mode = 'outbound';
