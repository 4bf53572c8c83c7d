//! The provider accounts as lines a call can go out on: each one's client,
//! pace, reach and caller ID, and which of them failed a moment ago. Which
//! lines a call may take and in which order is `domain::routing`'s rule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::pacing::Pace;
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::routing::{self, Route};
use crate::telephony::Telephony;

/// One provider account.
pub struct Line {
    /// The account's name (`[[accounts]]` `name`; the provider's with one account).
    pub name: String,
    pub telephony: Arc<dyn Telephony>,
    /// Its calls per second and cap across every node; `None`: not paced.
    pub pace: Option<Pace>,
    /// Regions it may call; empty: any.
    pub countries: Vec<Region>,
    pub weight: u32,
    /// The From number of its calls (else the server's `IVR_AUTH_CALLER_ID`).
    pub caller_id: Option<PhoneNumber>,
}

impl Line {
    /// One line through `telephony`, with no limits of its own.
    pub fn plain(name: &str, telephony: Arc<dyn Telephony>, pace: Option<Pace>) -> Self {
        Self { name: name.to_owned(), telephony, pace, countries: Vec::new(), weight: 1, caller_id: None }
    }
}

/// Every line of this server, and until when each failing one is skipped
/// (this node's own memory: a node learns of a failing provider by itself).
pub struct Lines {
    lines: Vec<Line>,
    skipped: Mutex<HashMap<usize, DateTime<Utc>>>,
}

impl Lines {
    /// At least one line.
    pub fn new(lines: Vec<Line>) -> Self {
        assert!(!lines.is_empty(), "a server has at least one line");
        Self { lines, skipped: Mutex::new(HashMap::new()) }
    }

    /// The first line: texts and hang-ups of calls whose line is unknown go there.
    pub fn first(&self) -> &Line {
        &self.lines[0]
    }

    /// The line named `name`, else the first.
    pub fn named(&self, name: Option<&str>) -> &Line {
        name.and_then(|n| self.lines.iter().find(|l| l.name == n)).unwrap_or_else(|| self.first())
    }

    pub fn all(&self) -> &[Line] {
        &self.lines
    }

    /// The lines that may call `to`, in the order to try them for request `id` at `now`.
    pub fn order(&self, to: &PhoneNumber, id: Uuid, now: DateTime<Utc>) -> Vec<&Line> {
        let skipped = self.skipped.lock().map(|s| s.clone()).unwrap_or_default();
        let routes: Vec<Route<'_>> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| Route { countries: &l.countries, weight: l.weight, skipped_until: skipped.get(&i).copied() })
            .collect();
        let country = to.line().and_then(|l| l.country);
        let spread = id.as_u64_pair().1;
        routing::order(&routes, country, spread, now).into_iter().map(|i| &self.lines[i]).collect()
    }

    /// Skips `line` until `until` (it failed).
    pub fn skip(&self, line: &Line, until: DateTime<Utc>) {
        if let (Some(i), Ok(mut skipped)) = (self.lines.iter().position(|l| std::ptr::eq(l, line)), self.skipped.lock())
        {
            skipped.insert(i, until);
        }
    }
}
