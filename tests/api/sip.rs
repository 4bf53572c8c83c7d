//! Our own SIP trunk against SIPp (Debian's `sip-tester`), a SIP peer
//! nobody here wrote: inbound and outbound calls verified with keys sent as
//! RFC 2833 events, SIP INFO and in-band tones; busy, no answer, digest
//! challenges, a peer not allowed, BYE during the greeting, CANCEL before
//! the answer. Prompt audio: `prompts render --tone` (a beep per text).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::sipp::{Dtmf, Hangup, KeyPlan, Sipp, Transport, free_port};

/// The tone audio every SIP test server plays, rendered once per run.
fn audio_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ivr-auth-sip-audio-{}", std::process::id()));
        let db = dir.join("render.db");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-auth"))
            .args(["prompts", "render", "--tone", "--audio-dir"])
            .arg(&dir)
            .env("IVR_AUTH_DATABASE_URL", format!("sqlite://{}", db.display()))
            .status()
            .expect("run ivr-auth prompts render");
        assert!(status.success(), "prompts render --tone failed");
        dir
    })
    .clone()
}

/// A range of RTP ports no other test server of this run uses.
fn rtp_ports() -> String {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let start = 40000 + (n % 200) * 100;
    format!("{start}-{}", start + 99)
}

/// A server on our own trunk: SIP on a free port, `trunk` for outbound.
pub struct SipApp {
    pub app: TestApp,
    pub sip: std::net::SocketAddr,
}

pub fn sip_opts(
    sip_port: u16,
    trunk: Option<std::net::SocketAddr>,
    extra: impl Fn(&mut ivr_auth::config::ServeArgs) + Send + Sync + 'static,
) -> Opts {
    let audio = audio_dir();
    let ports = rtp_ports();
    Opts {
        gather_timeout: 3,
        configure: Some(Arc::new(move |a| {
            a.provider = Some("sip".into());
            a.sip_listen = Some(format!("127.0.0.1:{sip_port}"));
            a.sip_allowed_peers = Some("127.0.0.1".into());
            a.sip_trunk = trunk.map(|t| format!("sip:{t};transport=udp"));
            a.rtp_ports = Some(ports.clone());
            a.prompt_audio_dir = Some(audio.display().to_string());
            a.ring_timeout = Some(5);
            extra(a);
        })),
        ..Opts::default()
    }
}

async fn sip_app(trunk: Option<std::net::SocketAddr>) -> SipApp {
    let port = free_port(Transport::Tcp);
    let app = spawn_with(sip_opts(port, trunk, |_| {})).await;
    SipApp { app, sip: format!("127.0.0.1:{port}").parse().expect("addr") }
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An inbound request for PHONE with a code of our choosing.
async fn inbound_request(app: &TestApp, code: &str) -> String {
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": code })).await;
    r["id"].as_str().expect("id").to_owned()
}

/// Keys sent as `dtmf`, each right after the one before: the server may
/// hang up as soon as the last one is heard (the tone prompts are short).
fn plan(dtmf: Dtmf) -> KeyPlan {
    KeyPlan { gap_ms: 50, ..KeyPlan::new(dtmf) }
}

fn caller(s: &SipApp, plan: KeyPlan) -> crate::sipp::SippBuilder {
    Sipp::scenario("inbound")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .set("greeting_ms", 1500)
        .keys(plan)
        .remote(s.sip)
}

#[tokio::test]
async fn an_inbound_call_with_rfc2833_keys_verifies() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "4821").await;
    caller(&s, plan(Dtmf::Rfc2833).keys("4821"))
        .hangup(Hangup::Server { within_ms: 10_000 })
        .start()
        .await
        .passes()
        .await;
    let v = s.app.wait_status(&id, "verified").await;
    assert_eq!((v["mode"].as_str(), v["attempts"].as_u64()), (Some("inbound"), Some(0)), "{v}");
    assert_eq!(metric(&s.app, "ivr_auth_sip_digits_total{source=\"rfc2833\"}").await, 0.0, "not rfc4733's name");
    assert_eq!(metric(&s.app, "ivr_auth_sip_digits_total{source=\"rfc4733\"}").await, 4.0);
}

#[tokio::test]
async fn a_wrong_code_then_the_right_one_verifies() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "2580").await;
    let plan = plan(Dtmf::Rfc2833).keys("1111").keys("2580");
    caller(&s, plan)
        .set("bye_wait_ms", 20_000)
        .hangup(Hangup::Server { within_ms: 20_000 })
        .start()
        .await
        .passes()
        .await;
    let v = s.app.wait_status(&id, "verified").await;
    assert_eq!(v["attempts"], 1, "one wrong code: {v}");
}

#[tokio::test]
async fn keys_sent_as_sip_info_verify() {
    for (dtmf, code) in [(Dtmf::Info, "7391"), (Dtmf::InfoPlain, "5046")] {
        let s = sip_app(None).await;
        let id = inbound_request(&s.app, code).await;
        caller(&s, plan(dtmf).keys(code)).hangup(Hangup::Server { within_ms: 10_000 }).start().await.passes().await;
        s.app.wait_status(&id, "verified").await;
        assert_eq!(metric(&s.app, "ivr_auth_sip_digits_total{source=\"info\"}").await, 4.0);
    }
}

#[tokio::test]
async fn keys_sent_as_tones_in_the_audio_verify() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "9062").await;
    caller(&s, plan(Dtmf::Inband).keys("9062"))
        .hangup(Hangup::Server { within_ms: 10_000 })
        .start()
        .await
        .passes()
        .await;
    s.app.wait_status(&id, "verified").await;
    assert_eq!(metric(&s.app, "ivr_auth_sip_digits_total{source=\"inband\"}").await, 4.0);
}

#[tokio::test]
async fn an_invite_from_a_peer_not_allowed_gets_403_and_takes_nothing() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "1357").await;
    Sipp::scenario("inbound_forbidden")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .local_ip("127.0.0.2")
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    assert_eq!(metric(&s.app, "ivr_auth_sip_refused_requests_total{method=\"INVITE\"}").await, 1.0);
    assert_eq!(metric(&s.app, "ivr_auth_sip_calls_total").await, 0.0, "no call was taken");
    assert_eq!(s.app.get(&id).await["status"], "pending");
}

/// As with every provider: a call that ended before the code was typed
/// fails the request with `no_input` (the site may register again).
#[tokio::test]
async fn a_caller_who_hangs_up_during_the_greeting_fails_the_request_as_no_input() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "2468").await;
    Sipp::scenario("inbound_bye_early")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .set("bye_after_ms", 300)
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    wait_until("the call's seat given back", Duration::from_secs(5), || async {
        (metric(&s.app, "ivr_auth_sip_active_calls").await == 0.0).then_some(())
    })
    .await;
    let v = s.app.wait_status(&id, "failed").await;
    assert_eq!(v["failure_reason"], "no_input", "{v}");
}

/// The caller gave up while it rang: no call reached the call flow.
#[tokio::test]
async fn a_cancel_before_the_answer_is_487_and_the_request_stays_pending() {
    let port = free_port(Transport::Tcp);
    let app = spawn_with(sip_opts(port, None, |a| a.sip_answer_delay_ms = Some(2000))).await;
    let s = SipApp { app, sip: format!("127.0.0.1:{port}").parse().expect("addr") };
    let id = inbound_request(&s.app, "8642").await;
    Sipp::scenario("inbound_cancel")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    wait_until("the call's seat given back", Duration::from_secs(5), || async {
        (metric(&s.app, "ivr_auth_sip_active_calls").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(s.app.get(&id).await["status"], "pending");
}

/// An outbound request whose code the phone (SIPp) will type.
async fn outbound_request(app: &TestApp, code: &str) -> String {
    let r = app.register(json!({ "phone_number": PHONE, "code": code, "locale": "en-US" })).await;
    r["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn an_outbound_call_answered_and_keyed_verifies() {
    let phone = Sipp::scenario("outbound_answer")
        .key("callee", PHONE)
        .set("greeting_ms", 1500)
        .keys(plan(Dtmf::Rfc2833).keys("3141"))
        .start()
        .await;
    let s = sip_app(Some(phone.sip_addr())).await;
    let id = outbound_request(&s.app, "3141").await;
    s.app.wait_status(&id, "verified").await;
    phone.passes().await;
}

#[tokio::test]
async fn an_outbound_call_behind_a_digest_challenge_verifies() {
    let phone = Sipp::scenario("outbound_auth")
        .key("callee", PHONE)
        .key("user", "bank-trunk")
        .key("pass", "s3cret-digest")
        .set("greeting_ms", 1500)
        .keys(plan(Dtmf::Rfc2833).keys("2718"))
        .start()
        .await;
    let port = free_port(Transport::Tcp);
    let trunk = phone.sip_addr();
    let app = spawn_with(sip_opts(port, Some(trunk), |a| {
        a.sip_username = Some("bank-trunk".into());
        a.sip_password = Some("s3cret-digest".into());
    }))
    .await;
    let id = outbound_request(&app, "2718").await;
    app.wait_status(&id, "verified").await;
    phone.passes().await;
}

#[tokio::test]
async fn a_busy_phone_fails_the_request_as_busy() {
    let phone = Sipp::scenario("outbound_busy").key("callee", PHONE).start().await;
    let s = sip_app(Some(phone.sip_addr())).await;
    let id = outbound_request(&s.app, "1234").await;
    let v = s.app.wait_status(&id, "failed").await;
    assert_eq!(v["failure_reason"], "busy", "{v}");
    phone.passes().await;
}

#[tokio::test]
async fn a_phone_that_never_answers_fails_the_request_as_no_answer() {
    let phone = Sipp::scenario("outbound_no_answer").key("callee", PHONE).set("cancel_wait_ms", 15_000).start().await;
    let s = sip_app(Some(phone.sip_addr())).await;
    let id = outbound_request(&s.app, "1234").await;
    let v = s.app.wait_status(&id, "failed").await;
    assert_eq!(v["failure_reason"], "no_answer", "{v}");
    phone.passes().await;
}

/// Two nodes on one PostgreSQL database, each with its own SIP listener and
/// media: a request registered through one is verified by a call the other
/// takes; an outbound call goes out from whichever node's job places it.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_the_requests_and_each_keeps_its_own_calls() {
    let phone = Sipp::scenario("outbound_answer")
        .key("callee", PHONE)
        .set("greeting_ms", 1500)
        .keys(plan(Dtmf::Rfc2833).keys("6174"))
        .start()
        .await;
    let db = Arc::new(crate::db::TestDb::new(crate::db::Backend::Postgres).await);
    let (port_a, port_b) = (free_port(Transport::Tcp), free_port(Transport::Tcp));
    let a = spawn_on(sip_opts(port_a, Some(phone.sip_addr()), |_| {}), db.clone()).await;
    let tenant = a.tenant.clone();
    let b = spawn_as(sip_opts(port_b, Some(phone.sip_addr()), |_| {}), db.clone(), Some(tenant.clone())).await;

    // Inbound: registered on A, the call reaches B.
    let r = a.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "9273" })).await;
    let inbound_id = r["id"].as_str().expect("id").to_owned();
    let on_b = SipApp { app: b, sip: format!("127.0.0.1:{port_b}").parse().expect("addr") };
    caller(&on_b, plan(Dtmf::Rfc2833).keys("9273"))
        .hangup(Hangup::Server { within_ms: 10_000 })
        .start()
        .await
        .passes()
        .await;
    a.wait_status(&inbound_id, "verified").await;
    assert_eq!(metric(&on_b.app, "ivr_auth_sip_calls_total{direction=\"inbound\"}").await, 1.0);
    assert_eq!(metric(&a, "ivr_auth_sip_calls_total{direction=\"inbound\"}").await, 0.0, "A took no call");

    // Outbound: registered on B, placed by either node, verified on both views.
    let outbound_id = outbound_request(&on_b.app, "6174").await;
    a.wait_status(&outbound_id, "verified").await;
    phone.passes().await;
    let placed = metric(&a, "ivr_auth_sip_calls_total{direction=\"outbound\"}").await
        + metric(&on_b.app, "ivr_auth_sip_calls_total{direction=\"outbound\"}").await;
    assert_eq!(placed, 1.0, "one node placed the one call");
}

#[tokio::test]
async fn an_inbound_call_over_tcp_verifies() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "5150").await;
    caller(&s, plan(Dtmf::Rfc2833).keys("5150"))
        .transport(Transport::Tcp)
        .hangup(Hangup::Server { within_ms: 10_000 })
        .start()
        .await
        .passes()
        .await;
    s.app.wait_status(&id, "verified").await;
}

/// A caller whose number the network asserts (P-Asserted-Identity) but who
/// withheld it (`Privacy: id`) is anonymous, as with every provider: the
/// request is not touched and the caller hears why.
#[tokio::test]
async fn a_withheld_number_matches_no_request() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "3030").await;
    caller(&s, plan(Dtmf::Rfc2833).keys("3030"))
        .identity(crate::sipp::Identity::AnonymousWithPai)
        .hangup(Hangup::Caller { after_ms: 6_000 })
        .start()
        .await
        .wait()
        .await;
    assert_eq!(s.app.get(&id).await["status"], "pending");
}

/// Rendering happens before serving: a prompt whose audio is missing stops
/// the start with one line naming the file.
#[tokio::test]
async fn a_missing_prompt_file_stops_the_start_naming_it() {
    let audio = tempfile::tempdir().expect("temp dir");
    let db = crate::db::TestDb::new(crate::db::Backend::of_run()).await;
    let mut opts = sip_opts(free_port(Transport::Tcp), None, |_| {});
    let dir = audio.path().display().to_string();
    let configure = opts.configure.take().expect("configure");
    opts.configure = Some(Arc::new(move |a| {
        configure(a);
        a.prompt_audio_dir = Some(dir.clone());
    }));
    let settings = ivr_auth::config::Settings::from_args(args(&opts, &db.url)).expect("settings");
    let Err(e) = ivr_auth::startup::Application::build(settings).await else { panic!("started without audio") };
    let line = e.to_string();
    assert!(line.contains("prompt audio missing: ") && line.contains(&audio.path().display().to_string()), "{line}");
    assert!(line.contains("prompts render") && !line.contains('\n'), "{line}");
}

/// A node holds at most IVR_AUTH_MAX_CONCURRENT_CALLS calls: one more INVITE
/// is answered 486 and takes nothing.
#[tokio::test]
async fn a_node_that_holds_its_most_calls_answers_busy() {
    let port = free_port(Transport::Tcp);
    let app = spawn_with(sip_opts(port, None, |a| a.max_concurrent_calls = Some(1))).await;
    let s = SipApp { app, sip: format!("127.0.0.1:{port}").parse().expect("addr") };
    inbound_request(&s.app, "1111").await;
    let first = caller(&s, plan(Dtmf::Rfc2833))
        .set("greeting_ms", 4000)
        .hangup(Hangup::Caller { after_ms: 1000 })
        .start()
        .await;
    wait_until("the first call up", Duration::from_secs(5), || async {
        (metric(&s.app, "ivr_auth_sip_active_calls").await == 1.0).then_some(())
    })
    .await;
    Sipp::scenario("inbound_forbidden")
        .key("caller", "+819011112222")
        .key("called", INBOUND)
        .set("status", 486)
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    assert_eq!(metric(&s.app, "ivr_auth_sip_over_capacity_total").await, 1.0);
    first.wait().await;
}

/// Session timers are honoured (the 200 carries Session-Expires back), and a
/// refreshing re-INVITE (answered with our SDP) and an UPDATE (answered 200)
/// keep the call, which then hears the keys.
#[tokio::test]
async fn session_refreshes_keep_the_call() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "7007").await;
    Sipp::scenario("inbound_refresh")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .set("greeting_ms", 1000)
        .keys(plan(Dtmf::Rfc2833).keys("7007"))
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    s.app.wait_status(&id, "verified").await;
}

/// SBCs send OPTIONS as keep-alives: an allowed peer gets 200; anyone else
/// 403, counted and nothing more.
#[tokio::test]
async fn options_keep_alives_are_answered_for_allowed_peers_only() {
    let s = sip_app(None).await;
    Sipp::scenario("options").key("called", INBOUND).remote(s.sip).start().await.passes().await;
    Sipp::scenario("options")
        .key("called", INBOUND)
        .set("status", 403)
        .local_ip("127.0.0.2")
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    assert_eq!(metric(&s.app, "ivr_auth_sip_refused_requests_total{method=\"OPTIONS\"}").await, 1.0);
}

/// A trunk that requires 100rel gets no provisional response but 100
/// (RFC 3262 allows it: 100 is never reliable), then the answer; the call
/// goes on as any other. A 180 would fail the SIPp scenario.
#[tokio::test]
async fn a_trunk_that_requires_100rel_is_answered_without_a_provisional() {
    let s = sip_app(None).await;
    let id = inbound_request(&s.app, "1001").await;
    Sipp::scenario("inbound_100rel")
        .key("caller", PHONE)
        .key("called", INBOUND)
        .set("greeting_ms", 1500)
        .keys(plan(Dtmf::Rfc2833).keys("1001"))
        .remote(s.sip)
        .start()
        .await
        .passes()
        .await;
    s.app.wait_status(&id, "verified").await;
}
