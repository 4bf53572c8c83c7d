//! Random sequences of signed webhooks and API calls against the real server:
//! a terminal status never changes and `attempts` never passes `max_attempts`.

use std::sync::{Arc, OnceLock};

use ivr_auth::store::Store;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::*;

#[derive(Debug, Clone)]
enum Op {
    Answer,
    RightCode,
    WrongCode,
    NoInput,
    Status(&'static str),
    Cancel,
    Expire,
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Answer),
        2 => Just(Op::RightCode),
        4 => Just(Op::WrongCode),
        2 => Just(Op::NoInput),
        3 => prop_oneof![
            Just("initiated"), Just("ringing"), Just("in-progress"), Just("completed"),
            Just("busy"), Just("no-answer"), Just("failed"), Just("canceled")
        ].prop_map(Op::Status),
        1 => Just(Op::Cancel),
        1 => Just(Op::Expire),
        3 => Just(Op::Read),
    ]
}

struct Shared {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    /// The server's database, opened once, to compare reads with the stored row.
    store: Arc<dyn Store>,
    _double: ProviderDouble,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let (app, store, double) = rt.block_on(async {
            let double = ProviderDouble::start().await;
            let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
            let store = app.store().await;
            (app, store, double)
        });
        Shared { rt, app, store, _double: double }
    })
}

async fn run(app: &TestApp, store: &dyn Store, max_attempts: u32, ops: &[Op]) -> Result<(), String> {
    let r = app.register(json!({ "phone_number": PHONE, "code": "13579", "max_attempts": max_attempts })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let placed = app.wait_for(&id, "call placed", |v| v["status"] != "pending").await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let sid: String = store.request(uuid).await.unwrap().unwrap().call_sid.unwrap();
    let mut last = placed;
    let mut terminal: Option<Value> = None;
    // Once the provider says the call ended, the server may fail an open
    // request by itself after a grace period, between two reads.
    let mut call_ended = false;
    for op in ops {
        let base =
            vec![("CallSid", sid.as_str()), ("To", PHONE), ("From", "+815011112222"), ("CallStatus", "in-progress")];
        let answered = match op {
            Op::Answer => app.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &base).await.0,
            Op::RightCode | Op::WrongCode => {
                let digits = if matches!(op, Op::RightCode) { "13579" } else { "24680" };
                let mut p = base.clone();
                p.push(("Digits", digits));
                app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &p).await.0
            }
            Op::NoInput => app.webhook(&format!("/webhooks/twilio/voice/no-input/{id}"), &base).await.0,
            Op::Status(s) => {
                let mut p = base.clone();
                p[3] = ("CallStatus", s);
                app.webhook(&format!("/webhooks/twilio/voice/status/{id}"), &p).await.0
            }
            Op::Cancel => {
                let status = app.cancel(&id).await.status().as_u16();
                let open = !["verified", "failed", "expired", "canceled"].contains(&last["status"].as_str().unwrap());
                if status != if open { 200 } else { 409 } {
                    return Err(format!("cancel answered {status} on {}", last["status"]));
                }
                200
            }
            Op::Expire => {
                app.expire_now(&id).await;
                200
            }
            Op::Read => {
                read_and_check(app, store, &id, max_attempts, &last, call_ended).await?;
                200
            }
        };
        if let Op::Status(s) = op
            && ["completed", "busy", "no-answer", "failed", "canceled"].contains(s)
        {
            call_ended = true;
        }
        if answered != 200 {
            return Err(format!("{op:?} answered HTTP {answered}"));
        }
        let now = app.get(&id).await;
        let attempts = now["attempts"].as_u64().unwrap();
        if attempts > u64::from(max_attempts) {
            return Err(format!("attempts {attempts} > {max_attempts} after {op:?}"));
        }
        if attempts < last["attempts"].as_u64().unwrap() {
            return Err(format!("attempts went down after {op:?}"));
        }
        let was = last["status"].as_str().unwrap();
        let is = now["status"].as_str().unwrap();
        let due = match op {
            Op::RightCode if was == "in_progress" => Some("verified"),
            Op::Answer if was == "calling" => Some("in_progress"),
            Op::Cancel if ["pending", "calling", "in_progress"].contains(&was) => Some("canceled"),
            Op::Expire if ["pending", "calling", "in_progress"].contains(&was) => Some("expired"),
            _ => None,
        };
        // Once the call ended, the grace-period failure may come first.
        let ended_first = call_ended && is == "failed";
        if let Some(due) = due
            && is != due
            && !ended_first
        {
            return Err(format!("{op:?} on {was} must give {due}, gave {is}"));
        }
        if let Some(t) = &terminal {
            for field in ["status", "failure_reason", "attempts", "verified_at"] {
                if now[field] != t[field] {
                    return Err(format!("terminal {field} changed after {op:?}: {} -> {}", t[field], now[field]));
                }
            }
        } else if ["verified", "failed", "expired", "canceled"].contains(&now["status"].as_str().unwrap()) {
            terminal = Some(now.clone());
        }
        last = now;
    }
    Ok(())
}

/// Reads request `id` over the API and checks the answer against the stored
/// row (expiry applied at the server's clock) and against the model: a read
/// changes nothing, so it shows what the last step left.
async fn read_and_check(
    app: &TestApp,
    store: &dyn Store,
    id: &str,
    max_attempts: u32,
    last: &Value,
    call_ended: bool,
) -> Result<(), String> {
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    let stored_row = || async { store.request(uuid).await.unwrap().unwrap() };
    // The row read before and after the API read: if a job changed it in
    // between (the grace-period failure), read again.
    let mut tries = 0;
    let (read, stored) = loop {
        let before = stored_row().await;
        let resp = app.get_as(&app.tenant, id).await;
        if resp.status() != 200 {
            return Err(format!("read answered HTTP {}", resp.status()));
        }
        let read: Value = resp.json().await.map_err(|e| format!("read body: {e}"))?;
        let after = stored_row().await;
        tries += 1;
        if before == after || tries == 5 {
            break (read, after);
        }
    };
    let now = ivr_auth::clock::Clock::now(&**app.clock.as_ref().unwrap());
    let open = ["pending", "calling", "in_progress"];
    let stored_status = serde_json::to_value(stored.status).unwrap();
    let status = read["status"].as_str().unwrap();
    let expected_status = if open.contains(&stored_status.as_str().unwrap()) && stored.expires_at <= now {
        "expired"
    } else {
        stored_status.as_str().unwrap()
    };
    if status != expected_status {
        return Err(format!("read status {status}, stored {stored_status} (expires {}, now {now})", stored.expires_at));
    }
    let stored_fields = [
        ("id", json!(stored.id.to_string())),
        ("attempts", json!(stored.attempts)),
        ("max_attempts", json!(max_attempts)),
        ("failure_reason", serde_json::to_value(stored.failure_reason).unwrap()),
        ("call_status", serde_json::to_value(stored.call_status).unwrap()),
    ];
    for (field, expected) in stored_fields {
        if read[field] != expected {
            return Err(format!("read {field} {}, stored {expected}", read[field]));
        }
    }
    if read["verified_at"].is_null() == (status == "verified") {
        return Err(format!("verified_at {} on a {status} request", read["verified_at"]));
    }
    // The model: nothing happened since the last step's read (but a grace-period failure).
    let may_have_ended = call_ended && open.contains(&last["status"].as_str().unwrap()) && status == "failed";
    for field in ["status", "attempts", "failure_reason", "verified_at"] {
        if read[field] != last[field] && !may_have_ended {
            return Err(format!("a read shows {field} {}, the last step left {}", read[field], last[field]));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn terminal_states_hold_over_http(max_attempts in 1u32..=4, ops in prop::collection::vec(op(), 1..14)) {
        let s = shared();
        let result = s.rt.block_on(run(&s.app, &*s.store, max_attempts, &ops));
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}
