//! Random sequences of signed webhooks and API calls against the real server:
//! a terminal status never changes and `attempts` never passes `max_attempts`.

use std::sync::OnceLock;

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
        1 => Just(Op::Read),
    ]
}

struct Shared {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    _double: ProviderDouble,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let (app, double) = rt.block_on(async {
            let double = ProviderDouble::start().await;
            let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
            (app, double)
        });
        Shared { rt, app, _double: double }
    })
}

async fn run(app: &TestApp, max_attempts: u32, ops: &[Op]) -> Result<(), String> {
    let r = app.register(json!({ "phone_number": PHONE, "code": "13579", "max_attempts": max_attempts })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let placed = app.wait_for(&id, "call placed", |v| v["status"] != "pending").await;
    let sid: String = app.stored(&id).await.call_sid.unwrap();
    let mut last = placed;
    let mut terminal: Option<Value> = None;
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
            Op::Read => 200,
        };
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
        if let Some(due) = due
            && is != due
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn terminal_states_hold_over_http(max_attempts in 1u32..=4, ops in prop::collection::vec(op(), 1..14)) {
        let s = shared();
        let result = s.rt.block_on(run(&s.app, max_attempts, &ops));
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}
