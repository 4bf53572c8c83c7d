//! Which database, from `IVR_AUTH_DATABASE_URL`.

use std::path::PathBuf;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (relative, or `sqlite:///abs`) or `postgres://…`; the
    /// error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://ivr-auth.db");
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err("must start with sqlite:// or postgres://")
    }
}
