//! A caller kept on the line while the database is unreachable: the digits
//! typed meanwhile are sealed into a redirect, which the provider follows as
//! it does (TwiML `<Redirect>`: the call's parameters; NCCO `notify`: its
//! payload), and which counts them once the database is back. PostgreSQL,
//! reached through a proxy that can refuse, whatever the run's backend.

use std::sync::Arc;

use serde_json::json;

use super::flows::{Run, opts};
use super::{Call, Provider, What, inbound_url};
use crate::helpers::{Backend, INBOUND, Opts, PHONE, TestDb, spawn_on};
use crate::proxy::{Mode, Proxy};

/// An inbound call (which every adapter takes) gathering, then an outage.
pub async fn held(p: impl Provider) {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let database_url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = spawn_on(Opts { database_url: Some(database_url), ..opts(&p) }, db).await;
    let run = Run { p, app };
    let r = run.app.register(json!({ "phone_number": PHONE, "mode": "inbound", "locale": "en-US" })).await;
    let (id, code) = (r["id"].as_str().unwrap(), r["code"].as_str().unwrap());
    let call = Call { sid: run.p.new_sid(), from: PHONE.into(), to: INBOUND.into() };
    let script = run.hook(&inbound_url(run.p.name()), &call, What::Inbound { get: false }).await;
    let gather = script.gather_url.clone().unwrap_or_else(|| panic!("gathers: {script:?}"));

    proxy.set(Mode::Refuse);
    let script = run.hook(&gather, &call, What::Digits(code)).await;
    let retry = script.redirect.clone().unwrap_or_else(|| panic!("held on the line: {script:?}"));
    assert!(!script.hangs_up && !retry.contains(code), "{script:?}");

    proxy.set(Mode::Forward);
    let payload = script.redirect_payload.clone();
    let script = run.hook(&retry, &call, What::Redirect { payload: &payload }).await;
    assert!(script.says("You are verified"), "the held code counts: {script:?}");
    let v = run.app.get(id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("verified"), Some(0)), "{v}");
}
