-- Version 2: a tenant's own settings (its inbound number, allowed countries,
-- call budgets, required attestation) as JSON, and the number each inbound
-- request is to be called on (NULL on older rows: the server's number).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS policy text NOT NULL DEFAULT '{}';
ALTER TABLE auth_requests ADD COLUMN IF NOT EXISTS inbound_number text;
