//! What a tenant's callers would hear: the script of a sample call, for the tenant API.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::status::{Channel, FailureReason, Locale, Mode, Status};
use crate::domain::tenant::Tenant;

use super::prompt::Prompt;
use super::script::Script;
use super::speaker::{Speaker, Voice};

/// What a caller of `tenant` would hear, as the script the provider would
/// render, at `now`, in `locale` at `scene` of a sample call (its code drawn afresh):
/// `answer_outbound`, `answer_inbound`, `wrong_code`, `no_input`,
/// `verified`, `failed`, `expired` or `voice_otp`. `None`: no such scene.
pub fn preview(
    voice: Voice<'_>,
    now: DateTime<Utc>,
    tenant: Arc<Tenant>,
    locale: Locale,
    scene: &str,
) -> Option<Script> {
    use crate::domain::code::CodeKeys;
    use crate::domain::registration::Registration;
    use crate::domain::request::Sealed;
    let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
    reg.locale = locale;
    reg.mode = if scene == "answer_inbound" { Mode::Inbound } else { Mode::Outbound };
    reg.channel = if scene == "voice_otp" { Channel::VoiceOtp } else { Channel::VoiceDtmf };
    let (key_id, _) = voice.keys.current();
    let sealed = Sealed {
        key_id: Some(key_id.to_owned()),
        code_salt: Some(CodeKeys::new_salt().to_vec()),
        ..Default::default()
    };
    let mut r = AuthRequest::new(Uuid::now_v7(), tenant.id, &reg, sealed, now);
    r.status = Status::InProgress;
    let ending = |r: &mut AuthRequest, status, reason| {
        r.status = status;
        r.failure_reason = reason;
    };
    match scene {
        "wrong_code" => r.attempts = 1,
        "verified" => ending(&mut r, Status::Verified, None),
        "failed" => {
            r.attempts = r.max_attempts;
            ending(&mut r, Status::Failed, Some(FailureReason::WrongCode));
        }
        "expired" => ending(&mut r, Status::Expired, None),
        _ => {}
    }
    let speak = Speaker::new(voice, Some(&r), Some(tenant));
    Some(match scene {
        "answer_outbound" => speak.ask(r.id, &[Prompt::GreetingOutbound]),
        "answer_inbound" => speak.ask(r.id, &[Prompt::GreetingInbound]),
        "wrong_code" => speak.ask(r.id, &[Prompt::WrongCode]),
        "no_input" => speak.ask(r.id, &[Prompt::NoInput]),
        "verified" | "failed" | "expired" => speak.ended(Some(&r)),
        "voice_otp" => speak.read_code(&r, &[Prompt::GreetingOutbound]),
        _ => return None,
    })
}
