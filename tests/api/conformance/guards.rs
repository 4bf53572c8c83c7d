//! What protects a request: webhooks that do not verify change nothing, and
//! a call's webhooks may reach any node of the cluster.

use serde_json::{Value, json};

use super::flows::{Run, call_of, opts, send};
use super::{Call, CallStatus, Provider, What, inbound_url};
use crate::helpers::{Backend, INBOUND, PHONE, TestDb, spawn_as, spawn_on};

/// What a refused webhook must leave as it was.
fn unchanged(v: &Value) -> Value {
    json!([v["status"], v["attempts"], v["updated_at"], v["call_status"], v["failure_reason"]])
}

/// Each forgery of a digits webhook (the right code) and of a status webhook
/// (busy) answers 403 and changes nothing; the genuine one then verifies.
pub async fn forged_and_stale(p: impl Provider) {
    let run = Run::start(p).await;
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, code) = (r["id"].as_str().unwrap(), r["code"].as_str().unwrap());
    let call = call_of(&placed);
    let gather = run.answer(&placed).await;
    let before = run.app.get(id).await;
    assert_eq!(before["status"], "in_progress");
    let digits = run.p.sign(run.p.webhook(&gather, &call, What::Digits(code)));
    let busy = run.p.sign(run.p.webhook(&placed.status_url, &call, What::Status(CallStatus::Busy)));
    for genuine in [&digits, &busy] {
        let forgeries = run.p.forgeries(genuine);
        assert_eq!(forgeries.len(), 3);
        for (name, forged) in forgeries {
            let (status, body) = send(&run.app, &forged).await;
            assert_eq!(status, 403, "{name}: {body}");
        }
    }
    let after = run.app.get(id).await;
    assert_eq!(unchanged(&after), unchanged(&before), "{before} then {after}");
    let (status, _) = send(&run.app, &digits).await;
    assert_eq!(status, 200, "the genuine webhook");
    assert_eq!(run.app.get(id).await["status"], "verified");
}

/// Two servers on one PostgreSQL database (several servers need it, whatever
/// the run's backend), behind one public URL with the same credentials: the
/// answer reaches node A, the digits node B.
pub async fn two_nodes(p: impl Provider) {
    let db = std::sync::Arc::new(TestDb::new(Backend::Postgres).await);
    let a = spawn_on(opts(&p), db.clone()).await;
    let b = spawn_as(opts(&p), db, Some(a.tenant.clone())).await;
    let run = Run { p, app: a };
    let (r, placed) = run.placed(json!({ "phone_number": PHONE })).await;
    let (id, code) = (r["id"].as_str().unwrap(), r["code"].as_str().unwrap());
    let gather = run.answer(&placed).await;
    let script = run.hook_on(&b, &gather, &call_of(&placed), What::Digits(code)).await;
    assert!(script.says("You are verified"), "{script:?}");
    assert_eq!(b.get(id).await["status"], "verified");
    assert_eq!(run.app.get(id).await["status"], "verified");
    assert_eq!(run.placed_count(id), 1, "one call, whichever node placed it");
}

/// A refused webhook is answered 403 `forbidden`, in words that name no
/// signature scheme of another provider (an operator reading them looks for
/// the wrong header). The forged call is an inbound one: every adapter takes it.
pub async fn refusal_words(p: impl Provider) {
    let run = Run::start(p).await;
    let call = Call { sid: run.p.new_sid(), from: PHONE.into(), to: INBOUND.into() };
    let genuine = run.p.sign(run.p.webhook(&inbound_url(run.p.name()), &call, What::Inbound { get: false }));
    let (name, forged) = run.p.forgeries(&genuine).swap_remove(0);
    let (status, body) = send(&run.app, &forged).await;
    assert_eq!(status, 403, "{name}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "forbidden", "{body}");
    let twiml_family = ["twilio", "signalwire"].contains(&run.p.name());
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(twiml_family || !message.contains("Twilio"), "{}: {message}", run.p.name());
}
