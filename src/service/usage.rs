//! A tenant's usage for its bill, by the month.

use super::Service;
use crate::domain::tenant::Tenant;
use crate::domain::usage::Month;
use crate::store::{StoreError, UsageRow};

impl Service {
    /// The tenant's usage in `month`, per provider account and country.
    pub async fn usage_month(&self, tenant: &Tenant, month: Month) -> Result<Vec<UsageRow>, StoreError> {
        self.store.usage_month(tenant.id, month.start(), month.next_start()).await
    }
}
