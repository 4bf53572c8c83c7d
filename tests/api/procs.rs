//! The server as a separate process (`ivr-auth serve`), as operators run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;

/// A running `ivr-auth serve` process; its stdout and stderr are collected.
pub struct Proc {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

pub fn spawn_proc(db_url: &str, extra: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr-auth"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IVR_AUTH_LISTEN", "127.0.0.1:0")
        .env("IVR_AUTH_DATABASE_URL", db_url)
        .env("IVR_AUTH_ALLOW_PRIVATE_CALLBACKS", "true")
        .env("IVR_AUTH_INBOUND_NUMBER", INBOUND)
        .env("IVR_AUTH_RATE_LIMIT", "0")
        .env("IVR_AUTH_PHONE_RATE_LIMIT", "0")
        .env("IVR_AUTH_PHONE_RATE_LIMIT_SERVER", "0")
        .env("IVR_AUTH_TENANT_CALLS_PER_MINUTE", "0")
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("IVR_AUTH_SECRET_KEY", SECRET_KEY)
        .env("IVR_AUTH_DATABASE_MAX_CONNECTIONS", "4")
        .env("IVR_AUTH_SIMULATOR_PACING", "false")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ivr-auth is listening on ") {
                    let _ = tx.send(url.to_owned());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
    Proc { child, base, log }
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}
