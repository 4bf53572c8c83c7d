//! The flows every adapter must carry the same way: a call out and in, a code
//! read aloud, a wrong code, silence, refusals, and status callbacks out of order.

use serde_json::{Value, json};

use super::{CALLER_ID, Call, CallStatus, Hook, PUBLIC, Placed, Provider, Script, What, inbound_url};
use crate::helpers::{INBOUND, Opts, PHONE, TestApp, spawn_with};

/// A server pointed at a provider's double.
pub struct Run<P: Provider> {
    pub p: P,
    pub app: TestApp,
}

/// The harness's options for a server behind `PUBLIC`, configured for `p`.
pub fn opts(p: &impl Provider) -> Opts {
    Opts { public_url: Some(PUBLIC.into()), configure: Some(p.settings()), ..Default::default() }
}

/// An outbound call as the double reports it: from the caller ID to the callee.
pub fn call_of(placed: &Placed) -> Call {
    Call { sid: placed.sid.clone(), from: CALLER_ID.into(), to: placed.to.clone() }
}

/// Sends `hook` to `app` (its path under the public URL, at the server's own address).
pub async fn send(app: &TestApp, hook: &Hook) -> (u16, String) {
    let path = hook.url.strip_prefix(PUBLIC).unwrap_or_else(|| panic!("{} is not under {PUBLIC}", hook.url));
    let mut req = app.http.request(hook.method.clone(), app.url(path)).body(hook.body.clone());
    if let Some(kind) = hook.content_type {
        req = req.header("content-type", kind);
    }
    for (name, value) in &hook.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

impl<P: Provider> Run<P> {
    pub async fn start(p: P) -> Self {
        let app = spawn_with(opts(&p)).await;
        Self { p, app }
    }

    /// Registers `body` (English prompts) and waits until its call is placed
    /// and recorded; returns the registration's answer and the call.
    pub async fn placed(&self, mut body: Value) -> (Value, Placed) {
        body["locale"] = json!("en-US");
        let r = self.app.register(body).await;
        let id = r["id"].as_str().unwrap();
        let placed = self.p.calls().wait_for(id).await;
        assert_eq!((placed.to.as_str(), placed.from.as_str()), (PHONE, CALLER_ID), "{placed:?}");
        self.app.wait_status(id, "calling").await;
        (r, placed)
    }

    /// A signed webhook to `app`: 200 expected; returns the script answered.
    pub async fn hook_on(&self, app: &TestApp, url: &str, call: &Call, what: What<'_>) -> Script {
        let hook = self.p.sign(self.p.webhook(url, call, what));
        let (status, body) = send(app, &hook).await;
        assert_eq!(status, 200, "{what:?} to {url}: {body}");
        let script = self.p.script(&body);
        if let Some(next) = &script.gather_url {
            let folder = format!("{PUBLIC}/webhooks/{}/", self.p.name());
            assert!(next.starts_with(&folder), "the gather stays in the provider's folder: {next}");
        }
        script
    }

    pub async fn hook(&self, url: &str, call: &Call, what: What<'_>) -> Script {
        self.hook_on(&self.app, url, call, what).await
    }

    /// Answers `placed` and expects the prompt and a gather; returns the gather's URL.
    pub async fn answer(&self, placed: &Placed) -> String {
        let script = self.hook(&placed.answer_url, &call_of(placed), What::Answer).await;
        assert!(script.says("automated call"), "the greeting: {script:?}");
        script.gather_url.clone().unwrap_or_else(|| panic!("the answer gathers: {script:?}"))
    }

    /// The calls placed for request `id`, after it ended.
    pub fn placed_count(&self, id: &str) -> usize {
        self.p.calls().for_request(id).len()
    }
}

fn id_and_code(r: &Value) -> (String, String) {
    (r["id"].as_str().unwrap().to_owned(), r["code"].as_str().unwrap_or_default().to_owned())
}

pub async fn outbound(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, code) = id_and_code(&r);
    let gather = run.answer(&placed).await;
    let script = run.hook(&gather, &call_of(&placed), What::Digits(&code)).await;
    assert!(script.says("You are verified") && script.hangs_up, "{script:?}");
    let v = run.app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("verified"), Some(0)), "{v}");
    assert_eq!(run.placed_count(&id), 1, "one call placed");
}

/// The user dials the inbound number from the registered phone; `get`: the
/// provider fetches the inbound URL with GET (Vonage's default).
pub async fn inbound(p: impl Provider, get: bool) {
    let run = Run::start(p).await;
    let r = run.app.register(json!({ "phone_number": PHONE, "mode": "inbound", "locale": "en-US" })).await;
    assert_eq!(r["inbound_number"], INBOUND);
    let (id, code) = id_and_code(&r);
    let call = Call { sid: run.p.new_sid(), from: PHONE.into(), to: INBOUND.into() };
    let script = run.hook(&inbound_url(run.p.name()), &call, What::Inbound { get }).await;
    let gather = script.gather_url.clone().unwrap_or_else(|| panic!("the inbound call gathers: {script:?}"));
    assert_eq!(run.app.get(&id).await["status"], "in_progress");
    let script = run.hook(&gather, &call, What::Digits(&code)).await;
    assert!(script.says("You are verified") && script.hangs_up, "{script:?}");
    assert_eq!(run.app.get(&id).await["status"], "verified");
    assert_eq!(run.placed_count(&id), 0, "no call placed for an inbound request");
}

pub async fn voice_otp(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE, "channel": "voice_otp" })).await;
    assert!(r.get("code").is_none(), "{r}");
    let (id, _) = id_and_code(&r);
    let script = run.hook(&placed.answer_url, &call_of(&placed), What::Answer).await;
    let code = script.code_read().unwrap_or_else(|| panic!("the code is read aloud: {script:?}"));
    assert_eq!(code.len(), 6, "{script:?}");
    let resp = run.app.check(&id, json!({ "code": code })).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(run.placed_count(&id), 1);
}

/// The code with its last digit changed.
fn wrong(code: &str) -> String {
    let last = code.chars().last().unwrap();
    format!("{}{}", &code[..code.len() - 1], if last == '0' { '1' } else { '0' })
}

pub async fn wrong_then_right(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, code) = id_and_code(&r);
    let call = call_of(&placed);
    let gather = run.answer(&placed).await;
    let script = run.hook(&gather, &call, What::Digits(&wrong(&code))).await;
    assert!(script.says("not correct") && !script.hangs_up, "{script:?}");
    let again = script.gather_url.clone().unwrap_or_else(|| panic!("asks again: {script:?}"));
    let v = run.app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("in_progress"), Some(1)), "{v}");
    let script = run.hook(&again, &call, What::Digits(&code)).await;
    assert!(script.says("You are verified"), "{script:?}");
    let v = run.app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("verified"), Some(1)), "{v}");
}

/// Silence until the server gives up: it asks again, three times in all, then fails `no_input`.
pub async fn no_input(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, _) = id_and_code(&r);
    let call = call_of(&placed);
    let mut gather = Some(run.answer(&placed).await);
    let mut silences = 0;
    while let Some(url) = gather.take() {
        assert!(silences < 10, "never gave up");
        let script = run.hook(&url, &call, What::Silence).await;
        silences += 1;
        assert!(script.says("did not receive"), "{script:?}");
        gather = script.gather_url.clone();
        assert_eq!(script.hangs_up, gather.is_none(), "{script:?}");
    }
    assert_eq!(silences, 3, "three silences");
    let v = run.app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["failure_reason"].as_str()), (Some("failed"), Some("no_input")), "{v}");
}

pub async fn busy_and_declined(p: impl Provider) {
    let run = Run::start(p).await;
    for (progress, reason) in [(CallStatus::Busy, "busy"), (CallStatus::Declined, "rejected")] {
        let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
        let (id, _) = id_and_code(&r);
        run.hook(&placed.status_url, &call_of(&placed), What::Status(CallStatus::Ringing)).await;
        run.hook(&placed.status_url, &call_of(&placed), What::Status(progress)).await;
        let v = run.app.get(&id).await;
        let seen = (v["status"].as_str(), v["failure_reason"].as_str(), v["call_status"].as_str());
        assert_eq!(seen, (Some("failed"), Some(reason), Some("busy")), "{progress:?}: {v}");
        assert_eq!(run.placed_count(&id), 1);
    }
}

/// Ringing twice, the answer, then `completed` before a late `in-progress`
/// and a late `ringing`: the call ends as a hang-up without a code.
pub async fn out_of_order(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, _) = id_and_code(&r);
    let call = call_of(&placed);
    let status = |progress| run.hook(&placed.status_url, &call, What::Status(progress));
    status(CallStatus::Ringing).await;
    status(CallStatus::Ringing).await;
    run.answer(&placed).await;
    status(CallStatus::Completed).await;
    status(CallStatus::InProgress).await;
    status(CallStatus::Ringing).await;
    run.app.wait_outbox_empty("finalize_call").await;
    let v = run.app.wait_for(&id, "the end of the call", |v| v["status"] == "failed").await;
    let seen = (v["failure_reason"].as_str(), v["call_status"].as_str());
    assert_eq!(seen, (Some("no_input"), Some("completed")), "{v}");
    status(CallStatus::Busy).await;
    assert_eq!(run.app.get(&id).await, v, "a terminal request never changes");
}
