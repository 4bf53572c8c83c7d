//! The code key never lives in the database (security review, item 7): a
//! key file beside a SQLite database, an old stored key moved out with its
//! requests still verifiable, and rotation with a key id per request.

use std::sync::Arc;

use chrono::Utc;
use ivr_auth::domain::code::{CodeKeys, key_id};
use ivr_auth::domain::phone::PhoneNumber;
use ivr_auth::domain::registration::Registration;
use ivr_auth::domain::request::{AuthRequest, Sealed};
use ivr_auth::domain::status::Mode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::procs::spawn_proc;

fn sqlite_path(db: &TestDb) -> std::path::PathBuf {
    db.url.strip_prefix("sqlite://").unwrap().into()
}

fn stored_secrets(db: &TestDb) -> i64 {
    let conn = rusqlite::Connection::open(sqlite_path(db)).unwrap();
    conn.query_row("SELECT count(*) FROM server_secret", [], |r| r.get(0)).unwrap()
}

fn without_a_key() -> Opts {
    Opts { configure: Some(Arc::new(|a| a.secret_key = None)), ..Default::default() }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_key_a_sqlite_server_keeps_it_in_a_private_file_beside_the_database() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let app = spawn_on(without_a_key(), db.clone()).await;
    let file = sqlite_path(&db).with_file_name("ivr.db.key");
    let text = std::fs::read_to_string(&file).expect("a key file beside the database");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "only its owner reads it");
    assert_eq!(stored_secrets(&db), 0, "no key in the database");
    #[cfg(unix)]
    for file in ["ivr.db", "ivr.db-wal"] {
        assert_eq!(mode(&sqlite_path(&db).with_file_name(file)), 0o600, "{file}: phone numbers and secrets");
    }
    let key = ivr_auth::secrets::parse_key_file(&text).remove(0);
    let material = ivr_auth::secrets::material(&key).unwrap();
    // Requests are made with it, and say so.
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "4821" })).await;
    let stored = app.stored(r["id"].as_str().unwrap()).await;
    assert_eq!(stored.key_id.as_deref(), Some(key_id(&material).as_str()));
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "4821").await;
    app.wait_status(r["id"].as_str().unwrap(), "verified").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_an_older_version_kept_in_the_database_is_moved_out_and_its_requests_still_verify() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let tenant = create_tenant(&db.url, "acme").await;
    // As an older version left it: the key in the database, a request hashed with it, without a key id.
    let old_key = [7u8; 32];
    let conn = rusqlite::Connection::open(sqlite_path(&db)).unwrap();
    conn.execute("INSERT INTO server_secret (id, secret) VALUES (1, ?1)", [&old_key[..]]).unwrap();
    let keys = CodeKeys::from_secret(&old_key);
    let mut reg = Registration::with_defaults(PhoneNumber::from_stored(PHONE.into()));
    reg.mode = Mode::Inbound;
    let id = uuid::Uuid::now_v7();
    let sealed = Sealed {
        key_id: None,
        code_hash: keys.hash(id.as_bytes(), "482913").to_vec(),
        code_salt: None,
        fingerprint: keys.fingerprint(&reg.canonical()).to_vec(),
    };
    let tenant_id = uuid::Uuid::parse_str(&tenant.tenant_id).unwrap();
    let old = AuthRequest::new(id, tenant_id, &reg, sealed, ivr_auth::clock::to_millis(Utc::now()));
    db.store().await.insert_request(old.into(), vec![], ivr_auth::store::Limits::default()).await.unwrap();

    let app = spawn_as(without_a_key(), db.clone(), Some(tenant)).await;
    assert_eq!(stored_secrets(&db), 0, "the key left the database");
    let file = sqlite_path(&db).with_file_name("ivr.db.key");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(ivr_auth::secrets::parse_key_file(&text), [format!("hex:{}", hex::encode(old_key))], "{text}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    // The request made before the upgrade verifies.
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "482913").await;
    app.wait_status(&id.to_string(), "verified").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_still_verifies_the_requests_it_made_and_new_ones_use_the_new_key() {
    const OLD: &str = "the-old-secret-key-of-this-test-0123456789";
    const NEW: &str = "the-new-secret-key-of-this-test-9876543210";
    let db = Arc::new(TestDb::new(Backend::of_run()).await);
    let tenant = create_tenant(&db.url, "acme").await;
    let mut first = spawn_proc(&db.url, &[("IVR_AUTH_SECRET_KEY", OLD)]);
    let app = TestApp::attach(first.base.clone(), tenant.clone(), db.clone());
    let before = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "code": "1111" })).await;
    let before_id = before["id"].as_str().unwrap().to_owned();
    assert_eq!(app.stored(&before_id).await.key_id.as_deref(), Some(key_id(OLD.as_bytes()).as_str()));
    first.kill9();

    let second = spawn_proc(&db.url, &[("IVR_AUTH_SECRET_KEY", NEW), ("IVR_AUTH_SECRET_KEY_PREVIOUS", OLD)]);
    let app = TestApp::attach(second.base.clone(), tenant.clone(), db.clone());
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "1111").await;
    app.wait_status(&before_id, "verified").await;
    let after: Value = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let after = app.stored(after["id"].as_str().unwrap()).await;
    assert_eq!(after.key_id.as_deref(), Some(key_id(NEW.as_bytes()).as_str()));
    let log = second.log.lock().unwrap().clone();
    assert!(!log.contains(OLD) && !log.contains(NEW), "keys never reach the log");
}
