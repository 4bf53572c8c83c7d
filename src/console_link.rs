//! The command `console link`: a one-time console sign-in link for a tenant that signs its requests.

use clap::Args;

use crate::cli::CliError;
use crate::config::{DatabaseUrl, ServeArgs, Settings};
use crate::domain::console::{ConsoleToken, Kind, Who};
use crate::store::{self, OpenOptions, Role};

/// What `console link` takes: the tenant, how long the link lives, and the
/// server's own settings (the same database, secret key and public URL).
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The tenant's name
    #[arg(long)]
    pub tenant: String,
    /// Minutes the link may be opened in (once), 1 to 60
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub minutes: u32,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Prints `{public_url}/console/link?t=<token>`: opened once within
/// `minutes`, it signs the browser in as the tenant (`web::console`).
pub async fn link(args: LinkArgs, config: Option<&std::path::Path>) -> Result<String, CliError> {
    let settings = Settings::from_args(args.serve.with_file(config)?)?;
    let store = store::open(&settings.database, OpenOptions::new(Role::Cli)).await?;
    let sqlite_file = match &settings.database {
        DatabaseUrl::Sqlite(path) => Some(path.as_path()),
        DatabaseUrl::Postgres(_) => None,
    };
    let ring = crate::secrets::key_ring(&settings.secret_keys, sqlite_file, &*store)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let Some(tenant) = store.list_tenants().await?.into_iter().find(|t| t.name == args.tenant) else {
        return Err(CliError::Usage(format!("no tenant named {:?}", args.tenant)));
    };
    let expires = chrono::Utc::now().timestamp() + i64::from(args.minutes) * 60;
    let token = ConsoleToken::new(Kind::Link, Who::Tenant { id: tenant.id, key_id: tenant.key_id }, expires);
    let base = match &settings.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => format!("http://{}", settings.listen),
    };
    Ok(format!("{base}/console/link?t={}", token.sign(ring.current().1.console_key())))
}
