//! From a `postgres://` URL to a connection configuration and a rustls connector.
//!
//! The URL is libpq's: several hosts (`postgres://u@h1:5432,h2:5432/db`) with
//! `target_session_attrs=read-write` follow a standby's promotion, and
//! `sslmode` asks for TLS. libpq's `verify-ca`, `verify-full` and
//! `sslrootcert` are understood here, since the driver knows only
//! `disable`, `prefer` and `require`.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// No TLS, or TLS without checking who answers (libpq's `prefer`, `require`).
    Nothing,
    /// The chain must lead to a trusted root (libpq's `verify-ca`).
    Chain,
    /// The chain, and the name matches the host (libpq's `verify-full`).
    Full,
}

/// A parsed database URL, ready to connect.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

/// The options every session starts with (why: in `target`).
pub const SESSION_OPTIONS: &str =
    "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off -c client_min_messages=warning";

fn bad_url(why: impl Into<String>) -> StoreError {
    StoreError::Database(format!("IVR_AUTH_DATABASE_URL: {}", why.into()).into())
}

/// Parses `url`, taking out the TLS parameters the driver does not know.
pub fn target(url: &str) -> Result<Target, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut verify = Verify::Nothing;
    let mut root_file = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("sslmode", "verify-ca") => {
                verify = Verify::Chain;
                kept.push("sslmode=require".to_owned());
            }
            ("sslmode", "verify-full") => {
                verify = Verify::Full;
                kept.push("sslmode=require".to_owned());
            }
            ("sslrootcert", path) => root_file = Some(percent_decode(path)),
            _ => kept.push(pair.to_owned()),
        }
    }
    // libpq: a root certificate file turns `require` into `verify-ca`.
    if verify == Verify::Nothing && root_file.is_some() && kept.iter().any(|p| p == "sslmode=require") {
        verify = Verify::Chain;
    }
    let driver_url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    let mut config: tokio_postgres::Config = driver_url.parse().map_err(|e| bad_url(format!("{e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(3));
    }
    // A peer that vanished (no RST) is noticed within seconds, not at the OS's default of minutes.
    config.keepalives(true).keepalives_idle(Duration::from_secs(10)).tcp_user_timeout(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("ivr-auth");
    }
    // Every statement is prepared once per connection and finds its rows by
    // an index: a generic plan is as good as a custom one, and replanning
    // the multi-statement writes on each execution costs more than running
    // them. A generic plan made while a table was nearly empty would scan it
    // whole forever after, so sequential scans are off for these sessions
    // (every query here has an index to use).
    // That setting prices a scan of a small table without a useful index
    // (`nodes`, `schema_version`) at 10^10, far above `jit_above_cost`, so
    // PostgreSQL compiled such a query with LLVM on every run: 38 ms of CPU
    // for the 5-second heartbeat of each node, for statements that take
    // microseconds. JIT is for long analytical queries; it is off here.
    // Notices ("relation already exists, skipping" from the migrations) are
    // the server talking to itself; the driver would log each as our INFO line.
    let options = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {SESSION_OPTIONS}"),
        _ => SESSION_OPTIONS.to_owned(),
    };
    config.options(options);
    let tls = MakeRustlsConnect::new(client_config(verify, root_file.as_deref())?);
    Ok(Target { config, tls })
}

/// The `host:port` pairs a configuration tries, for messages (never the password).
pub fn addresses(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    if hosts.is_empty() { "localhost:5432".into() } else { hosts.join(", ") }
}

/// A driver error in the server's own words: tokio-postgres shows a
/// server's error as "db error" and a failed connection without its cause.
#[derive(Debug)]
pub struct Said(pub tokio_postgres::Error);

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(f, "{} {}: {}", db.severity(), db.code().code(), db.message())?;
            if let Some(detail) = db.detail() {
                write!(f, " ({detail})")?;
            }
            if let Some(hint) = db.hint() {
                write!(f, "; hint: {hint}")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for Said {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error of the server(s) at `at`, as the start-up reports it.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL at {at}: {source}")]
struct AtServer {
    at: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// `e` naming the servers `config` tries.
pub fn naming_server(config: &tokio_postgres::Config, e: StoreError) -> StoreError {
    let at = |source| Box::new(AtServer { at: addresses(config), source });
    match e {
        StoreError::Unavailable(source) => StoreError::Unavailable(at(source)),
        StoreError::Database(source) => StoreError::Database(at(source)),
        other => other,
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn roots(file: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad_url(format!("sslrootcert {path}: {e}")))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_url(format!("sslrootcert {path}: {e}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad_url(format!("sslrootcert {path}: no certificate in it")));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

fn client_config(verify: Verify, root_file: Option<&str>) -> Result<ClientConfig, StoreError> {
    let builder = ClientConfig::builder();
    let config = match verify {
        Verify::Full => builder.with_root_certificates(roots(root_file)?).with_no_client_auth(),
        Verify::Chain | Verify::Nothing => {
            let webpki = WebPkiServerVerifier::builder(Arc::new(roots(root_file)?))
                .build()
                .map_err(|e| bad_url(format!("TLS roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient { webpki, check_chain: verify == Verify::Chain }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// libpq's weaker modes: `verify-ca` checks the chain but not the name;
/// `require` checks neither (it only encrypts). The handshake's signatures
/// are always checked.
#[derive(Debug)]
struct Lenient {
    webpki: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether a statement that failed with SQLSTATE `code` may succeed on
/// another attempt, on a fresh connection: a connection exception (class
/// 08), a server shutting down, starting or in recovery (57P01–57P03), a
/// session ended by the server (57P05, 57014), too many connections (53300),
/// a serialization failure or deadlock (40001, 40P01), and a write on a
/// server that is (or has just become) a read-only standby (25006): after a
/// failover the pool reconnects, and `target_session_attrs=read-write`
/// finds the promoted server.
pub fn transient_sqlstate(code: &str) -> bool {
    matches!(code, "25006" | "40001" | "40P01" | "53300" | "57014" | "57P01" | "57P02" | "57P03" | "57P05")
        || code.starts_with("08")
}

/// Whether opening a connection that failed with `e` is worth another try.
/// Every failure to connect is, except a refusal that no retry changes:
/// credentials or authorization (class 28), a database that does not exist
/// (3D000), and a TLS handshake that refused the server's certificate. A
/// multi-host URL reports its last host's failure: with the primary gone
/// and the standby not yet promoted, that is the driver's "database does not
/// allow writes" (an I/O `PermissionDenied` without a SQLSTATE).
pub fn worth_reconnecting(e: &tokio_postgres::Error) -> bool {
    if let Some(state) = e.code() {
        return !refused_for_good(state.code());
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_none_or(|io| io.kind() != std::io::ErrorKind::InvalidData)
}

/// SQLSTATEs of a connection refused for its configuration, not its timing.
fn refused_for_good(code: &str) -> bool {
    code.starts_with("28") || code == "3D000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_and_connection_sqlstates_are_transient_and_statement_errors_are_not() {
        // A failover: the old primary shutting down, the standby read-only, starting, in recovery.
        for code in ["25006", "57P01", "57P02", "57P03", "57P05", "08000", "08001", "08003", "08006", "08P01"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["40001", "40P01", "53300", "57014"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        // The statement's own fault, or the schema's: never retried.
        for code in ["23505", "42P01", "42601", "22001", "25001", "28P01", "3D000", "53100"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
        // Opening a connection: only a refusal of who we are or what we asked for is final.
        for code in ["28P01", "28000", "3D000"] {
            assert!(refused_for_good(code), "{code}");
        }
        for code in ["57P03", "53300", "08001", "25006", "XX000"] {
            assert!(!refused_for_good(code), "{code}");
        }
    }

    #[test]
    fn multi_host_urls_and_libpq_tls_modes_parse() {
        crate::install_tls_provider();
        let t = target("postgresql://app@db1:5432,db2:5433/ivr?target_session_attrs=read-write&sslmode=verify-full")
            .unwrap();
        assert_eq!(t.config.get_hosts().len(), 2);
        assert_eq!(t.config.get_ports(), [5432, 5433]);
        assert_eq!(t.config.get_target_session_attrs(), tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        assert_eq!(t.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert!(target("postgres://app@db/ivr?sslmode=verify-ca").is_ok());
        let missing = target("postgres://app@db/ivr?sslmode=require&sslrootcert=/nonexistent.pem");
        assert!(missing.is_err_and(|e| e.to_string().contains("sslrootcert")));
        assert!(target("postgres://app@db/ivr?nonsense=1").is_err());
    }

    #[test]
    fn every_session_plans_once_scans_by_index_and_never_compiles() {
        crate::install_tls_provider();
        // The operator's own options are kept, ours follow them.
        let t = target("postgres://app@db/ivr?options=-csearch_path%3Dtenant_a").unwrap();
        let options = t.config.get_options().unwrap_or_default();
        let set: Vec<&str> = options.split_whitespace().collect();
        for wanted in ["-csearch_path=tenant_a", "plan_cache_mode=force_generic_plan", "enable_seqscan=off", "jit=off"]
        {
            assert!(set.contains(&wanted), "{wanted} missing from {options:?}");
        }
    }
}
