//! The server's secret keys: where they come from, and never the database.
//!
//! A key is text of at least 32 characters, used as its bytes, or
//! `hex:` followed by the hex digits of at least 32 bytes (what ivr-auth
//! writes when it makes a key). A key file holds one key per line: the first
//! is current, the others are earlier keys still accepted for the requests
//! they made (rotation); empty lines and lines starting with `#` are skipped.
//!
//! Without `IVR_AUTH_SECRET_KEY` or `IVR_AUTH_SECRET_KEY_FILE`, a SQLite
//! server keeps its key in a file beside the database (`<database>.key`,
//! mode 0600), made on first start. A key that an earlier version kept in the
//! database is moved into that file, so requests in flight stay verifiable,
//! and then deleted from the database: a copy of the database (a backup)
//! holds salts and hashes but never the key that would open them.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::code::{KeyRing, key_id};
use crate::store::{Store, StoreError};

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
    #[error("secret key file {path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The bytes of key text `key` (plain, or `hex:…`), or why it is no key.
pub fn material(key: &str) -> Result<Vec<u8>, String> {
    let bytes = match key.strip_prefix("hex:") {
        Some(digits) => hex::decode(digits.trim()).map_err(|_| "a hex: key must be hex digits".to_owned())?,
        None => key.as_bytes().to_vec(),
    };
    if bytes.len() < 32 {
        return Err("the key must be at least 32 characters (or hex: and 32 bytes)".into());
    }
    Ok(bytes)
}

/// The keys of a key file's text, current first.
pub fn parse_key_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Where a SQLite server without a configured key keeps it.
pub fn key_file_beside(database: &Path) -> PathBuf {
    let mut name = database.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "ivr-auth.db".into());
    name.push(".key");
    database.with_file_name(name)
}

/// The server's key ring: the configured keys, or (SQLite without them) the
/// key file beside the database, made or filled from the database now. A
/// key still stored in the database is deleted from it once it is safe.
pub async fn key_ring(
    configured: &[SecretString],
    sqlite_file: Option<&Path>,
    store: &dyn Store,
) -> Result<KeyRing, KeyError> {
    let stored = store.stored_server_secret().await?;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for (n, key) in configured.iter().enumerate() {
        let setting = if n == 0 { "IVR_AUTH_SECRET_KEY" } else { "an earlier secret key" };
        keys.push(
            material(key.expose_secret()).map_err(|message| KeyError::Invalid { setting: setting.into(), message })?,
        );
    }
    if keys.is_empty() {
        let Some(database) = sqlite_file else {
            return Err(KeyError::Invalid {
                setting: "IVR_AUTH_SECRET_KEY".into(),
                message: "required with PostgreSQL (or IVR_AUTH_SECRET_KEY_FILE)".into(),
            });
        };
        let path = key_file_beside(database);
        keys = from_key_file(&path, stored.as_deref())?;
    }
    if let Some(old) = stored.as_ref().filter(|old| !keys.contains(old)) {
        // Requests made with it may be in flight (a database restored from an
        // older version's backup, say): this run still accepts them.
        tracing::warn!(
            key_id = %key_id(old),
            "the database held a secret key other than the configured one: it is deleted from the database; \
             requests made with it are accepted until this server stops"
        );
        keys.push(old.clone());
    }
    if stored.is_some() {
        store.forget_server_secret().await?;
        tracing::info!("the secret key is no longer stored in the database");
    }
    let (current, previous) = keys.split_first().unwrap_or_else(|| unreachable!("at least one key"));
    let previous: Vec<&[u8]> = previous.iter().map(Vec::as_slice).collect();
    let ring = KeyRing::new(current, &previous);
    tracing::info!(key_id = ring.current().0, earlier_keys = previous.len(), "secret keys loaded");
    Ok(ring)
}

/// The keys of the file at `path`, which is made first if it does not exist:
/// with the key `stored` in the database, else with a new random one.
fn from_key_file(path: &Path, stored: Option<&[u8]>) -> Result<Vec<Vec<u8>>, KeyError> {
    let file_err = |error| KeyError::File { path: path.to_owned(), error };
    if !path.exists() {
        let (key, made) = match stored {
            Some(old) => (old.to_vec(), "moved the secret key out of the database into"),
            None => {
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                (key, "made a new secret key in")
            }
        };
        let text = format!(
            "# ivr-auth's secret key (first line; later lines: earlier keys still accepted).\n\
             # Keep it apart from the database and its backups.\nhex:{}\n",
            hex::encode(&key)
        );
        write_private(path, text.as_bytes()).map_err(file_err)?;
        tracing::warn!(file = %path.display(), "{made} {}: back it up apart from the database", path.display());
    }
    warn_if_readable_by_others(path);
    let text = std::fs::read_to_string(path).map_err(file_err)?;
    let keys = parse_key_file(&text);
    if keys.is_empty() {
        return Err(KeyError::Invalid { setting: path.display().to_string(), message: "holds no key".into() });
    }
    keys.iter()
        .map(|k| material(k).map_err(|message| KeyError::Invalid { setting: path.display().to_string(), message }))
        .collect()
}

/// Writes a new file only its owner can read, durably; never over an existing one.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut file = crate::files::create_private(path)?;
    file.write_all(content)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name itself survives a crash.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "the secret key file can be read by others: chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_text_or_hex_bytes() {
        assert_eq!(material(&"k".repeat(32)).unwrap(), vec![b'k'; 32]);
        assert!(material(&"k".repeat(31)).is_err());
        assert_eq!(material(&format!("hex:{}", "ab".repeat(32))).unwrap(), vec![0xab; 32]);
        assert!(material(&format!("hex:{}", "ab".repeat(31))).is_err());
        assert!(material("hex:zz").is_err());
    }

    #[test]
    fn a_key_file_lists_the_current_key_first_and_skips_comments() {
        let text = "# made by ivr-auth\n\nhex:0011\r\nsecond key\n";
        assert_eq!(parse_key_file(text), ["hex:0011", "second key"]);
        assert_eq!(key_file_beside(Path::new("data/ivr-auth.db")), Path::new("data/ivr-auth.db.key"));
        assert_eq!(key_file_beside(Path::new("x.db")), Path::new("x.db.key"));
    }
}
