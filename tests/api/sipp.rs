//! SIPp as the far end of the SIP trunk: a scenario from `tests/sip/scenarios`
//! expanded with a key plan into a temp dir, run as a child process, and its
//! error log and last messages in the panic when it fails.
//!
//! The expansion is the one `tests/sip/expand.py` does (see tests/sip/README.md):
//! `@@name@@`/`@@name:default@@` placeholders, and `@@DIGITS@@` for the keys.
#![allow(dead_code)] // until the SIP trunk tests use it

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip/scenarios");
const INBAND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip/inband");
const RFC2833: &str = "/usr/share/sip-tester";
/// Ethernet + IPv4 + UDP in front of each RTP packet in the pcaps.
const RTP_OFFSET: usize = 14 + 20 + 8;
const SSRC: u32 = 0x51BB_1E57;

/// How the keys travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtmf {
    /// RFC 2833 events, payload type 101 (the `sip-tester` captures).
    Rfc2833,
    /// Dual tones in the PCMU audio (tests/sip/inband).
    Inband,
    /// SIP INFO, `application/dtmf-relay` (`Signal=5`); inbound scenario only.
    Info,
    /// SIP INFO, `application/dtmf` (`5`); inbound scenario only.
    InfoPlain,
}

/// The keys a caller presses: groups of keys with a longer pause between
/// groups (e.g. a wrong code, then the right one).
#[derive(Clone, Debug)]
pub struct KeyPlan {
    pub dtmf: Dtmf,
    pub groups: Vec<String>,
    /// Quiet after each key, after its pcap has finished playing.
    pub gap_ms: u64,
    pub group_pause_ms: u64,
    /// Give every key press its own RTP timestamp and rising sequence numbers
    /// (the stock captures all restart at fixed numbers: "55" would read as
    /// one key sent twice). Off plays the stock files as they are.
    pub renumber: bool,
}

impl KeyPlan {
    pub fn new(dtmf: Dtmf) -> Self {
        Self { dtmf, groups: Vec::new(), gap_ms: 300, group_pause_ms: 2000, renumber: true }
    }

    /// Adds a group of keys (`0-9`, `*`, `#`).
    pub fn keys(mut self, keys: &str) -> Self {
        assert!(keys.chars().all(|c| "0123456789*#".contains(c)), "not keys: {keys:?}");
        self.groups.push(keys.into());
        self
    }

    /// The `@@DIGITS@@` text; writes the pcaps it plays into `dir`.
    fn expand(&self, dir: &Path) -> std::io::Result<String> {
        let mut steps = Vec::new();
        let (mut seq, mut ts, mut n) = (1u16, 8000u32, 0);
        for (g, group) in self.groups.iter().enumerate() {
            if g > 0 {
                steps.push(format!(r#"<pause milliseconds="{}"/>"#, self.group_pause_ms));
                ts = ts.wrapping_add(self.group_pause_ms as u32 * 8);
            }
            for key in group.chars() {
                if matches!(self.dtmf, Dtmf::Info | Dtmf::InfoPlain) {
                    steps.push(info_step(key, self.dtmf));
                    steps.push(format!(r#"<pause milliseconds="{}"/>"#, self.gap_ms));
                    continue;
                }
                let stock = stock_pcap(self.dtmf, key);
                let data = std::fs::read(&stock)?;
                let (path, span) = if self.renumber {
                    n += 1;
                    let path = dir.join(format!("key{n:02}_{}.pcap", key_name(key)));
                    let (copy, span) = renumber(data, &mut seq, ts);
                    std::fs::write(&path, copy)?;
                    ts = ts.wrapping_add((span + self.gap_ms) as u32 * 8);
                    (path, span)
                } else {
                    (stock, pcap_span_ms(&data))
                };
                // A new play_pcap_audio cancels the one still playing: pause
                // for the whole file, then the gap.
                steps.push(format!(r#"<nop><action><exec play_pcap_audio="{}"/></action></nop>"#, path.display()));
                steps.push(format!(r#"<pause milliseconds="{}"/>"#, span + self.gap_ms));
            }
        }
        Ok(steps.join("\n  "))
    }
}

fn key_name(key: char) -> String {
    match key {
        '*' => "star".into(),
        '#' => "pound".into(),
        k => k.to_string(),
    }
}

fn stock_pcap(dtmf: Dtmf, key: char) -> PathBuf {
    match dtmf {
        Dtmf::Rfc2833 => Path::new(RFC2833).join(format!("dtmf_2833_{}.pcap", key_name(key))),
        _ => Path::new(INBAND).join(format!("dtmf_inband_{}.pcap", key_name(key))),
    }
}

/// Pcap records as (offset of the record header, included length).
fn records(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = u32::from_le_bytes([data[off + 8], data[off + 9], data[off + 10], data[off + 11]]);
        out.push((off, incl as usize));
        off += 16 + incl as usize;
    }
    out
}

fn record_time_ms(data: &[u8], off: usize) -> u64 {
    let word = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    u64::from(word(off)) * 1000 + u64::from(word(off + 4)) / 1000
}

/// How long a pcap plays: first to last packet plus one 20 ms packet.
fn pcap_span_ms(data: &[u8]) -> u64 {
    let recs = records(data);
    match (recs.first(), recs.last()) {
        (Some(&(a, _)), Some(&(b, _))) => record_time_ms(data, b) - record_time_ms(data, a) + 20,
        _ => 0,
    }
}

/// Rewrites sequence numbers (from `seq`), timestamps (from `ts`, keeping
/// the file's own steps) and the SSRC; returns the copy and its span in ms.
fn renumber(mut data: Vec<u8>, seq: &mut u16, ts: u32) -> (Vec<u8>, u64) {
    let span = pcap_span_ms(&data);
    let mut first_ts = None;
    for (off, _) in records(&data) {
        let rtp = off + 16 + RTP_OFFSET;
        let old = u32::from_be_bytes([data[rtp + 4], data[rtp + 5], data[rtp + 6], data[rtp + 7]]);
        let first = *first_ts.get_or_insert(old);
        data[rtp + 2..rtp + 4].copy_from_slice(&seq.to_be_bytes());
        data[rtp + 4..rtp + 8].copy_from_slice(&ts.wrapping_add(old.wrapping_sub(first)).to_be_bytes());
        data[rtp + 8..rtp + 12].copy_from_slice(&SSRC.to_be_bytes());
        *seq = seq.wrapping_add(1);
    }
    (data, span)
}

/// One key as an in-dialog INFO from the caller, then its 200.
fn info_step(key: char, dtmf: Dtmf) -> String {
    let (ctype, body) = match dtmf {
        Dtmf::Info => ("application/dtmf-relay", format!("Signal={key}\n      Duration=160")),
        _ => ("application/dtmf", key.to_string()),
    };
    // [last_From:]/[last_To:] are the INVITE's 200 (or the previous INFO's):
    // our From and the server's To with its tag.
    format!(
        r#"<send><![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] INFO
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: {ctype}
      Content-Length: [len]

      {body}

    ]]></send>
  <recv response="200" crlf="true"/>"#
    )
}

/// Replaces `@@name@@` / `@@name:default@@` (one line each) from `values`.
fn fill(template: &str, values: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut missing = Vec::new();
    while let Some(start) = rest.find("@@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("@@").filter(|&e| !after[..e].contains('\n')) else {
            return Err(format!("unclosed @@ near {:?}", &after[..after.len().min(40)]));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (values.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => missing.push(name.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if missing.is_empty() { Ok(out) } else { Err(format!("no value for {}", missing.join(", "))) }
}

/// How an inbound call ends (the `inbound` scenario).
#[derive(Clone, Copy, Debug)]
pub enum Hangup {
    /// The server must hang up within this time after the keys.
    Server { within_ms: u64 },
    /// The caller hangs up after this time unless the server did first.
    Caller { after_ms: u64 },
}

/// Whom the inbound call is from.
#[derive(Clone, Copy, Debug)]
pub enum Identity {
    /// `From: <sip:[caller]@…>`.
    Caller,
    /// `From: "Anonymous" <sip:anonymous@anonymous.invalid>` with
    /// `P-Asserted-Identity: <sip:[caller]@…>` and `Privacy: id`.
    AnonymousWithPai,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A SIPp run to start: `Sipp::scenario("inbound").key("caller", …).start()`.
pub struct SippBuilder {
    scenario: String,
    values: HashMap<String, String>,
    keys: Vec<(String, String)>,
    plan: Option<KeyPlan>,
    local_ip: String,
    remote: Option<SocketAddr>,
    transport: Transport,
    auth: Option<(String, String)>,
}

impl SippBuilder {
    /// Sets a `-key` (a `[name]` in the messages: caller, called, callee, user, pass).
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.push((name.into(), value.into()));
        self
    }

    /// Sets a `@@name@@` placeholder (timings such as greeting_ms, bye_wait_ms).
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.values.insert(name.into(), value.to_string());
        self
    }

    pub fn keys(mut self, plan: KeyPlan) -> Self {
        self.plan = Some(plan);
        self
    }

    pub fn hangup(self, hangup: Hangup) -> Self {
        match hangup {
            Hangup::Server { within_ms } => self.set("bye_wait_ms", within_ms),
            Hangup::Caller { after_ms } => {
                self.set("bye_wait_ms", after_ms).set("bye_ontimeout", r#"ontimeout="client_bye""#)
            }
        }
    }

    pub fn identity(self, identity: Identity) -> Self {
        match identity {
            Identity::Caller => self,
            Identity::AnonymousWithPai => self
                .set("from", r#""Anonymous" <sip:anonymous@anonymous.invalid>"#)
                .set("pai", "P-Asserted-Identity: <sip:[caller]@[local_ip]>\n      Privacy: id"),
        }
    }

    /// SIPp's own address (`-i`): e.g. 127.0.0.2 for a peer the server refuses.
    pub fn local_ip(mut self, ip: &str) -> Self {
        self.local_ip = ip.into();
        self
    }

    /// Whom to call (UAC scenarios); UAS scenarios leave it unset and listen.
    pub fn remote(mut self, addr: SocketAddr) -> Self {
        self.remote = Some(addr);
        self
    }

    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// `-au`/`-ap`: credentials SIPp answers a challenge with.
    pub fn auth(mut self, user: &str, pass: &str) -> Self {
        self.auth = Some((user.into(), pass.into()));
        self
    }

    /// Writes the scenario, starts SIPp and, for a UAS, waits until it listens.
    pub async fn start(self) -> Sipp {
        let dir = tempfile::Builder::new().prefix("sipp-").tempdir().expect("temp dir");
        let template_path = Path::new(SCENARIOS).join(format!("{}.xml", self.scenario));
        let template =
            std::fs::read_to_string(&template_path).unwrap_or_else(|e| panic!("{}: {e}", template_path.display()));
        let mut values = self.values.clone();
        if template.contains("@@DIGITS@@") {
            let plan = self.plan.clone().unwrap_or_else(|| KeyPlan::new(Dtmf::Rfc2833));
            values.insert("DIGITS".into(), plan.expand(dir.path()).expect("key pcaps"));
        }
        let xml = fill(&template, &values).unwrap_or_else(|e| panic!("{}: {e}", template_path.display()));
        let scenario = dir.path().join(format!("{}.xml", self.scenario));
        std::fs::write(&scenario, xml).expect("write scenario");

        let sip_port = free_port(self.transport);
        let media_port = free_media_port();
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&scenario)
            .args(["-m", "1", "-l", "1", "-nostdin", "-timeout", "30s", "-timeout_error"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .args(["-trace_msg", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .args(["-i", &self.local_ip, "-p", &sip_port.to_string()])
            .args(["-mi", &self.local_ip, "-mp", &media_port.to_string()])
            .args(["-t", if self.transport == Transport::Tcp { "t1" } else { "u1" }]);
        for (name, value) in &self.keys {
            cmd.args(["-key", name, value]);
        }
        if let Some((user, pass)) = &self.auth {
            cmd.args(["-au", user, "-ap", pass]);
        }
        if let Some(remote) = self.remote {
            cmd.arg(remote.to_string());
        }
        let out = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("stdout file")))
            .stderr(Stdio::from(out))
            .kill_on_drop(true);
        let child = cmd.spawn().expect("start sipp (Debian package sip-tester)");
        let sipp = Sipp {
            child,
            dir,
            name: self.scenario,
            sip: SocketAddr::new(self.local_ip.parse().expect("local ip"), sip_port),
            media_port,
        };
        if self.remote.is_none() {
            sipp.wait_listening(self.transport).await;
        }
        sipp
    }
}

/// A running SIPp; killed if dropped before `wait`.
pub struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
    name: String,
    sip: SocketAddr,
    media_port: u16,
}

impl Sipp {
    /// A scenario from tests/sip/scenarios, by file stem ("inbound", "outbound_auth", …).
    pub fn scenario(name: &str) -> SippBuilder {
        SippBuilder {
            scenario: name.into(),
            values: HashMap::new(),
            keys: Vec::new(),
            plan: None,
            local_ip: "127.0.0.1".into(),
            remote: None,
            transport: Transport::Udp,
            auth: None,
        }
    }

    /// Where SIPp takes SIP (the trunk address for outbound tests).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// The RTP port in SIPp's SDP; its RTP comes from this port too.
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    async fn wait_listening(&self, transport: Transport) {
        let deadline = Instant::now() + Duration::from_secs(5);
        // The port is SIPp's once we can no longer bind it.
        while match transport {
            Transport::Udp => UdpSocket::bind(self.sip).is_ok(),
            Transport::Tcp => TcpListener::bind(self.sip).is_ok(),
        } {
            assert!(Instant::now() < deadline, "sipp {} did not listen on {}", self.name, self.sip);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for SIPp to finish (its own -timeout bounds this at 30 s).
    pub async fn wait(mut self) -> SippResult {
        let status = self.child.wait().await.expect("wait for sipp");
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        SippResult {
            name: self.name.clone(),
            status,
            errors: read("errors.log"),
            messages: read("messages.log"),
            stdout: read("stdout.log"),
        }
    }

    /// Waits and panics with SIPp's logs unless the scenario passed.
    pub async fn passes(self) -> SippResult {
        let result = self.wait().await;
        result.assert_passed();
        result
    }
}

/// How a SIPp run ended, with its logs.
#[derive(Debug)]
pub struct SippResult {
    pub name: String,
    pub status: ExitStatus,
    pub errors: String,
    pub messages: String,
    pub stdout: String,
}

impl SippResult {
    /// SIPp exits 0 only when every call (here: the one) succeeded.
    pub fn passed(&self) -> bool {
        self.status.success()
    }

    pub fn assert_passed(&self) {
        assert!(
            self.passed(),
            "sipp scenario {} failed ({}):\n--- errors ---\n{}\n--- last messages ---\n{}\n--- output ---\n{}",
            self.name,
            self.status,
            self.errors,
            tail(&self.messages, 6000),
            tail(&self.stdout, 2000),
        );
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `n` consecutive ports, each handed out once per run. They come from below
/// the kernel's ephemeral range (32768 and up): a port the kernel handed out
/// and took back could go to another socket (a client's, SIPp's) before the
/// server binds it.
fn reserve(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    20000 + NEXT.fetch_add(n, Ordering::Relaxed) % 12000
}

/// A port nobody holds right now on 127.0.0.1 (UDP, and TCP for a TCP run).
pub fn free_port(transport: Transport) -> u16 {
    loop {
        let port = reserve(1);
        let Ok(_udp) = UdpSocket::bind(("127.0.0.1", port)) else { continue };
        if transport == Transport::Udp || TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An RTP port for SIPp's `-mp`: SIPp binds it and the port two above (video),
/// so both must be free (the three are reserved together).
pub fn free_media_port() -> u16 {
    loop {
        let port = reserve(3);
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port + 2)).is_ok() {
            return port;
        }
    }
}
