//! The provider side in `twilio` mode: call placement, signed webhooks, TwiML, ordering.

use serde_json::{Value, json};

use crate::helpers::*;

async fn twilio_app() -> (TestApp, ProviderDouble) {
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
    (app, double)
}

/// Registers an outbound request and waits until its call was placed; returns (id, code, sid).
async fn placed(app: &TestApp, double: &ProviderDouble, extra: Value) -> (String, String, String) {
    let mut body = json!({ "phone_number": PHONE, "locale": "en-US" });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let before = double.count();
    let r = app.register(body).await;
    let id = r["id"].as_str().unwrap().to_owned();
    double.wait_calls(before + 1).await;
    let v = app.wait_status(&id, "calling").await;
    let sid = v_sid(app, &id).await;
    assert!(v["call_status"].is_null());
    (id, r["code"].as_str().unwrap().to_owned(), sid)
}

async fn v_sid(app: &TestApp, id: &str) -> String {
    app.stored(id).await.call_sid.unwrap()
}

fn call_params<'a>(sid: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CallSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", "+815011112222"),
        ("To", to),
        ("Direction", "outbound-api"),
        ("CallStatus", "in-progress"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn places_the_call_as_the_provider_expects() {
    let (app, double) = twilio_app().await;
    let (id, _, sid) = placed(&app, &double, json!({})).await;
    let p = double.call(0);
    assert_eq!(param(&p, "To"), [PHONE]);
    assert_eq!(param(&p, "From"), ["+815011112222"]);
    assert_eq!(param(&p, "Method"), ["POST"]);
    // The call's spoken steps name its locale: a hold still speaks it when the database cannot.
    assert_eq!(param(&p, "Url"), [format!("{}/webhooks/twilio/voice/answer/{id}?lang=en-US", app.base).as_str()]);
    assert_eq!(param(&p, "StatusCallback"), [format!("{}/webhooks/twilio/voice/status/{id}", app.base).as_str()]);
    assert_eq!(param(&p, "StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"]);
    assert_eq!(param(&p, "Timeout"), ["30"]);
    assert!(sid.starts_with("CA"));
}

#[tokio::test(flavor = "multi_thread")]
async fn full_flow_over_signed_webhooks_with_exact_twiml() {
    let (app, double) = twilio_app().await;
    let (id, code, sid) = placed(&app, &double, json!({ "code": "2468" })).await;
    assert_eq!(code, "2468");
    let (status, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    assert_eq!(status, 200);
    let gather = format!("{}/webhooks/twilio/voice/gather/{id}?lang=en-US", app.base);
    let no_input = format!("{}/webhooks/twilio/voice/no-input/{id}?lang=en-US", app.base);
    assert_eq!(
        doc,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
             <Say language=\"en-US\" voice=\"Polly.Joanna\">Hello. This is an automated call from the verification service, to confirm your identity.</Say>\
             <Gather input=\"dtmf\" action=\"{gather}\" method=\"POST\" timeout=\"10\" finishOnKey=\"*\" numDigits=\"4\" actionOnEmptyResult=\"true\">\
             <Say language=\"en-US\" voice=\"Polly.Joanna\">Please enter the 4 digit code shown on your screen. To hear this again, press star.</Say>\
             </Gather><Redirect method=\"POST\">{no_input}</Redirect></Response>"
        )
    );
    let mut p = call_params(&sid, PHONE);
    p.push(("Digits", "2468"));
    p.push(("FinishedOnKey", ""));
    let (status, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert_eq!(status, 200);
    assert!(doc.contains("You are verified") && doc.ends_with("<Hangup/></Response>"), "{doc}");
    assert_eq!(app.get(&id).await["status"], "verified");
}

/// Issue 9: `*` repeats the prompt at no cost; a `#` typed out of habit
/// after the last digit is swallowed, never counted as a wrong code; a wrong
/// code says how many tries are left.
#[tokio::test(flavor = "multi_thread")]
async fn star_repeats_the_prompt_and_a_late_pound_costs_nothing() {
    let (app, double) = twilio_app().await;
    let (id, _, sid) = placed(&app, &double, json!({ "code": "2468" })).await;
    app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    let gather = format!("/webhooks/twilio/voice/gather/{id}");
    let typed = |digits: &'static str, key: &'static str| {
        let mut p = call_params(&sid, PHONE);
        p.push(("Digits", digits));
        p.push(("FinishedOnKey", key));
        p
    };
    for (digits, key) in [("", "*"), ("24", "*"), ("#246", ""), ("#", "")] {
        let (status, doc) = app.webhook(&gather, &typed(digits, key)).await;
        assert_eq!(status, 200);
        assert!(doc.contains("Please enter the 4 digit code") && doc.contains("<Gather"), "{digits}{key}: {doc}");
        assert!(!doc.contains("not correct") && !doc.contains("did not receive"), "{digits}{key}: {doc}");
        assert_eq!(app.get(&id).await["attempts"], 0, "{digits}{key} cost an attempt");
    }
    let (_, doc) = app.webhook(&gather, &typed("1111", "")).await;
    assert!(doc.contains("That code is not correct. Tries left: 2."), "{doc}");
    let (_, doc) = app.webhook(&gather, &typed("2468#", "")).await;
    assert!(doc.contains("You are verified"), "a # after a whole code is dropped: {doc}");
    assert_eq!(app.get(&id).await["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_or_missing_signatures_are_403_and_change_nothing() {
    let (app, double) = twilio_app().await;
    let (id, code, sid) = placed(&app, &double, json!({})).await;
    let path = format!("/webhooks/twilio/voice/answer/{id}");
    let p = call_params(&sid, PHONE);
    let (s, _) = app.raw_webhook(&path, &p, None).await;
    assert_eq!(s, 403);
    let (s, _) = app.raw_webhook(&path, &p, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")).await;
    assert_eq!(s, 403);
    // Signed for another request's URL, replayed here.
    let other_url = format!("{}/webhooks/twilio/voice/answer/{}", app.base, uuid::Uuid::now_v7());
    let owned: Vec<(String, String)> = p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let sig = ivr_auth::telephony::twilio::signature::sign(AUTH_TOKEN.as_bytes(), &other_url, &owned);
    let (s, _) = app.raw_webhook(&path, &p, Some(&sig)).await;
    assert_eq!(s, 403);
    // Signed with the wrong token.
    let url = format!("{}{}", app.base, path);
    let sig = ivr_auth::telephony::twilio::signature::sign(b"not-the-token", &url, &owned);
    let (s, _) = app.raw_webhook(&path, &p, Some(&sig)).await;
    assert_eq!(s, 403);
    // Digits with a tampered parameter set.
    let mut digits = p.clone();
    digits.push(("Digits", &code));
    let gather_path = format!("/webhooks/twilio/voice/gather/{id}");
    let mut signed: Vec<(String, String)> = digits.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    signed.retain(|(k, _)| k != "Digits");
    let sig = ivr_auth::telephony::twilio::signature::sign(
        AUTH_TOKEN.as_bytes(),
        &format!("{}{gather_path}", app.base),
        &signed,
    );
    let (s, _) = app.raw_webhook(&gather_path, &digits, Some(&sig)).await;
    assert_eq!(s, 403);
    for path in ["/webhooks/twilio/voice/inbound", "/webhooks/twilio/voice/status"] {
        let (s, body) = app.raw_webhook(path, &p, Some("bad")).await;
        assert_eq!(s, 403, "{path}");
        assert!(body.contains("forbidden"));
    }
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("calling"), Some(0)));
    let rejected = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(rejected.contains("ivr_auth_webhook_signature_rejections_total 7"), "{rejected}");
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_checked_against_the_public_url_behind_a_proxy() {
    let double = ProviderDouble::start().await;
    let public = "https://ivr.example.com/auth";
    let app = spawn_with(Opts {
        twilio_api: Some(double.base.clone()),
        public_url: Some(public.into()),
        ..Default::default()
    })
    .await;
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    double.wait_calls(1).await;
    let p = double.call(0);
    assert_eq!(param(&p, "Url"), [format!("{public}/webhooks/twilio/voice/answer/{id}?lang=ja-JP").as_str()]);
    let sid = {
        app.wait_status(id, "calling").await;
        v_sid(&app, id).await
    };
    // The provider signs the public URL; the request arrives at the local address.
    let (s, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    assert_eq!(s, 200);
    assert!(doc.contains(&format!("action=\"{public}/webhooks/twilio/voice/gather/{id}?lang=ja-JP\"")), "{doc}");
    // Signed for the local URL (what the Host header says): refused.
    let owned: Vec<(String, String)> =
        call_params(&sid, PHONE).iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let local = format!("{}/webhooks/twilio/voice/answer/{id}", app.base);
    let sig = ivr_auth::telephony::twilio::signature::sign(AUTH_TOKEN.as_bytes(), &local, &owned);
    let (s, _) =
        app.raw_webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE), Some(&sig)).await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_callbacks_late_twice_or_out_of_order_never_go_back() {
    let (app, double) = twilio_app().await;
    let (id, code, sid) = placed(&app, &double, json!({})).await;
    let status_path = format!("/webhooks/twilio/voice/status/{id}");
    let st = |s: &'static str, seq: &'static str| {
        let mut p = call_params(&sid, PHONE);
        p.retain(|(k, _)| *k != "CallStatus");
        p.push(("CallStatus", s));
        p.push(("SequenceNumber", seq));
        p
    };
    // "in-progress" overtakes "ringing"; "initiated" arrives last and twice.
    let (s, doc) = app.webhook(&status_path, &st("in-progress", "2")).await;
    assert_eq!((s, doc.as_str()), (200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"));
    app.webhook(&status_path, &st("ringing", "1")).await;
    app.webhook(&status_path, &st("initiated", "0")).await;
    app.webhook(&status_path, &st("initiated", "0")).await;
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["call_status"].as_str()), (Some("in_progress"), Some("in-progress")));
    // The caller's digits and the end of the call race; the digits win.
    app.webhook(&status_path, &st("completed", "3")).await;
    let mut p = call_params(&sid, PHONE);
    p.push(("Digits", &code));
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert!(doc.contains("verified"), "{doc}");
    // The end of the call left a finalize job for after the grace period; once it has run, the digits still win.
    app.wait_outbox_empty("finalize_call").await;
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["call_status"].as_str()), (Some("verified"), Some("completed")));
    // Late callbacks after the end change nothing.
    app.webhook(&status_path, &st("ringing", "1")).await;
    app.webhook(&status_path, &st("busy", "4")).await;
    let after = app.get(&id).await;
    assert_eq!(after["status"], "verified");
    assert_eq!(after["failure_reason"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failure_reason_from_the_provider() {
    let (app, double) = twilio_app().await;
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("CallStatus", "busy")], "busy"),
        (&[("CallStatus", "busy"), ("SipResponseCode", "603")], "rejected"),
        (&[("CallStatus", "no-answer")], "no_answer"),
        (&[("CallStatus", "failed")], "call_failed"),
        (&[("CallStatus", "canceled")], "call_failed"),
    ];
    for (extra, reason) in cases {
        let (id, _, sid) = placed(&app, &double, json!({})).await;
        let mut p: Vec<(&str, &str)> = vec![("CallSid", sid.as_str()), ("To", PHONE), ("From", "+815011112222")];
        p.extend_from_slice(extra);
        let (s, _) = app.webhook(&format!("/webhooks/twilio/voice/status/{id}"), &p).await;
        assert_eq!(s, 200);
        let v = app.get(&id).await;
        assert_eq!((v["status"].as_str(), v["failure_reason"].as_str()), (Some("failed"), Some(reason)), "{extra:?}");
    }
    // An answering machine is rejected too.
    let (id, _, sid) = placed(&app, &double, json!({})).await;
    let mut p = call_params(&sid, PHONE);
    p.push(("AnsweredBy", "machine_start"));
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &p).await;
    assert!(doc.contains("<Hangup/>") && !doc.contains("<Gather"), "{doc}");
    assert_eq!(app.get(&id).await["failure_reason"], "rejected");
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_4xx_fails_the_request_and_5xx_retries() {
    let (app, double) = twilio_app().await;
    double.then(400, r#"{"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}"#);
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    let v = app.wait_status(id, "failed").await;
    assert_eq!(v["failure_reason"], "call_failed");
    assert_eq!(double.count(), 1);

    double.then(503, "{}");
    double.then(429, r#"{"code": 20429, "message": "Too many requests"}"#);
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    double.wait_calls(4).await;
    let v = app.wait_status(id, "calling").await;
    assert!(v["failure_reason"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_for_unknown_finished_or_foreign_calls_say_goodbye_and_change_nothing() {
    let (app, double) = twilio_app().await;
    let (id, code, sid) = placed(&app, &double, json!({})).await;
    // Unknown request.
    let unknown = uuid::Uuid::now_v7();
    let (s, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{unknown}"), &call_params(&sid, PHONE)).await;
    assert_eq!(s, 200);
    assert!(doc.contains("Goodbye") || doc.contains("失礼いたします"), "{doc}");
    assert!(doc.ends_with("<Hangup/></Response>"));
    let (s, _) = app.webhook("/webhooks/twilio/voice/answer/not-a-uuid", &call_params(&sid, PHONE)).await;
    assert_eq!(s, 200);
    // A call to another number cannot touch this request.
    let (_, doc) =
        app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, "+819099990000")).await;
    assert!(!doc.contains("<Gather"), "{doc}");
    assert_eq!(app.get(&id).await["status"], "calling");
    // Another call sid cannot either.
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params("CAother", PHONE)).await;
    assert!(!doc.contains("<Gather"), "{doc}");
    // The real call connects; digits from another call sid are ignored.
    app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    let mut p = call_params("CAother", PHONE);
    p.push(("Digits", &code));
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert!(!doc.contains("verified"), "{doc}");
    assert_eq!(app.get(&id).await["status"], "in_progress");
    // Finished: cancel, then a webhook says goodbye and changes nothing.
    assert_eq!(app.cancel(&id).await.status(), 200);
    let mut p = call_params(&sid, PHONE);
    p.push(("Digits", &code));
    let (s, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert_eq!(s, 200);
    assert!(doc.ends_with("<Hangup/></Response>") && !doc.contains("verified"), "{doc}");
    assert_eq!(app.get(&id).await["status"], "canceled");
    // The live call was hung up through the provider's API.
    for _ in 0..100 {
        if double.ended.lock().unwrap().contains(&sid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(double.ended.lock().unwrap().contains(&sid));
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_request_on_a_live_call_says_expired() {
    let (app, double) = twilio_app().await;
    let (id, code, sid) = placed(&app, &double, json!({})).await;
    app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    app.expire_now(&id).await;
    let mut p = call_params(&sid, PHONE);
    p.push(("Digits", &code));
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert!(doc.contains("This code has expired") && doc.ends_with("<Hangup/></Response>"), "{doc}");
    assert_eq!(app.get(&id).await["status"], "expired");
    // The answer hangs up after the prompt: a hang-up through the API would cut it off.
    assert!(!hung_up_by_api(&double, &sid).await, "the caller would hear the call drop in silence");
}

/// Whether the provider is asked to hang up call `sid` within 1.5 s (it is
/// at once when it is: the job is leased to the server that decided it).
async fn hung_up_by_api(double: &ProviderDouble, sid: &str) -> bool {
    for _ in 0..75 {
        if double.ended.lock().unwrap().iter().any(|s| s == sid) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_expiring_while_the_caller_listens_says_so_before_hanging_up() {
    let (app, double) = twilio_app().await;
    let (id, _, sid) = placed(&app, &double, json!({})).await;
    app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    app.expire_now(&id).await;
    // The sweeper stores the expiry while the caller is in the Gather...
    for _ in 0..200 {
        if app.stored(&id).await.status.as_str() == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(app.stored(&id).await.status.as_str(), "expired");
    assert!(!hung_up_by_api(&double, &sid).await, "the caller would hear the call drop in silence");
    // ...and the Gather's silence (or digits) brings the prompt, then the hang-up.
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/no-input/{id}"), &call_params(&sid, PHONE)).await;
    assert!(doc.contains("This code has expired") && doc.ends_with("<Hangup/></Response>"), "{doc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_audio_is_played_and_served() {
    let prompts = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prompts.path().join("en-US")).unwrap();
    std::fs::write(prompts.path().join("en-US/greeting.wav"), b"RIFF....WAVEfmt ").unwrap();
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts {
        twilio_api: Some(double.base.clone()),
        voice_prompts_dir: Some(prompts.path().to_owned()),
        ..Default::default()
    })
    .await;
    let (id, _, sid) = placed(&app, &double, json!({})).await;
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(&sid, PHONE)).await;
    let url = format!("{}/voice_prompts/en-US/greeting.wav", app.base);
    assert!(doc.contains(&format!("<Play>{url}</Play>")), "{doc}");
    let audio = app.http.get(&url).send().await.unwrap();
    assert_eq!(audio.status(), 200);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let missing = app.http.get(app.url("/voice_prompts/en-US/..%2F..%2Fetc%2Fpasswd")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_progress_callback_before_the_call_is_recorded_does_not_hang_up_the_caller() {
    let (app, double) = twilio_app().await;
    // The provider's answer to the call request is slow to be recorded: here, never (503s).
    for _ in 0..20 {
        double.then(503, "{}");
    }
    let r = app.register(json!({ "phone_number": PHONE, "locale": "en-US", "code": "4242" })).await;
    let id = r["id"].as_str().unwrap();
    double.wait_calls(1).await;
    let sid = "CA0123456789abcdef0123456789abcdef";
    let mut status = call_params(sid, PHONE);
    status.retain(|(k, _)| *k != "CallStatus");
    status.push(("CallStatus", "in-progress"));
    let (s, _) = app.webhook(&format!("/webhooks/twilio/voice/status/{id}"), &status).await;
    assert_eq!(s, 200);
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &call_params(sid, PHONE)).await;
    assert!(doc.contains("<Gather") && !doc.contains("<Hangup/>"), "the caller is served: {doc}");
    let mut p = call_params(sid, PHONE);
    p.push(("Digits", "4242"));
    app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await;
    assert_eq!(app.get(id).await["status"], "verified");
}
