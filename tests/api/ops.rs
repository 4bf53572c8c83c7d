//! Operations endpoints.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_metrics_openapi() {
    let app = spawn_app().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    app.register(serde_json::json!({ "phone_number": PHONE, "mode": "inbound" })).await;

    let m = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = m.text().await.unwrap();
    assert!(text.contains("ivr_auth_auth_requests_registered_total{kind=\"inbound\"} 1"), "{text}");
    assert!(
        text.contains("ivr_auth_http_requests_total{route=\"/v1/auth-requests\",method=\"POST\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(text.contains("ivr_auth_http_request_duration_seconds_bucket"));

    let doc: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/v1/auth-requests"]["post"].is_object());
    assert!(doc["paths"]["/v1/auth-requests/{id}"]["get"].is_object());
    assert!(doc["paths"]["/v1/auth-requests/{id}/cancel"]["post"].is_object());
    assert!(doc["components"]["schemas"]["RegisterBody"]["properties"]["phone_number"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_openapi_json_matches_the_code() {
    let doc = serde_json::to_string_pretty(&<ivr_auth::api::ops::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(path, format!("{doc}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(committed.trim_end(), doc, "openapi.json is stale: run UPDATE_OPENAPI=1 cargo test committed_openapi");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_require_a_bearer_token() {
    let token = "metrics-token-0123456789abcdef";
    let app = spawn_with(Opts {
        configure: Some(std::sync::Arc::new(move |a| a.metrics_token = Some(token.into()))),
        ..Default::default()
    })
    .await;
    let get = |auth: Option<&str>| {
        let mut req = app.http.get(app.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send()
    };
    for refused in [None, Some("Bearer wrong-token-0123456789abcdef"), Some(&format!("Basic {token}")[..])] {
        let resp = get(refused).await.unwrap();
        assert_eq!(resp.status(), 401, "{refused:?}");
        assert!(!resp.text().await.unwrap().contains("ivr_auth_"), "nothing shown");
    }
    let ok = get(Some(&format!("Bearer {token}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("ivr_auth_http_requests_total"));
    // Open without a token, as before.
    let open = spawn_app().await;
    assert_eq!(open.http.get(open.url("/metrics")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_page_limits_starts_per_client() {
    let app = spawn_app().await;
    let start = || {
        app.http
            .post(app.url("/demo/api/start"))
            .json(&serde_json::json!({ "user_id": "u", "phone_number": PHONE }))
            .send()
    };
    let mut codes = Vec::new();
    for _ in 0..35 {
        codes.push(start().await.unwrap().status().as_u16());
    }
    assert!(codes[..30].iter().all(|c| *c == 201), "a person trying the demo is served: {codes:?}");
    assert!(codes[30..].iter().all(|c| *c == 429), "a script is not: {codes:?}");
}

/// A request's method label is one HTTP defines or `other`: made-up methods
/// would otherwise add a series each to every scrape, without bound.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_are_counted_as_other_not_as_a_series_each() {
    let app = spawn_app().await;
    for n in 0..20 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
        app.http.request(method, app.url("/healthz")).send().await.unwrap();
    }
    app.http.delete(app.url("/healthz")).send().await.unwrap();
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("MADEUP"), "{text}");
    let others: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ivr_auth_http_requests_total") && l.contains("method=\"other\""))
        .collect();
    let counted: u64 = others.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum();
    assert_eq!(counted, 20, "{others:?}");
    assert!(text.contains("method=\"DELETE\""), "a method HTTP defines keeps its name");
}
