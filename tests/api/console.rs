//! The console's sign-in: the session cookie, its token, CSRF and same-origin checks, the one-time link,
//! and that a session reads the site API (GET) but never writes to it.

use std::sync::Arc;

use ivr_auth::domain::code::CodeKeys;
use ivr_auth::domain::console::{ConsoleToken, Kind, Who};
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{Backend, TestDb};
use crate::helpers::{Opts, PHONE, SECRET_KEY, TestApp, create_tenant, spawn_app, spawn_as, spawn_on, spawn_with};

const OPERATOR: &str = "operator-token-0123456789abcdef-0123456789";

/// The console key every test server derives from `SECRET_KEY`.
fn console_key() -> [u8; 32] {
    *CodeKeys::from_secret(SECRET_KEY.as_bytes()).console_key()
}

/// The `Set-Cookie` header of the session cookie, whole.
fn set_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("ivr_console="))
        .map(str::to_owned)
}

/// `name=value` of a `Set-Cookie`, as a `Cookie` header sends it back.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

async fn sign_in(app: &TestApp, body: Value) -> reqwest::Response {
    app.http.post(app.url("/console/session")).json(&body).send().await.unwrap()
}

/// Signs in with `api_key`; the cookie to send back and the CSRF token.
async fn session_of(app: &TestApp, api_key: &str) -> (String, String) {
    let resp = sign_in(app, json!({ "api_key": api_key })).await;
    assert_eq!(resp.status(), 200);
    let cookie = pair(&set_cookie(&resp).expect("a session cookie"));
    let body: Value = resp.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    app.http.get(app.url(path)).header(COOKIE, cookie).send().await.unwrap()
}

/// A POST to `path` with a session's cookie and its CSRF token, to finish and send.
fn post_with(app: &TestApp, path: &str, cookie: &str, csrf: &str) -> reqwest::RequestBuilder {
    app.http.post(app.url(path)).header(COOKIE, cookie).header("X-CSRF-Token", csrf)
}

async fn registered(app: &TestApp) -> String {
    let r = app.register(json!({ "phone_number": PHONE, "code": "123456" })).await;
    r["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_signs_in_with_a_strict_http_only_cookie_that_reads_the_tenant_s_requests() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    let resp = sign_in(&app, json!({ "api_key": app.tenant.api_key })).await;
    assert_eq!(resp.status(), 200);
    let header = set_cookie(&resp).unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=1800"] {
        assert!(header.contains(flag), "{flag} in {header}");
    }
    assert!(!header.contains("Secure"), "plain http: {header}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["role"], "tenant");
    assert_eq!(body["tenant"]["name"], "acme");
    let cookie = pair(&header);
    let read = get_with(&app, &format!("/v1/auth-requests/{id}"), &cookie).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["id"], id.as_str());
    // The form a browser without script would post works too.
    let form = app
        .http
        .post(app.url("/console/session"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("api_key={}", app.tenant.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_public_url_makes_the_cookie_secure_with_the_host_prefix() {
    let app = spawn_with(Opts { public_url: Some("https://ivr.example.com".into()), ..Default::default() }).await;
    let resp = sign_in(&app, json!({ "api_key": app.tenant.api_key })).await;
    let header = set_cookie(&resp).unwrap();
    assert!(header.starts_with("__Host-ivr_console="), "{header}");
    assert!(header.contains("Secure"), "{header}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_and_sets_no_cookie() {
    let app = spawn_app().await;
    for key in ["", "ivr_0011223344556677_wrong", &format!("{}x", app.tenant.api_key)] {
        let resp = sign_in(&app, json!({ "api_key": key })).await;
        assert_eq!(resp.status(), 401, "{key}");
        assert!(set_cookie(&resp).is_none());
    }
    // No operator token configured: no operator sign-in, whatever is sent.
    assert_eq!(sign_in(&app, json!({ "operator_token": OPERATOR })).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_that_keeps_failing_to_sign_in_is_slowed_down_and_a_right_key_still_works() {
    let app = spawn_app().await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..12 {
            out.push(sign_in(&app, json!({ "api_key": "ivr_0011223344556677_wrong" })).await.status().as_u16());
        }
        out
    };
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
    let limited = sign_in(&app, json!({ "api_key": "ivr_0011223344556677_wrong" })).await;
    assert!(limited.headers().get("retry-after").is_some());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Only failures count: the tenant with its right key signs in.
    assert_eq!(sign_in(&app, json!({ "api_key": app.tenant.api_key })).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_token_is_refused_when_expired_tampered_of_another_kind_or_of_a_rotated_key() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    let (cookie, _) = session_of(&app, &app.tenant.api_key).await;
    let raw = cookie.trim_start_matches("ivr_console=").to_owned();
    let tenant = Uuid::parse_str(&app.tenant.tenant_id).unwrap();
    let key_id = app.tenant.api_key.split('_').nth(1).unwrap().to_owned();
    let who = Who::Tenant { id: tenant, key_id: key_id.clone() };
    let now = chrono::Utc::now().timestamp();
    let forged =
        |kind, who: Who, expires| format!("ivr_console={}", ConsoleToken::new(kind, who, expires).sign(&console_key()));
    let path = format!("/v1/auth-requests/{id}");
    // The server's own key, our format: accepted (so the refusals below are about what they change).
    assert_eq!(get_with(&app, &path, &forged(Kind::Session, who.clone(), now + 60)).await.status(), 200);
    let refused = [
        ("expired", forged(Kind::Session, who.clone(), now - 1)),
        ("a link, not a session", forged(Kind::Link, who.clone(), now + 60)),
        (
            "another key id",
            forged(Kind::Session, Who::Tenant { id: tenant, key_id: "ffffffffffffffff".into() }, now + 60),
        ),
        ("operator, none configured", forged(Kind::Session, Who::Operator, now + 60)),
        ("tampered expiry", format!("ivr_console={}", raw.replacen(&format!(".{}.", now + 1800), ".9999999999.", 1))),
        (
            "signed with another key",
            format!("ivr_console={}", ConsoleToken::new(Kind::Session, who, now + 60).sign(&[9; 32])),
        ),
    ];
    for (what, cookie) in refused {
        assert_eq!(get_with(&app, &path, &cookie).await.status(), 401, "{what}");
    }
    // Rotating the key signs the tenant's sessions out.
    ivr_auth::cli::tenant(
        &ivr_auth::cli::DbArgs { database_url: Some(app.db_url().into()) },
        None,
        ivr_auth::cli::TenantAction::RotateKey { name: "acme".into() },
    )
    .await
    .unwrap();
    assert_eq!(get_with(&app, &path, &cookie).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_s_session_cannot_read_the_first_tenant_s_request() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    let other = create_tenant(app.db_url(), "other").await;
    let (cookie, _) = session_of(&app, &other.api_key).await;
    assert_eq!(get_with(&app, &format!("/v1/auth-requests/{id}"), &cookie).await.status(), 404);
    // Naming the first tenant does not help a tenant's session.
    let named = app
        .http
        .get(app.url(&format!("/v1/auth-requests/{id}?tenant={}", app.tenant.tenant_id)))
        .header(COOKIE, &cookie)
        .header("X-Console-Tenant", &app.tenant.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_never_writes_to_the_site_api() {
    let app = spawn_app().await;
    let id = registered(&app).await;
    let (cookie, csrf) = session_of(&app, &app.tenant.api_key).await;
    let cancel = post_with(&app, &format!("/v1/auth-requests/{id}/cancel"), &cookie, &csrf).send().await.unwrap();
    assert_eq!(cancel.status(), 401);
    let register = post_with(&app, "/v1/auth-requests", &cookie, &csrf)
        .json(&json!({ "phone_number": PHONE }))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 401);
    assert_ne!(app.get(&id).await["status"], "canceled");
}

/// Sign-out ends the session on the server, not only in the browser: a copy
/// of its cookie (kept by malware, a proxy's log, a shared machine) reads
/// nothing afterwards, on any server of the database (two on PostgreSQL;
/// a SQLite file has one).
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_out_session_is_refused_by_every_server_even_with_a_copy_of_its_cookie() {
    for backend in Backend::ALL {
        let app = spawn_on(Opts::default(), Arc::new(TestDb::new(backend).await)).await;
        let mut servers = vec![&app];
        let other = match backend {
            Backend::Postgres => Some(spawn_as(Opts::default(), app.db.clone(), Some(app.tenant.clone())).await),
            Backend::Sqlite => None,
        };
        servers.extend(other.as_ref());
        let id = registered(&app).await;
        let (cookie, csrf) = session_of(&app, &app.tenant.api_key).await;
        let request = format!("/v1/auth-requests/{id}");
        for server in &servers {
            for path in ["/console/session", request.as_str()] {
                assert_eq!(
                    get_with(server, path, &cookie).await.status(),
                    200,
                    "{backend:?}: {path} before signing out"
                );
            }
        }
        let out = post_with(&app, "/console/session/delete", &cookie, &csrf).send().await.unwrap();
        assert_eq!(out.status(), 204);
        for server in &servers {
            for path in ["/console/session", request.as_str()] {
                let status = get_with(server, path, &cookie).await.status();
                assert_eq!(status, 401, "{backend:?}: {path} with the signed-out cookie");
            }
        }
        // Signing in again makes a new session, which works everywhere.
        let (fresh, _) = session_of(&app, &app.tenant.api_key).await;
        for server in &servers {
            assert_eq!(get_with(server, "/console/session", &fresh).await.status(), 200, "{backend:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_needs_the_csrf_token_and_the_same_origin() {
    let app = spawn_app().await;
    let (cookie, csrf) = session_of(&app, &app.tenant.api_key).await;
    let post = |csrf: Option<&str>, origin: Option<&str>| {
        let mut req = app.http.post(app.url("/console/session/delete")).header(COOKIE, &cookie);
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        req.send()
    };
    let own_origin = app.base.clone();
    for (what, c, o) in [
        ("no token", None, Some(own_origin.as_str())),
        ("a wrong token", Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), Some(own_origin.as_str())),
        ("another origin", Some(csrf.as_str()), Some("https://evil.example")),
    ] {
        let resp = post(c, o).await.unwrap();
        assert_eq!(resp.status(), 403, "{what}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "forbidden");
    }
    let cross = post_with(&app, "/console/session/delete", &cookie, &csrf)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "Sec-Fetch-Site cross-site");
    let out = post(Some(&csrf), Some(&own_origin)).await.unwrap();
    assert_eq!(out.status(), 204);
    assert!(set_cookie(&out).unwrap().contains("Max-Age=0"), "the cookie is removed");
    // Sign-in from another origin is refused too (login CSRF).
    let planted = app
        .http
        .post(app.url("/console/session"))
        .header("Origin", "https://evil.example")
        .json(&json!({ "api_key": app.tenant.api_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_cookie_is_not_a_session_and_sign_in_issues_a_fresh_one() {
    let app = spawn_app().await;
    let planted = "ivr_console=v1.s.o.9999999999.attacker.AAAA";
    assert_eq!(get_with(&app, "/console/session", planted).await.status(), 401);
    let resp = app
        .http
        .post(app.url("/console/session"))
        .header(COOKIE, planted)
        .json(&json!({ "api_key": app.tenant.api_key }))
        .send()
        .await
        .unwrap();
    let issued = pair(&set_cookie(&resp).unwrap());
    assert_ne!(issued, planted);
    let (again, _) = session_of(&app, &app.tenant.api_key).await;
    assert_ne!(issued, again, "every sign-in makes a new token");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_token_sees_every_tenant_named_per_request() {
    let app = spawn_with(Opts {
        configure: Some(Arc::new(|a| a.operator_token = Some(OPERATOR.into()))),
        ..Default::default()
    })
    .await;
    let id = registered(&app).await;
    create_tenant(app.db_url(), "other").await;
    assert_eq!(sign_in(&app, json!({ "operator_token": format!("{OPERATOR}x") })).await.status(), 401);
    let resp = sign_in(&app, json!({ "operator_token": OPERATOR })).await;
    assert_eq!(resp.status(), 200);
    let cookie = pair(&set_cookie(&resp).unwrap());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["role"], "operator");
    let names: Vec<&str> = body["tenants"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"acme") && names.contains(&"other"), "{names:?}");
    let path = format!("/v1/auth-requests/{id}");
    assert_eq!(get_with(&app, &path, &cookie).await.status(), 422, "no tenant named");
    let named = app.http.get(app.url(&path)).header(COOKIE, &cookie).header("X-Console-Tenant", &app.tenant.tenant_id);
    assert_eq!(named.send().await.unwrap().status(), 200);
    let query = get_with(&app, &format!("{path}?tenant={}", app.tenant.tenant_id), &cookie).await;
    assert_eq!(query.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_sign_in_link_works_once() {
    let app = spawn_app().await;
    let opts = Opts::default();
    let args = ivr_auth::console_link::LinkArgs {
        tenant: "acme".into(),
        minutes: 10,
        serve: crate::helpers::args(&opts, app.db_url()),
    };
    let printed = ivr_auth::console_link::link(args, None).await.unwrap();
    let (_, query) = printed.split_once("/console/link?").unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let first = no_redirects.get(app.url(&format!("/console/link?{query}"))).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/console");
    let cookie = pair(&set_cookie(&first).unwrap());
    assert_eq!(get_with(&app, "/console/session", &cookie).await.status(), 200);
    let second = no_redirects.get(app.url(&format!("/console/link?{query}"))).send().await.unwrap();
    assert_eq!(second.status(), 303);
    assert_eq!(second.headers()["location"], "/console?link=invalid");
    assert!(set_cookie(&second).is_none());
    // A link is not a session cookie either.
    let token = query.trim_start_matches("t=");
    assert_eq!(get_with(&app, "/console/session", &format!("ivr_console={token}")).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_page_is_served_with_the_pages_security_headers_in_every_mode() {
    let app = spawn_with(Opts { twilio_api: Some("http://127.0.0.1:9".into()), ..Default::default() }).await;
    let page = app.http.get(app.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text().await.unwrap().contains("/console/assets/console.js"));
    for asset in ["console.js", "console.css"] {
        assert_eq!(app.http.get(app.url(&format!("/console/assets/{asset}"))).send().await.unwrap().status(), 200);
    }
}
