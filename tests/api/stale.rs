//! Names of test schemas that say who made them, so that a run can drop the
//! ones a dead process left without touching those of runs still going (in
//! other worktrees, or CI on the same database).
//!
//! `ivrt_<boot>_<pid>_<uuid v7>`: `<boot>` is the first 8 hex digits of this
//! machine's boot id (a pid means something only within one boot of one
//! machine), `<pid>` the process that made it. `test.sh`'s load-generator
//! smoke run names its schema `ivrt_<boot>_<pid>_bench` the same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A schema of another machine (or boot) is dropped only after this long.
const FOREIGN_AGE: Duration = Duration::from_secs(24 * 3600);
/// A schema named before the pid was part of the name (`ivrt_<uuid v7>`).
const LEGACY_AGE: Duration = Duration::from_secs(3600);

fn boot_id() -> String {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).take(8).collect();
    if hex.len() == 8 { hex } else { "00000000".into() }
}

/// A fresh schema name for a test of this process.
pub fn name_for_this_process() -> String {
    format!("ivrt_{}_{}_{}", boot_id(), std::process::id(), uuid::Uuid::now_v7().simple())
}

/// Whether a process `pid` runs on this machine (a reused pid only keeps a schema longer).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// When a v7 uuid (32 hex digits) was made.
fn made_at(uuid_hex: &str) -> Option<SystemTime> {
    let ms = u64::from_str_radix(uuid_hex.get(..12)?, 16).ok()?;
    (uuid_hex.len() == 32 && uuid_hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

fn older_than(made: Option<SystemTime>, age: Duration, now: SystemTime) -> bool {
    made.is_some_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
}

/// Whether the test schema `name` was left behind: made by a process of this
/// boot that is gone, or old enough that no test can still be using it.
/// Names of another shape are never stale.
pub fn is_stale(name: &str, now: SystemTime) -> bool {
    let Some(rest) = name.strip_prefix("ivrt_") else { return false };
    match rest.split('_').collect::<Vec<_>>()[..] {
        [legacy] => older_than(made_at(legacy), LEGACY_AGE, now),
        [boot, pid, tail] => {
            let Ok(pid) = pid.parse::<u32>() else { return false };
            if boot == boot_id() { !alive(pid) } else { older_than(made_at(tail), FOREIGN_AGE, now) }
        }
        _ => false,
    }
}

#[test]
fn only_schemas_of_dead_processes_or_old_ones_are_stale() {
    let now = SystemTime::now();
    let mine = name_for_this_process();
    assert!(!is_stale(&mine, now), "a live process's schema");
    let boot = boot_id();
    // pid_max is at most 2^22: this pid is never alive.
    let dead = format!("ivrt_{boot}_99999999_{}", uuid::Uuid::now_v7().simple());
    assert!(is_stale(&dead, now));
    assert!(is_stale(&format!("ivrt_{boot}_99999999_bench"), now));
    assert!(!is_stale(&format!("ivrt_{boot}_{}_bench", std::process::id()), now));
    let fresh = uuid::Uuid::now_v7().simple().to_string();
    assert!(!is_stale(&format!("ivrt_{fresh}"), now), "a legacy name, young");
    assert!(is_stale(&format!("ivrt_{fresh}"), now + Duration::from_secs(2 * 3600)), "a legacy name, old");
    assert!(!is_stale(&format!("ivrt_ffffffff_1_{fresh}"), now + Duration::from_secs(3600)), "another machine's");
    assert!(is_stale(&format!("ivrt_ffffffff_1_{fresh}"), now + Duration::from_secs(25 * 3600)));
    assert!(!is_stale("ivrt_something_else", now) && !is_stale("public", now));
}
