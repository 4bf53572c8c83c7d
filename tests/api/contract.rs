//! The site API's contract: auth, validation, idempotency, isolation, cancel, expiry.

use serde_json::{Value, json};

use crate::helpers::*;

async fn count_requests(app: &TestApp) -> u64 {
    let tenant = uuid::Uuid::parse_str(&app.tenant.tenant_id).unwrap();
    app.store().await.count_requests(tenant).await.unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_bad_keys_are_401() {
    let app = spawn_app().await;
    let body = json!({ "phone_number": PHONE });
    let no_key = app.http.post(app.url("/v1/auth-requests")).json(&body).send().await.unwrap();
    let (status, err) = error_of(no_key).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "unauthorized");
    for key in ["nonsense", "ivr_0123456789abcdef_wrongsecret", &app.tenant.api_key.replace("ivr_", "ivr_x")] {
        let bad = app.http.post(app.url("/v1/auth-requests")).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(bad.status(), 401, "{key}");
    }
    // A real key id with a forged secret half.
    let (id_part, _) = app.tenant.api_key.rsplit_once('_').unwrap();
    let forged = format!("{id_part}_{}", "A".repeat(43));
    let bad = app.http.get(app.url("/v1/auth-requests/x")).bearer_auth(forged).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(count_requests(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_wrong_type_huge_and_non_json_bodies() {
    let app = spawn_app().await;
    let post = |body: Vec<u8>, ct: &'static str| {
        app.http
            .post(app.url("/v1/auth-requests"))
            .bearer_auth(&app.tenant.api_key)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let (s, e) = error_of(post(b"{\"phone_number\": ".to_vec(), "application/json").await.unwrap()).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (400, "malformed_json"));
    let (s, _) = error_of(post(b"{} {}".to_vec(), "application/json").await.unwrap()).await;
    assert_eq!(s, 400);
    let (s, e) = error_of(post(b"phone_number=1".to_vec(), "application/x-www-form-urlencoded").await.unwrap()).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (415, "unsupported_media_type"));
    let huge = format!("{{\"phone_number\":\"{PHONE}\",\"user_id\":\"{}\"}}", "x".repeat(70_000));
    let (s, e) = error_of(post(huge.into_bytes(), "application/json").await.unwrap()).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (413, "payload_too_large"));

    let typed = [
        (json!({ "phone_number": 819012345678u64 }), "phone_number"),
        (json!({ "phone_number": PHONE, "code_length": "6" }), "code_length"),
        (json!({ "phone_number": PHONE, "code_length": 6.5 }), "code_length"),
        (json!({ "phone_number": PHONE, "max_attempts": [] }), "max_attempts"),
        (json!({ "phone_number": PHONE, "phone": "x" }), "phone"),
        (json!({}), "phone_number"),
        (json!([]), "body"),
    ];
    for (body, field) in typed {
        let (s, e) = error_of(post(serde_json::to_vec(&body).unwrap(), "application/json").await.unwrap()).await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(e["error"]["field"], field, "{body} → {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }
    assert_eq!(count_requests(&app).await, 0, "no bad input stored anything");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_field_rule_is_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "phone_number": "090-1234" }), "phone_number"),
        (json!({ "phone_number": "+81 00 0000 0000" }), "phone_number"),
        (json!({ "phone_number": "電話" }), "phone_number"),
        (json!({ "phone_number": PHONE, "mode": "sms" }), "mode"),
        (json!({ "phone_number": PHONE, "code": "12a4" }), "code"),
        (json!({ "phone_number": PHONE, "code": "１２３４" }), "code"),
        (json!({ "phone_number": PHONE, "code_length": 3 }), "code_length"),
        (json!({ "phone_number": PHONE, "external_id": "x".repeat(129) }), "external_id"),
        (json!({ "phone_number": PHONE, "user_id": "a\u{202E}b" }), "user_id"),
        (json!({ "phone_number": PHONE, "external_id": "a\u{200B}b" }), "external_id"),
        (json!({ "phone_number": PHONE, "locale": "ja" }), "locale"),
        (json!({ "phone_number": PHONE, "ttl_seconds": 10 }), "ttl_seconds"),
        (json!({ "phone_number": PHONE, "max_attempts": 11 }), "max_attempts"),
        (json!({ "phone_number": PHONE, "callback_url": "not a url" }), "callback_url"),
        (
            json!({ "phone_number": PHONE, "callback_url": format!("https://x.example/{}", "a".repeat(2048)) }),
            "callback_url",
        ),
    ];
    for (body, field) in cases {
        let (s, e) = error_of(app.register_as(&app.tenant, body.clone()).await).await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(e["error"]["field"], field, "{body} → {e}");
    }
    assert_eq!(count_requests(&app).await, 0);
}

/// Issue 13, item 1: a letter was read as its keypad digit (`…567a` called
/// `…5672`) and an extension was dropped. Site API and demo alike refuse
/// them, and nobody is called.
#[tokio::test(flavor = "multi_thread")]
async fn a_number_with_letters_or_an_extension_is_422_and_nobody_is_called() {
    let app = spawn_app().await;
    for raw in ["090-1234-567a", "+81 90 1234 5678 ext. 12", "090-1234-5678#12", "tel:+819012345678"] {
        let (s, e) = error_of(app.register_as(&app.tenant, json!({ "phone_number": raw })).await).await;
        assert_eq!(s, 422, "{raw}");
        assert_eq!(e["error"]["field"], "phone_number", "{raw} → {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("phone_number: may hold only digits"), "{raw} → {message}");
        let demo = app.http.post(app.url("/demo/api/start")).json(&json!({ "user_id": "taro", "phone_number": raw }));
        let (s, e) = error_of(demo.send().await.unwrap()).await;
        assert_eq!((s, &e["error"]["field"]), (422, &json!("phone_number")), "demo: {raw} → {e}");
    }
    assert_eq!(count_requests(&app).await, 0);
    let calls: Value = app.http.get(app.url("/simulator/calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls["calls"], json!([]), "nobody is called");
    // The demo answers with the number it calls, not the text typed.
    let typed = json!({ "user_id": "taro", "phone_number": "０９０ー１２３４ー５６７８", "mode": "inbound" });
    let started: Value =
        app.http.post(app.url("/demo/api/start")).json(&typed).send().await.unwrap().json().await.unwrap();
    assert_eq!(started["phone_number"], PHONE, "{started}");
}

#[tokio::test(flavor = "multi_thread")]
async fn national_and_fullwidth_numbers_are_stored_as_e164() {
    let app = spawn_app().await;
    for raw in ["090-1234-5678", "+81 90-1234-5678", "０９０１２３４５６７８", "(090) 1234 5678"] {
        let r = app.register(json!({ "phone_number": raw, "mode": "inbound" })).await;
        assert_eq!(r["phone_number"], PHONE, "{raw}");
    }
    let r = app.register(json!({ "phone_number": "03-1234-5678", "mode": "inbound" })).await;
    assert_eq!(r["phone_number"], "+81312345678");
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_ids_and_defaults() {
    let app = spawn_app().await;
    let a = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code_length": 10 })).await;
    let b = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    assert_eq!(a["code"].as_str().unwrap().len(), 10);
    assert!(a["code"].as_str().unwrap().bytes().all(|c| c.is_ascii_digit()));
    assert_ne!(a["id"], b["id"]);
    assert_eq!(uuid::Uuid::parse_str(a["id"].as_str().unwrap()).unwrap().get_version_num(), 7);
    assert_eq!(
        (b["max_attempts"].as_u64(), b["locale"].as_str(), b["attempts"].as_u64()),
        (Some(3), Some("ja-JP"), Some(0))
    );
    let created = chrono::DateTime::parse_from_rfc3339(b["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(b["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 300);
    // The code is stored only as a keyed hash.
    let code = a["code"].as_str().unwrap();
    for id in [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()] {
        let stored = app.stored(id).await;
        assert_eq!(stored.code_hash.len(), 32);
        let dump = format!("{:?}{:?}{:?}{}", stored.code_hash, stored.fingerprint, stored.code_salt, {
            let bytes = [stored.code_hash.as_slice(), &stored.fingerprint, stored.code_salt.as_deref().unwrap_or(&[])];
            String::from_utf8_lossy(&bytes.concat()).into_owned()
        });
        assert!(!dump.contains(code));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_request_is_not_found() {
    let app = spawn_app().await;
    let other = create_tenant(app.db_url(), "other").await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let id = r["id"].as_str().unwrap();
    let (s, e) = error_of(app.get_as(&other, id).await).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (404, "not_found"));
    let unknown = app.get_as(&other, &uuid::Uuid::now_v7().to_string()).await;
    let (s2, e2) = error_of(unknown).await;
    assert_eq!((s2, &e2), (404, &e), "another tenant's id looks exactly like an unknown id");
    let cancel = app
        .http
        .post(app.url(&format!("/v1/auth-requests/{id}/cancel")))
        .bearer_auth(&other.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 404);
    assert_eq!(app.get(id).await["status"], "pending");
    assert_eq!(app.get_as(&app.tenant, "not-a-uuid").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_id_is_idempotent() {
    let app = spawn_app().await;
    let body = json!({ "phone_number": "090-1234-5678", "external_id": "order-42", "mode": "inbound" });
    let first = app.register(body.clone()).await;
    // Same request, spelled differently (E.164, defaults written out): the same request back.
    let same = json!({ "phone_number": PHONE, "external_id": "order-42", "mode": "inbound", "code_length": 6, "ttl_seconds": 300 });
    for b in [body.clone(), same] {
        let resp = app.register_as(&app.tenant, b).await;
        assert_eq!(resp.status(), 200);
        let again: Value = resp.json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["code"], first["code"], "a replay shows the same code");
    }
    let different =
        json!({ "phone_number": "090-1234-5678", "external_id": "order-42", "mode": "inbound", "locale": "en-US" });
    let (s, e) = error_of(app.register_as(&app.tenant, different).await).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (409, "external_id_conflict"));
    // Another tenant may use the same external_id.
    let other = create_tenant(app.db_url(), "other").await;
    let theirs = app.register_as(&other, body).await;
    assert_eq!(theirs.status(), 201);
    assert_eq!(count_requests(&app).await, 1, "acme has its one request; the other tenant has its own");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_then_cancel_again() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let id = r["id"].as_str().unwrap();
    let resp = app.cancel(id).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "canceled");
    let (s, e) = error_of(app.cancel(id).await).await;
    assert_eq!((s, e["error"]["code"].as_str().unwrap()), (409, "already_terminal"));
    assert_eq!(app.get(id).await["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_hangs_up_a_ringing_call() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE })).await;
    let id = r["id"].as_str().unwrap();
    let call = app.sim_call(id, |c| c["state"] == "ringing").await;
    assert_eq!(app.cancel(id).await.status(), 200);
    app.sim_wait_state(call["sid"].as_str().unwrap(), "canceled").await;
    assert_eq!(app.get(id).await["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_shows_at_once_and_is_final() {
    let app = spawn_app().await;
    let sink = CallbackSink::start().await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "callback_url": sink.url })).await;
    let id = r["id"].as_str().unwrap();
    app.expire_now(id).await;
    // Visible on the very next read, sweeper or not.
    assert_eq!(app.get(id).await["status"], "expired");
    let (s, _) = error_of(app.cancel(id).await).await;
    assert_eq!(s, 409);
    // An inbound call no longer finds it.
    let call = app.sim_dial(PHONE).await;
    app.sim_wait_state(call["sid"].as_str().unwrap(), "completed").await;
    // The sweeper stores it and the site is told.
    let hits = sink.wait_hits(1, std::time::Duration::from_secs(5)).await;
    let body: Value = serde_json::from_str(&hits[0].1).unwrap();
    assert_eq!(body["status"], "expired");
    assert_eq!(app.stored(id).await.status.as_str(), "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after() {
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|a| {
            a.rate_limit = Some(2);
            a.phone_rate_limit = Some(1);
        })),
        ..Default::default()
    })
    .await;
    let (base, tenant, http) = (app.base.clone(), app.tenant.clone(), app.http.clone());
    let post = |phone: &'static str| {
        http.post(format!("{base}/v1/auth-requests"))
            .bearer_auth(&tenant.api_key)
            .json(&json!({ "phone_number": phone, "mode": "inbound" }))
            .send()
    };
    assert_eq!(post("+819012345678").await.unwrap().status(), 201);
    let per_phone = post("+819012345678").await.unwrap();
    assert_eq!(per_phone.status(), 429, "a second registration for one number within 10 minutes");
    assert!(per_phone.headers().get("retry-after").is_some());
    let per_tenant = post("+819012345679").await.unwrap();
    assert_eq!(per_tenant.status(), 429, "third request within a second for this tenant");
    let retry: u64 = per_tenant.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let e: Value = per_tenant.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread")]
async fn number_limits_are_per_tenant_under_a_server_ceiling_and_replays_are_never_limited() {
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(|a| {
            a.rate_limit = Some(3);
            a.phone_rate_limit = Some(2);
            a.phone_rate_limit_server = Some(3);
        })),
        ..Default::default()
    })
    .await;
    let b = create_tenant(app.db_url(), "b").await;
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(400)); // under 3 a second
    let body = |ext: &str| json!({ "phone_number": PHONE, "mode": "inbound", "external_id": ext });
    // B uses up its own limit for the number; A is not affected.
    for ext in ["b1", "b2"] {
        assert_eq!(app.register_as(&b, body(ext)).await.status(), 201);
        pause().await;
    }
    let (s, e) = error_of(app.register_as(&b, body("b3")).await).await;
    assert_eq!(s, 429);
    assert!(e["error"]["message"].as_str().unwrap().contains("IVR_AUTH_PHONE_RATE_LIMIT"), "{e}");
    pause().await;
    assert_eq!(app.register_as(&app.tenant, body("a1")).await.status(), 201, "A has its own per-number limit");
    pause().await;
    // …until all tenants together reach the server-wide ceiling for the number.
    let (s, e) = error_of(app.register_as(&app.tenant, body("a2")).await).await;
    assert_eq!(s, 429);
    assert!(e["error"]["message"].as_str().unwrap().contains("IVR_AUTH_PHONE_RATE_LIMIT_SERVER"), "{e}");
    // A replay answers 200 with the request and its code, whatever the limits, many times a second.
    for _ in 0..10 {
        let resp = app.register_as(&b, body("b1")).await;
        assert_eq!(resp.status(), 200, "a replay is never rate limited");
        assert!(resp.json::<Value>().await.unwrap()["code"].is_string());
    }
}
