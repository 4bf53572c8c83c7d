-- Version 3: a tenant's own settings (its inbound number, allowed countries,
-- call budgets, required attestation) as JSON, and the number each inbound
-- request is to be called on (NULL on older rows: the server's number).
ALTER TABLE tenants ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE auth_requests ADD COLUMN inbound_number TEXT;
