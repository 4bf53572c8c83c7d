//! Issue 9: the `voice_otp` and `sms` channels, `/check`, and the SMS fallback of an unanswered call.

use serde_json::{Value, json};

use crate::helpers::*;

/// The code a `voice_otp` call read aloud: a `<Say>` of digits separated by commas.
fn read_aloud(heard: &[String]) -> Vec<String> {
    heard
        .iter()
        .filter(|t| {
            let parts: Vec<&str> = t.split(", ").collect();
            parts.len() >= 4 && parts.iter().all(|p| p.len() == 1 && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|t| t.replace(", ", ""))
        .collect()
}

/// The digits of a text message's code (the first run of 4 or more digits).
fn code_in(text: &str) -> String {
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else if run.len() >= 4 {
            return run;
        } else {
            run.clear();
        }
    }
    run
}

async fn checked(app: &TestApp, id: &str, code: &str) -> (u16, Value) {
    let resp = app.check(id, json!({ "code": code })).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn wait_message(app: &TestApp, to: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let messages = app.sim_messages(to).await;
        if messages.len() >= count {
            return messages;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no text message reached {to}");
}

#[tokio::test(flavor = "multi_thread")]
async fn voice_otp_reads_the_code_aloud_and_the_site_checks_it() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "voice_otp", "locale": "en-US" })).await;
    assert!(r.get("code").is_none(), "only the user receives a voice_otp code: {r}");
    assert_eq!(r["channel"], "voice_otp");
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_wait_state(&sid, "completed").await;
    let heard = app.sim_heard(&sid).await;
    let codes = read_aloud(&heard);
    assert_eq!(codes.len(), 2, "read twice: {heard:?}");
    assert_eq!(codes[0], codes[1]);
    assert_eq!(codes[0].len(), 6);
    assert!(heard.iter().any(|t| t.contains("press 1")), "{heard:?}");
    // The call has ended; the request waits for the code typed on the page.
    let v = app.get(id).await;
    assert_eq!(v["status"], "in_progress", "{v}");

    let wrong = if codes[0] == "000000" { "111111" } else { "000000" };
    let (status, v) = checked(&app, id, wrong).await;
    assert_eq!((status, v["status"].as_str(), v["attempts"].as_u64()), (200, Some("in_progress"), Some(1)), "{v}");
    let (status, v) = checked(&app, id, &codes[0]).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("verified")), "{v}");
    assert!(v["verified_at"].is_string());
    let (status, v) = checked(&app, id, &codes[0]).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("already_terminal")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn voice_otp_reads_it_again_when_1_is_pressed() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "voice_otp" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, "1").await;
    app.sim_wait_state(&sid, "completed").await;
    let heard = app.sim_heard(&sid).await;
    let codes = read_aloud(&heard);
    assert_eq!(codes.len(), 4, "twice, then twice again: {heard:?}");
    assert!(heard.iter().any(|t| t.contains("認証番号を、申し上げます")), "{heard:?}");
    assert!(heard.iter().any(|t| t.contains("1を押してください")), "{heard:?}");
    let (status, v) = checked(&app, id, &codes[3]).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("verified")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_sends_the_code_to_the_phone_only() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "sms" })).await;
    assert!(r.get("code").is_none(), "{r}");
    let id = r["id"].as_str().unwrap();
    let messages = wait_message(&app, PHONE, 1).await;
    let body = messages[0]["body"].as_str().unwrap();
    assert!(body.contains("認証番号"), "{body}");
    let code = code_in(body);
    assert_eq!(code.len(), 6, "{body}");
    let v = app.wait_for(id, "delivered", |v| v["deliveries"][0]["status"] == "delivered").await;
    assert_eq!(v["status"], "in_progress", "{v}");
    assert_eq!(v["deliveries"][0]["channel"], "sms");
    let calls: Value = app.http.get(app.url("/simulator/calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls["calls"], json!([]), "no call for an sms request");
    let (status, v) = checked(&app, id, &code).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("verified")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_call_falls_back_to_a_text_message_with_a_second_code() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "fallback": ["sms"], "locale": "en-US" })).await;
    let page_code = r["code"].as_str().unwrap().to_owned();
    assert_eq!(r["fallback"], json!(["sms"]));
    let id = r["id"].as_str().unwrap();
    // Before the fallback, the code is typed on the phone, not checked on the page.
    let (status, v) = checked(&app, id, &page_code).await;
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("not_checked_here")), "{v}");

    let call = app.sim_call(id, |c| c["state"] == "ringing").await;
    app.sim_post(call["sid"].as_str().unwrap(), "decline", None).await;
    let messages = wait_message(&app, PHONE, 1).await;
    let text = messages[0]["body"].as_str().unwrap();
    assert!(text.contains("verification code"), "{text}");
    let sms_code = code_in(text);
    assert_ne!(sms_code, page_code, "the page's code proves nothing on the page");
    let v = app.wait_for(id, "fell back", |v| v["deliveries"].as_array().is_some_and(|d| d.len() == 2)).await;
    assert_eq!(v["deliveries"][0]["channel"], "voice_dtmf");
    assert_eq!(v["deliveries"][0]["status"], "rejected");
    assert_eq!(v["deliveries"][1]["channel"], "sms");
    assert!(!v["status"].as_str().unwrap().starts_with("fail"), "{v}");

    let (status, v) = checked(&app, id, &page_code).await;
    assert_eq!((status, v["attempts"].as_u64()), (200, Some(1)), "the page's code is wrong here: {v}");
    let (status, v) = checked(&app, id, &sms_code).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("verified")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_fallback_an_unanswered_call_fails_as_before() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    let call = app.sim_call(id, |c| c["state"] == "ringing").await;
    app.sim_post(call["sid"].as_str().unwrap(), "decline", None).await;
    let v = app.wait_for(id, "failed", |v| v["status"] == "failed").await;
    assert_eq!(v["failure_reason"], "rejected");
    assert!(app.sim_messages(PHONE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_checks_use_up_the_attempts() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "sms", "max_attempts": 2 })).await;
    let id = r["id"].as_str().unwrap();
    let code = code_in(wait_message(&app, PHONE, 1).await[0]["body"].as_str().unwrap());
    let wrong = if code == "123456" { "654321" } else { "123456" };
    checked(&app, id, wrong).await;
    let (status, v) = checked(&app, id, wrong).await;
    assert_eq!((status, v["status"].as_str(), v["failure_reason"].as_str()), (200, Some("failed"), Some("wrong_code")));
    assert_eq!(v["attempts"], 2);
    let (status, _) = checked(&app, id, &code).await;
    assert_eq!(status, 409, "the right code after the limit changes nothing");
    assert_eq!(app.get(id).await["status"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_what_it_cannot_take() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "sms" })).await;
    let id = r["id"].as_str().unwrap();
    for bad in [json!({ "code": "12" }), json!({ "code": "12a456" }), json!({ "code": 123456 }), json!({})] {
        let resp = app.check(id, bad.clone()).await;
        assert_eq!(resp.status(), 422, "{bad}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().starts_with("code"), "{v}");
    }
    assert_eq!(app.get(id).await["attempts"], 0, "nothing was counted");
    let beta = create_tenant(app.db_url(), "beta").await;
    let resp = app
        .http
        .post(app.url(&format!("/v1/auth-requests/{id}/check")))
        .bearer_auth(&beta.api_key)
        .json(&json!({ "code": "123456" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "another tenant's request");
    let (status, _) = checked(&app, &uuid::Uuid::now_v7().to_string(), "123456").await;
    assert_eq!(status, 404);
    assert_eq!(app.get(id).await["attempts"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_refuses_channel_combinations_that_cannot_work() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "phone_number": PHONE, "channel": "sms", "mode": "inbound" }), "mode"),
        (json!({ "phone_number": PHONE, "channel": "voice_otp", "code": "123456" }), "code"),
        (json!({ "phone_number": PHONE, "channel": "sms", "fallback": ["sms"] }), "fallback"),
        (json!({ "phone_number": "03-1234-5678", "channel": "sms" }), "phone_number"),
        (json!({ "phone_number": PHONE, "channel": "telegram" }), "channel"),
    ] {
        let resp = app.register_as(&app.tenant, body.clone()).await;
        assert_eq!(resp.status(), 422, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().starts_with(field), "{body}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undeliverable_message_fails_the_request() {
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
    // The provider refuses the message outright (a landline it cannot text, say).
    *double.message_status.lock().unwrap() = 400;
    let r = app.register(json!({ "phone_number": PHONE, "channel": "sms" })).await;
    let v = app.wait_for(r["id"].as_str().unwrap(), "failed", |v| v["status"] == "failed").await;
    assert_eq!(v["failure_reason"], "delivery_failed", "{v}");
    // The provider takes it, then reports it undelivered.
    *double.message_status.lock().unwrap() = 0;
    let r = app.register(json!({ "phone_number": "+819012345679", "channel": "sms" })).await;
    let id = r["id"].as_str().unwrap();
    let v = app.wait_for(id, "sent", |v| v["deliveries"][0]["status"] == "sent").await;
    let sid = v["deliveries"][0]["sid"].as_str().unwrap().to_owned();
    let sent = double.messages.lock().unwrap().last().cloned().unwrap();
    assert_eq!(param(&sent, "To"), ["+819012345679"]);
    let callback = param(&sent, "StatusCallback")[0].to_owned();
    let path = callback.strip_prefix(&app.public_url).unwrap().to_owned();
    let other = [("MessageSid", "SMother"), ("MessageStatus", "undelivered")];
    assert_eq!(app.webhook(&path, &other).await.0, 200);
    assert_eq!(app.get(id).await["status"], "in_progress", "another message's report changes nothing");
    let (status, _) = app.webhook(&path, &[("MessageSid", &sid), ("MessageStatus", "undelivered")]).await;
    assert_eq!(status, 200);
    let v = app.get(id).await;
    assert_eq!((v["status"].as_str(), v["failure_reason"].as_str()), (Some("failed"), Some("delivery_failed")));
    assert_eq!(v["deliveries"][0]["status"], "undelivered");
}

/// Every step of a fallback and of a voice_otp call on another node than the
/// step before: one text message, one call, and the checks agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channels_work_when_each_step_lands_on_another_node() {
    let double = ProviderDouble::start().await;
    let db = std::sync::Arc::new(TestDb::new(Backend::Postgres).await);
    let opts = || Opts {
        twilio_api: Some(double.base.clone()),
        public_url: Some("https://ivr.example.test".into()),
        ..Default::default()
    };
    let first = spawn_on(opts(), db.clone()).await;
    let tenant = first.tenant.clone();
    let mut nodes = vec![first];
    for _ in 0..2 {
        nodes.push(spawn_as(opts(), db.clone(), Some(tenant.clone())).await);
    }
    let path_of = |url: &str| url.strip_prefix("https://ivr.example.test").unwrap().to_owned();

    // A call nobody takes, on node 0; its busy (declined) report reaches node 1.
    let r = nodes[0].register(json!({ "phone_number": PHONE, "fallback": ["sms"], "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    double.wait_calls(1).await;
    let call = double.call(0);
    let status_path = path_of(param(&call, "StatusCallback")[0]);
    let sid = ProviderDouble::sid(0);
    let busy = [("CallSid", sid.as_str()), ("CallStatus", "busy"), ("SipResponseCode", "603"), ("To", PHONE)];
    assert_eq!(nodes[1].webhook(&status_path, &busy).await.0, 200);
    assert_eq!(nodes[2].webhook(&status_path, &busy).await.0, 200, "a duplicate report");
    let v = nodes[2].wait_for(&id, "sent", |v| v["deliveries"][1]["status"] == "sent").await;
    assert_eq!(v["deliveries"][0]["status"], "rejected");
    // The duplicate report answered 200 after its transaction: a second text
    // would be a send_sms job in the outbox by now. Once none waits, all were sent.
    nodes[0].wait_outbox_empty("send_sms").await;
    let messages = double.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 1, "one text message, whichever node ran the job");
    let code = code_in(param(&messages[0], "Body")[0]);
    let report = path_of(param(&messages[0], "StatusCallback")[0]);
    let message_sid = v["deliveries"][1]["sid"].as_str().unwrap().to_owned();
    let delivered = [("MessageSid", message_sid.as_str()), ("MessageStatus", "delivered")];
    assert_eq!(nodes[0].webhook(&report, &delivered).await.0, 200);
    let resp = nodes[1].check(&id, json!({ "code": code })).await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(v["deliveries"][1]["status"], "delivered");

    // A voice_otp call answered on node 2, read again on node 0, checked on node 1.
    let r =
        nodes[1].register(json!({ "phone_number": "+819012345670", "channel": "voice_otp", "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    double.wait_calls(2).await;
    let call = double.call(1);
    let answer = path_of(param(&call, "Url")[0]);
    let sid = ProviderDouble::sid(1);
    let on_call = [("CallSid", sid.as_str()), ("CallStatus", "in-progress"), ("To", "+819012345670")];
    let (_, doc) = nodes[2].webhook(&answer, &on_call).await;
    let heard: Vec<String> = doc
        .split("<Say")
        .filter_map(|s| s.split_once('>'))
        .map(|(_, t)| t.split('<').next().unwrap().to_owned())
        .collect();
    let codes = read_aloud(&heard);
    assert_eq!(codes.len(), 2, "{doc}");
    let mut again = on_call.to_vec();
    again.push(("Digits", "1"));
    let (_, doc) = nodes[0].webhook(&format!("/webhooks/twilio/voice/otp/{id}"), &again).await;
    assert!(doc.contains(&codes[0].chars().map(String::from).collect::<Vec<_>>().join(", ")), "{doc}");
    let resp = nodes[1].check(&id, json!({ "code": codes[0] })).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "verified");
    assert_eq!(double.count(), 2, "one call each");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_number_limit_counts_every_channel() {
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|a| a.phone_rate_limit = Some(2))),
        ..Default::default()
    })
    .await;
    app.register(json!({ "phone_number": PHONE, "channel": "sms" })).await;
    app.register(json!({ "phone_number": PHONE, "channel": "voice_otp" })).await;
    let resp = app.register_as(&app.tenant, json!({ "phone_number": PHONE })).await;
    assert_eq!(resp.status(), 429, "a text and a call count as two");
    assert!(resp.text().await.unwrap().contains("phone_number"));
}

/// A code read aloud must never be left on a voicemail: voice_otp calls ask
/// the provider for machine detection, and a machine hears no code.
#[tokio::test(flavor = "multi_thread")]
async fn a_voice_otp_call_never_reads_the_code_to_a_machine() {
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
    app.register(json!({ "phone_number": "+819012345670" })).await;
    double.wait_calls(1).await;
    assert!(param(&double.call(0), "MachineDetection").is_empty(), "a voice_dtmf call needs no detection");
    let r = app.register(json!({ "phone_number": PHONE, "channel": "voice_otp", "fallback": ["sms"] })).await;
    let id = r["id"].as_str().unwrap();
    double.wait_calls(2).await;
    let call = double.call(1);
    assert_eq!(param(&call, "MachineDetection"), ["Enable"]);
    let path = param(&call, "Url")[0].strip_prefix(&app.public_url).unwrap().to_owned();
    let sid = ProviderDouble::sid(1);
    let machine =
        [("CallSid", sid.as_str()), ("To", PHONE), ("CallStatus", "in-progress"), ("AnsweredBy", "machine_start")];
    let (status, doc) = app.webhook(&path, &machine).await;
    assert_eq!(status, 200);
    assert!(!doc.contains(", ") && doc.ends_with("<Hangup/></Response>"), "no code for a machine: {doc}");
    let v = app.wait_for(id, "fell back", |v| v["deliveries"][1]["channel"] == "sms").await;
    assert_eq!(v["deliveries"][0]["status"], "rejected", "{v}");
}
