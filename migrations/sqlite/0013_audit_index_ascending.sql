-- Version 13: a tenant's audit events indexed by id ascending (issue 18).
-- Descending, every new event went in at the start of its tenant's range,
-- inside the index, where a full page splits into two half-full ones; so
-- each commit wrote about two pages of this index. Ascending, a new event
-- goes in at the end of the range. The newest-first listing reads the same
-- index backwards.
DROP INDEX IF EXISTS audit_events_tenant;
CREATE INDEX IF NOT EXISTS audit_events_tenant ON audit_events (tenant_id, id);
