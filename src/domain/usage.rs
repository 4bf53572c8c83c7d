//! What a tenant used, for its bill: calls placed and taken, the seconds
//! they were up, text messages — by provider account and destination
//! country. Counts only: a provider's price list is not ours to guess.
//!
//! Each use is told by the commit of the change it comes from (`for_change`)
//! as an append-only row, so a month's usage outlives the requests' purge and
//! no counter row is ever a hot spot.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use uuid::Uuid;

use super::request::{AuthRequest, Event};
use super::status::{CallStatus, Mode, Status};

/// What was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CallPlaced,
    CallTaken,
    /// Seconds a call was up (placed or taken).
    CallSeconds,
    Sms,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallPlaced => "call_placed",
            Self::CallTaken => "call_taken",
            Self::CallSeconds => "call_seconds",
            Self::Sms => "sms",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::CallPlaced, Self::CallTaken, Self::CallSeconds, Self::Sms].into_iter().find(|k| k.as_str() == name)
    }
}

/// One use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    pub tenant_id: Uuid,
    pub request_id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: Kind,
    /// The provider account (`tokyo`, `twilio`…); `inbound` for a call the
    /// user placed to an inbound number.
    pub account: String,
    /// The destination's (or the caller's) country, `JP`; `+881`-style for
    /// non-geographic codes; `??` when the number says none.
    pub country: String,
    pub amount: u64,
}

/// A calendar month (UTC), the period usage is told by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

impl Month {
    /// `YYYY-MM`, like `2026-12`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (y, m) = raw.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Self { year, month })
    }

    /// The month `at` falls in.
    pub fn of(at: DateTime<Utc>) -> Self {
        Self { year: at.year(), month: at.month() }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The first instant of the month after it.
    pub fn next_start(self) -> DateTime<Utc> {
        let next = if self.month == 12 {
            Self { year: self.year + 1, month: 1 }
        } else {
            Self { month: self.month + 1, ..self }
        };
        next.start()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// How long usage rows are kept: past a year, so last year's month can be billed again.
pub const RETENTION_DAYS: i64 = 400;

/// The account a request's calls are counted on.
fn account(r: &AuthRequest) -> String {
    match (&r.delivery.account, r.mode) {
        (Some(a), _) => a.clone(),
        (None, Mode::Inbound) => "inbound".into(),
        (None, Mode::Outbound) => "unknown".into(),
    }
}

/// The country of a request's number.
pub fn country(r: &AuthRequest) -> String {
    match r.phone_number.line() {
        Some(line) => line.country.map_or_else(|| format!("+{}", line.country_code), |c| c.to_string()),
        None => "??".into(),
    }
}

/// The uses a change tells of.
pub fn for_change(before: &AuthRequest, event: &Event, after: &AuthRequest, at: DateTime<Utc>) -> Vec<Used> {
    let used = |kind: Kind, account: String, amount: u64| Used {
        tenant_id: after.tenant_id,
        request_id: after.id,
        at,
        kind,
        account,
        country: country(after),
        amount,
    };
    let answered_now =
        before.status.rank() < Status::InProgress.rank() && after.status.rank() >= Status::InProgress.rank();
    match event {
        Event::CallPlaced { account, .. } => vec![used(Kind::CallPlaced, account.clone(), 1)],
        Event::CallConnected { .. } | Event::InboundCodeEntered { .. }
            if after.mode == Mode::Inbound && answered_now =>
        {
            vec![used(Kind::CallTaken, account(after), 1)]
        }
        Event::CallStatusReported { status: CallStatus::Completed, seconds: Some(s), .. } if *s > 0 => {
            vec![used(Kind::CallSeconds, account(after), u64::from(*s))]
        }
        Event::SmsSent { .. } => {
            vec![used(Kind::Sms, after.delivery.account.clone().unwrap_or_else(|| "sms".into()), 1)]
        }
        _ => Vec::new(),
    }
}

/// The seconds of a call's `completed` report that changes nothing else: the
/// server had already recorded the call's end when it answered `<Hangup/>`
/// (`request::apply`), and the provider tells the duration only afterwards.
/// A repeated report is counted once: the store keeps one `call_seconds` row
/// per request.
pub fn seconds_of_ended_call(r: &AuthRequest, event: &Event, at: DateTime<Utc>) -> Vec<Used> {
    match event {
        Event::CallStatusReported { status: CallStatus::Completed, seconds: Some(s), .. }
            if *s > 0 && r.call_sid.is_some() =>
        {
            let used = Used {
                tenant_id: r.tenant_id,
                request_id: r.id,
                at,
                kind: Kind::CallSeconds,
                account: account(r),
                country: country(r),
                amount: u64::from(*s),
            };
            vec![used]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::tests::sample;

    #[test]
    fn a_placed_call_and_its_seconds_are_counted_on_its_account_and_country() {
        let now = Utc::now();
        let r = sample(now);
        let placed = Event::CallPlaced { call_sid: "CA1".into(), account: "tokyo".into() };
        let t = r.apply(&placed, now).unwrap().next;
        let got = for_change(&r, &placed, &t, now);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].kind, got[0].account.as_str(), got[0].country.as_str(), got[0].amount),
            (Kind::CallPlaced, "tokyo", "JP", 1)
        );

        let up = t.apply(&Event::CallConnected { call_sid: "CA1".into() }, now).unwrap().next;
        let done = Event::CallStatusReported { status: CallStatus::Completed, sip_code: None, seconds: Some(37) };
        let after = up.apply(&done, now).unwrap().next;
        let got = for_change(&up, &done, &after, now);
        assert_eq!((got[0].kind, got[0].amount), (Kind::CallSeconds, 37));
        let unsaid = Event::CallStatusReported { status: CallStatus::Completed, sip_code: None, seconds: None };
        assert!(for_change(&up, &unsaid, &after, now).is_empty(), "no duration, no seconds");
    }

    #[test]
    fn a_month_parses_and_bounds_its_instants() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(m.next_start().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        for bad in ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "2026-1a"] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }
}
