//! The one-shot commands `tenant create|list|rotate-key` and `migrate` (the
//! command line itself is parsed in `main.rs`).

use chrono::Utc;
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::{ServeArgs, parse_database_url};
use crate::domain::tenant::{Tenant, new_api_key, new_callback_secret};
use crate::store::{self, OpenOptions, Role, StoreError};

#[derive(Debug, Args)]
pub struct DbArgs {
    /// sqlite://PATH or postgres://...
    #[arg(long, env = "IVR_AUTH_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Create a tenant; prints its API key and callback secret once
    Create { name: String },
    /// List tenants (no secrets)
    List,
    /// Issue a new API key and callback secret; the old key stops working at once,
    /// the old callback secret keeps signing (as a second v1=) for 24 hours
    RotateKey { name: String },
}

/// A CLI failure, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
}

impl DbArgs {
    fn url(&self, config: Option<&std::path::Path>) -> Result<crate::config::DatabaseUrl, CliError> {
        let from_file = ServeArgs::default().with_file(config)?.database_url;
        let raw = self.database_url.clone().or(from_file).unwrap_or_else(|| "sqlite://ivr-auth.db".into());
        Ok(parse_database_url(&raw)?)
    }
}

fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control);
    ok.then_some(()).ok_or_else(|| CliError::Usage("tenant name must be 1 to 64 printable characters".into()))
}

fn credentials_json(t: &Tenant, api_key: &str) -> serde_json::Value {
    json!({
        "tenant_id": t.id.to_string(),
        "name": t.name,
        "api_key": api_key,
        "callback_secret": t.callback_secret.expose_secret(),
    })
}

/// Runs a tenant command and returns what to print.
pub async fn tenant(db: &DbArgs, config: Option<&std::path::Path>, action: TenantAction) -> Result<String, CliError> {
    let store = store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    match action {
        TenantAction::Create { name } => {
            check_name(&name)?;
            let (tenant, key) = Tenant::create(name, Utc::now());
            store.create_tenant(tenant.clone()).await.map_err(|e| match e {
                StoreError::Conflict(_) => CliError::Usage(format!("a tenant named {:?} exists", tenant.name)),
                other => other.into(),
            })?;
            Ok(credentials_json(&tenant, key.full.expose_secret()).to_string())
        }
        TenantAction::List => {
            let list: Vec<_> = store
                .list_tenants()
                .await?
                .iter()
                .map(|t| json!({ "tenant_id": t.id.to_string(), "name": t.name, "key_id": t.key_id, "created_at": t.created_at.to_rfc3339() }))
                .collect();
            Ok(serde_json::Value::Array(list).to_string())
        }
        TenantAction::RotateKey { name } => {
            let Some(mut tenant) = store.list_tenants().await?.into_iter().find(|t| t.name == name) else {
                return Err(CliError::Usage(format!("no tenant named {name:?}")));
            };
            let key = new_api_key();
            tenant.previous_callback_secret = Some(tenant.callback_secret.clone());
            tenant.previous_until = Some(Utc::now() + chrono::Duration::hours(24));
            tenant.callback_secret = new_callback_secret();
            tenant.key_id = key.key_id;
            tenant.key_hash = key.hash;
            if !store.update_tenant_credentials(tenant.clone()).await? {
                return Err(CliError::Usage(format!("tenant {name:?} changed while rotating; try again")));
            }
            Ok(credentials_json(&tenant, key.full.expose_secret()).to_string())
        }
    }
}

/// Applies migrations and exits.
pub async fn migrate(db: &DbArgs, config: Option<&std::path::Path>) -> Result<String, CliError> {
    store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    Ok("database schema is up to date".into())
}
