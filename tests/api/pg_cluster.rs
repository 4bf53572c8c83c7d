//! Throwaway PostgreSQL clusters for a failover: a primary and a streaming
//! standby (`pg_basebackup -R`), each on a free port under a temporary
//! folder, stopped and removed when dropped, also when the test fails.
//!
//! The binaries are found in `IVR_AUTH_TEST_PG_BIN`, else in
//! `/usr/lib/postgresql/15/bin` or `pg_config --bindir`; without them the
//! failover test is skipped. PostgreSQL refuses to run as root: as root,
//! every command runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where `initdb`, `pg_ctl` and `pg_basebackup` are, if anywhere.
pub fn bin_dir() -> Option<PathBuf> {
    let from_pg_config = || {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
    };
    let candidates =
        [std::env::var_os("IVR_AUTH_TEST_PG_BIN").map(PathBuf::from), Some("/usr/lib/postgresql/15/bin".into())];
    candidates
        .into_iter()
        .flatten()
        .chain(from_pg_config())
        .find(|d| d.join("initdb").is_file() && d.join("pg_basebackup").is_file())
}

/// A primary and its standby, both running until dropped.
pub struct Pair {
    bin: PathBuf,
    /// Removed last, with both data folders in it.
    dir: tempfile::TempDir,
    as_postgres: bool,
    pub primary_port: u16,
    pub standby_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Pair {
    /// initdb (wal_level=replica), start, `pg_basebackup -R`, start the
    /// standby, wait until it streams, then make it synchronous: a commit
    /// the server acknowledged is on the standby too.
    pub fn start(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let pair = Self { bin: bin.to_owned(), dir, as_postgres, primary_port: free_port(), standby_port: free_port() };
        if as_postgres {
            pair.run(Command::new("chown").args(["postgres:postgres", &pair.path("")]));
        }
        let primary = pair.path("primary");
        pair.pg("initdb", &["-D", &primary, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
        let settings = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\n\
             max_wal_senders = 4\nfsync = off\nshared_buffers = 16MB\nmax_connections = 40\n",
            pair.primary_port,
            pair.path("")
        );
        append(&format!("{primary}/postgresql.conf"), &settings);
        pair.pg_ctl(&["-D", &primary, "-l", &pair.path("primary.log"), "-w", "start"]);
        let standby = pair.path("standby");
        let port = pair.primary_port.to_string();
        let base =
            ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &standby, "-R", "-X", "stream", "-c", "fast"];
        pair.pg("pg_basebackup", &base);
        append(&format!("{standby}/postgresql.conf"), &format!("port = {}\n", pair.standby_port));
        pair.pg_ctl(&["-D", &standby, "-l", &pair.path("standby.log"), "-w", "start"]);
        pair
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().trim_end_matches('/').to_owned()
    }

    fn run(&self, cmd: &mut Command) -> Output {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg(&self, program: &str, args: &[&str]) -> Output {
        self.run(self.command(program).args(args))
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.pg("pg_ctl", args)
    }

    /// The libpq URL of both, in order, asking for the one that takes writes.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// The primary dies without a shutdown (`-m immediate`): a crash.
    pub fn crash_primary(&self) {
        self.pg_ctl(&["-D", &self.path("primary"), "-m", "immediate", "stop"]);
    }

    /// The standby becomes the primary.
    pub fn promote_standby(&self) {
        self.pg_ctl(&["-D", &self.path("standby"), "-w", "promote"]);
    }

    /// The primary's log and the standby's, for a failure message.
    pub fn logs(&self) -> String {
        ["primary.log", "standby.log"]
            .iter()
            .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(self.path(f)).unwrap_or_default()))
            .collect()
    }
}

fn append(file: &str, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

impl Drop for Pair {
    fn drop(&mut self) {
        for data in ["primary", "standby"] {
            let data = self.path(data);
            if Path::new(&data).join("postmaster.pid").exists() {
                let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "stop"]).output();
            }
        }
        // The folder goes with `dir`.
    }
}

/// Polls `query` on the server at `port` until it answers `true`, within `within`.
pub async fn wait_until(port: u16, query: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            if let Ok(row) = client.query_one(query, &[]).await
                && row.get::<_, bool>(0)
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "`{query}` on port {port} never held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs SQL on the server at `port`.
pub async fn execute(port: u16, sql: &str) {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}
