//! Whole verifications through the simulator: outbound, inbound, wrong codes, silence, refusals.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn outbound_call_verifies_with_the_right_code() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": "090-1234-5678", "user_id": "u-1", "locale": "en-US" })).await;
    assert_eq!(r["status"], "pending");
    assert_eq!(r["phone_number"], PHONE);
    assert_eq!(r["user_id"], "u-1");
    let code = r["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    let id = r["id"].as_str().unwrap();

    app.wait_status(id, "calling").await;
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, code).await;
    let done = app.wait_status(id, "verified").await;
    assert_eq!(done["attempts"], 0);
    assert!(done["verified_at"].is_string());
    assert!(done.get("code").is_none(), "the result API never shows the code");

    let heard = app.sim_heard(&sid).await;
    assert!(heard[0].contains("automated call from the verification service"), "{heard:?}");
    assert!(heard.iter().any(|t| t.contains("6 digit code")), "{heard:?}");
    assert!(heard.iter().any(|t| t.contains("You are verified")), "{heard:?}");
    app.sim_wait_state(&sid, "completed").await;
    let after = app.wait_for(id, "call completed", |v| v["call_status"] == "completed").await;
    assert_eq!(after["status"], "verified", "a late completed callback keeps the result");
}

#[tokio::test(flavor = "multi_thread")]
async fn japanese_prompts_by_default() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": "09012345678", "code": "4321" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, "4321").await;
    app.wait_status(id, "verified").await;
    let heard = app.sim_heard(&sid).await;
    assert!(heard.iter().any(|t| t.contains("4桁の認証番号")), "{heard:?}");
    assert!(heard.iter().any(|t| t.contains("ご本人確認ができました")), "{heard:?}");
    assert!(heard.iter().all(|t| !t.contains("シャープ")), "nobody is asked for #: {heard:?}");
    assert_eq!(heard.last().map(String::as_str), Some("失礼いたします。"), "a call we placed: {heard:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_code_then_right_code() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "code": "123456", "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, "999999").await;
    let v = app.wait_for(id, "one wrong attempt", |v| v["attempts"] == 1).await;
    assert_eq!(v["status"], "in_progress");
    app.sim_keys(&sid, "123456").await;
    let v = app.wait_status(id, "verified").await;
    assert_eq!(v["attempts"], 1);
    let heard = app.sim_heard(&sid).await;
    assert!(heard.iter().any(|t| t.contains("not correct")), "{heard:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_attempts_fails_with_wrong_code() {
    let app = spawn_app().await;
    let r =
        app.register(json!({ "phone_number": PHONE, "code": "123456", "max_attempts": 2, "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, "000000").await;
    app.wait_for(id, "attempt 1", |v| v["attempts"] == 1).await;
    app.sim_keys(&sid, "111111#").await;
    let v = app.wait_status(id, "failed").await;
    assert_eq!(v["failure_reason"], "wrong_code");
    assert_eq!(v["attempts"], 2);
    app.sim_wait_state(&sid, "completed").await;
    let heard = app.sim_heard(&sid).await;
    assert!(heard.iter().any(|t| t.contains("could not verify")), "{heard:?}");
    // The right code after failure changes nothing.
    assert_eq!(app.get(id).await["status"], "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn silence_repeats_the_prompt_then_fails_with_no_input() {
    let app = spawn_with(Opts { gather_timeout: 1, ..Default::default() }).await;
    let r = app.register(json!({ "phone_number": PHONE, "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    let v = app.wait_status(id, "failed").await;
    assert_eq!(v["failure_reason"], "no_input");
    // The status changes before the simulator has spoken the last answer: wait for its words.
    let heard = wait_until("the last no-input prompt heard", Duration::from_secs(10), || async {
        let heard = app.sim_heard(&sid).await;
        (heard.iter().filter(|t| t.contains("did not receive")).count() >= 3).then_some(heard)
    })
    .await;
    let asked = heard.iter().filter(|t| t.contains("Please enter")).count();
    assert_eq!(asked, 3, "asked three times before giving up: {heard:?}");
    assert_eq!(heard.iter().filter(|t| t.contains("did not receive")).count(), 3, "{heard:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn declined_call_is_rejected() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    let call = app.sim_call(id, |c| c["state"] == "ringing").await;
    let sid = call["sid"].as_str().unwrap();
    assert_eq!(app.sim_post(sid, "decline", None).await.status(), 200);
    let v = app.wait_status(id, "failed").await;
    assert_eq!(v["failure_reason"], "rejected");
    assert_eq!(v["call_status"], "busy");
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_up_without_a_code_fails_with_no_input() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_wait_gather(&sid).await;
    assert_eq!(app.sim_post(&sid, "hangup", None).await.status(), 200);
    let v = app.wait_status(id, "failed").await;
    assert_eq!(v["failure_reason"], "no_input");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_call_from_the_registered_number_verifies() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": "090-1234-5678", "mode": "inbound" })).await;
    assert_eq!(r["inbound_number"], INBOUND);
    let id = r["id"].as_str().unwrap();
    let code = r["code"].as_str().unwrap();
    // No call is placed in inbound mode: a placement would have been queued
    // before the registration was answered, and would leave the request calling.
    app.wait_outbox_empty("place_call").await;
    assert_eq!(app.get(id).await["status"], "pending");

    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_keys(sid, code).await;
    let v = app.wait_status(id, "verified").await;
    assert_eq!(v["mode"], "inbound");
    app.sim_wait_state(sid, "completed").await;
    let v = app.wait_for(id, "inbound call status by sid", |v| v["call_status"] == "completed").await;
    assert_eq!(v["status"], "verified");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_matches_the_newest_pending_request() {
    let app = spawn_app().await;
    let old = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "1111" })).await;
    let new = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "2222" })).await;
    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_keys(sid, "2222").await;
    app.wait_status(new["id"].as_str().unwrap(), "verified").await;
    assert_eq!(app.get(old["id"].as_str().unwrap()).await["status"], "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_with_withheld_caller_id_is_told_to_dial_186() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let id = r["id"].as_str().unwrap();
    for from in ["anonymous", "+266696687", ""] {
        let call = app.sim_dial(from).await;
        let sid = call["sid"].as_str().unwrap();
        app.sim_wait_state(sid, "completed").await;
        let heard = app.sim_heard(sid).await.join(" ");
        assert!(heard.contains("いち、はち、ろく"), "{from}: {heard}");
    }
    assert_eq!(app.get(id).await["status"], "pending", "nothing changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_from_an_unknown_number_hears_no_pending_request() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let call = app.sim_dial("+819099998888").await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_wait_state(sid, "completed").await;
    let heard = app.sim_heard(sid).await.join(" ");
    assert!(heard.contains("受付中のご本人確認がございません"), "{heard}");
    assert_eq!(app.get(r["id"].as_str().unwrap()).await["status"], "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn paced_prompts_take_their_time_and_a_key_interrupts_them() {
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|a| a.simulator_pacing = Some(true))),
        ..Default::default()
    })
    .await;
    let r = app.register(json!({ "phone_number": PHONE, "code": "4242", "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap();
    let answered = std::time::Instant::now();
    let sid = app.sim_answer(id).await;
    // The greeting (91 characters at 15 a second) plays before keys are heard.
    app.sim_wait_gather(&sid).await;
    assert!(answered.elapsed() >= std::time::Duration::from_millis(5000), "{:?}", answered.elapsed());
    // A key during the code prompt stops it and counts.
    let typed = std::time::Instant::now();
    app.sim_post(&sid, "digits", Some(json!({ "digits": "4242" }))).await;
    app.wait_status(id, "verified").await;
    assert!(typed.elapsed() < std::time::Duration::from_secs(3), "barge-in: {:?}", typed.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn inbound_works_with_the_simulator_without_an_inbound_number_setting() {
    let opts = Opts { configure: Some(std::sync::Arc::new(|a| a.inbound_number = None)), ..Default::default() };
    let app = spawn_with(opts).await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "5150" })).await;
    assert_eq!(r["inbound_number"], ivr_auth::config::SIMULATED_INBOUND_NUMBER, "the site is told what to show");
    // The demo page is told the same number.
    let resp = app
        .http
        .post(app.url("/demo/api/start"))
        .json(&json!({ "user_id": "demo-user", "phone_number": "+819011112222", "mode": "inbound" }))
        .send()
        .await
        .unwrap();
    let demo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(demo["inbound_number"], ivr_auth::config::SIMULATED_INBOUND_NUMBER, "{demo}");
    let call = app.sim_dial(PHONE).await;
    assert_eq!(call["to"], ivr_auth::config::SIMULATED_INBOUND_NUMBER);
    app.sim_keys(call["sid"].as_str().unwrap(), "5150").await;
    app.wait_status(r["id"].as_str().unwrap(), "verified").await;
}
