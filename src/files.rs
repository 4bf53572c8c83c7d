//! Files only their owner can read: the SQLite database and the secret key file.

use std::path::Path;

/// A new file only its owner can read and write; `AlreadyExists` if there is one.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
