//! `bench seed`: fills a database with finished requests, quickly, for the scale target.

use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use rand::{Rng, RngExt};
use uuid::{NoContext, Timestamp, Uuid};

use ivr_auth::cli::{DbArgs, TenantAction};
use ivr_auth::config::parse_database_url;
use ivr_auth::domain::phone::PhoneNumber;
use ivr_auth::domain::registration::Registration;
use ivr_auth::domain::request::{AuthRequest, Sealed};
use ivr_auth::domain::status::{CallStatus, FailureReason, Mode, Status};
use ivr_auth::store::seed::Seeder;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The database to fill
    #[arg(long, env = "IVR_AUTH_DATABASE_URL")]
    pub database_url: String,
    /// How many requests
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Spread their creation over this many past days (keep it under the retention)
    #[arg(long, default_value_t = 25)]
    pub days: i64,
}

const BATCH: u64 = 20_000;

fn random_bytes<const N: usize>(rng: &mut impl Rng) -> Vec<u8> {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b.to_vec()
}

/// A finished request created `age` ago, with a time-ordered id of that moment.
fn finished(tenant: Uuid, age: Duration, rng: &mut impl RngExt) -> AuthRequest {
    let created = Utc::now() - age;
    let ts = Timestamp::from_unix(NoContext, created.timestamp() as u64, created.timestamp_subsec_nanos());
    let phone = PhoneNumber::from_stored(format!("+8190{:08}", rng.random_range(10_000_000..90_000_000u32)));
    let mut reg = Registration::with_defaults(phone);
    if rng.random_bool(0.3) {
        reg.mode = Mode::Inbound;
    }
    let sealed = Sealed {
        key_id: None,
        code_hash: random_bytes::<32>(rng),
        code_salt: None,
        fingerprint: random_bytes::<32>(rng),
    };
    let mut r = AuthRequest::new(Uuid::new_v7(ts), tenant, &reg, sealed, created);
    let (status, reason) = match rng.random_range(0..10) {
        0..=6 => (Status::Verified, None),
        7 => (Status::Failed, Some(FailureReason::WrongCode)),
        8 => (Status::Failed, Some(FailureReason::NoAnswer)),
        _ => (Status::Expired, None),
    };
    r.status = status;
    r.failure_reason = reason;
    r.updated_at = created + Duration::seconds(40);
    r.call_sid = Some(format!("CA{}", Uuid::new_v7(ts).simple()));
    r.call_status = Some(CallStatus::Completed);
    if status == Status::Verified {
        r.verified_at = Some(r.updated_at);
    }
    r
}

pub async fn run(args: SeedArgs) -> Result<(), String> {
    let url = parse_database_url(&args.database_url).map_err(|e| e.to_string())?;
    let db = DbArgs { database_url: Some(args.database_url.clone()) };
    let name = format!("seed-{}", Uuid::now_v7().simple());
    let out = ivr_auth::cli::tenant(&db, None, TenantAction::Create { name }).await.map_err(|e| e.to_string())?;
    let tenant: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    let tenant = tenant["tenant_id"].as_str().and_then(|t| Uuid::parse_str(t).ok()).ok_or("no tenant id")?;
    let store = Seeder::open(&url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let span_ms = args.days.max(1) * 86_400_000;
    let mut done = 0;
    while done < args.count {
        let n = BATCH.min(args.count - done);
        // Oldest first, so ids arrive in time order like real traffic.
        let batch: Vec<AuthRequest> = {
            let mut rng = rand::rng();
            (0..n)
                .map(|i| {
                    let frac = 1.0 - (done + i) as f64 / args.count as f64;
                    finished(tenant, Duration::milliseconds((frac * span_ms as f64) as i64 + 60_000), &mut rng)
                })
                .collect()
        };
        store.insert_requests(batch).await.map_err(|e| e.to_string())?;
        done += n;
        if done % 1_000_000 == 0 || done == args.count {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            eprintln!("seeded {done} requests ({rate:.0}/s)");
        }
    }
    println!("seeded {done} finished requests in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
