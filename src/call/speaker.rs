//! `Speaker`: the call script of one call, in its locale, with its tenant's words.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::call::{InboundCall, REPEAT_KEY};
use crate::domain::code::KeyRing;
use crate::domain::request::AuthRequest;
use crate::domain::status::{FailureReason, Locale, Mode, Status};
use crate::domain::tenant::Tenant;

use super::prompt::Prompt;
use super::prompts::{Prompts, Vars};
use super::script::{Script, Step};
use super::urls::Urls;

/// What a call's words are made of: the server's prompts, its public URLs,
/// how long a Gather waits and the keys that derive a `voice_otp` code.
#[derive(Clone, Copy)]
pub struct Voice<'a> {
    pub prompts: &'a Prompts,
    pub urls: &'a Urls,
    /// Seconds between digits before a Gather gives up.
    pub gather_timeout: u32,
    pub keys: &'a KeyRing,
}

/// The script of one request's call, in its locale, with its tenant's words.
pub struct Speaker<'a> {
    voice: Voice<'a>,
    locale: Locale,
    /// Who placed the call: the greeting and the goodbye differ.
    mode: Mode,
    pub vars: Vars,
    tenant: Option<Arc<Tenant>>,
}

impl<'a> Speaker<'a> {
    pub fn new(voice: Voice<'a>, r: Option<&AuthRequest>, tenant: Option<Arc<Tenant>>) -> Self {
        let vars = r.map_or(Vars::default(), |r| Vars {
            code_length: r.code_length,
            attempts_left: r.attempts_left(),
            site_name: tenant.as_ref().and_then(|t| t.policy.voice.name_for(r.locale.as_str())).map(str::to_owned),
            ..Vars::default()
        });
        Self {
            voice,
            locale: r.map_or(Locale::DEFAULT, |r| r.locale),
            mode: r.map_or(Mode::Inbound, |r| r.mode),
            vars,
            tenant,
        }
    }

    /// For a call no request is known for; `mode` says who placed it.
    pub fn nobody(voice: Voice<'a>, mode: Mode, locale: Locale) -> Self {
        Self { mode, locale, ..Self::new(voice, None, None) }
    }

    /// For a call on a number several tenants share, before the code picks
    /// one: the server's own prompts in its default locale, so that no
    /// tenant decides what another tenant's callers hear. The code's length
    /// is said only when every candidate's is the same.
    pub fn shared(voice: Voice<'a>, candidates: &[AuthRequest]) -> Self {
        let mut speak = Self::nobody(voice, Mode::Inbound, Locale::DEFAULT);
        let mut lengths = candidates.iter().map(|r| r.code_length);
        let first = lengths.next().unwrap_or_default();
        speak.vars.code_length = if lengths.all(|l| l == first) { first } else { 0 };
        speak
    }

    pub fn say(&self, p: Prompt) -> Step {
        let voice = self.tenant.as_ref().map(|t| &t.policy.voice);
        self.voice.prompts.step(self.locale, p, &self.vars, voice, self.voice.urls.base())
    }

    pub fn goodbye(&self) -> Prompt {
        match self.mode {
            Mode::Outbound => Prompt::GoodbyeOutbound,
            Mode::Inbound => Prompt::GoodbyeInbound,
        }
    }

    /// The prompts, then goodbye and hang up.
    pub fn end(&self, prompts: &[Prompt]) -> Script {
        let mut verbs: Vec<Step> = prompts.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.say(self.goodbye()));
        verbs.push(Step::Hangup);
        verbs
    }

    /// The prompts, then a Gather for the code; silence falls through to the
    /// no-input handler. The code ends on its last digit, so nobody is asked
    /// for `#`; `*` ends the Gather early and asks to hear the prompt again.
    /// The prompts before it are outside the Gather: a late `#` typed after
    /// the last digit lands on them, not in the next code.
    pub fn ask(&self, id: Uuid, before: &[Prompt]) -> Script {
        let mut verbs: Vec<Step> = before.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.gather(self.voice.urls.gather(id, self.locale), u32::from(self.vars.code_length)));
        verbs.push(Step::Redirect { url: self.voice.urls.no_input(id, self.locale) });
        verbs
    }

    pub fn gather(&self, action: String, num_digits: u32) -> Step {
        Step::Gather {
            action,
            num_digits: Some(num_digits),
            timeout: self.voice.gather_timeout,
            finish_on_key: REPEAT_KEY.into(),
            action_on_empty_result: true,
            prompts: vec![self.say(Prompt::EnterCode)],
        }
    }

    /// The prompts, then a Gather whose code picks one of `candidates` (a
    /// number several tenants share); silence comes back here as a try too.
    /// Codes of one length end on their last digit. Of several lengths, the
    /// longest end on their last digit and the caller is asked to end the
    /// code with `#` (the Gather's timeout ends it too): no tenant's length
    /// cuts another tenant's code short, and none is announced.
    pub fn ask_shared(&self, candidates: &[AuthRequest], call: InboundCall, before: &[Prompt]) -> Script {
        let longest = candidates.iter().map(|r| u32::from(r.code_length)).max().unwrap_or(10);
        let next = self.voice.urls.inbound_gather(call);
        let mut verbs: Vec<Step> = before.iter().map(|p| self.say(*p)).collect();
        let mut gather = self.gather(next.clone(), longest);
        if candidates.iter().any(|r| u32::from(r.code_length) != longest)
            && let Step::Gather { finish_on_key, prompts, .. } = &mut gather
        {
            *finish_on_key = "#".into();
            *prompts = vec![self.say(Prompt::EnterCodeThenPound)];
        }
        verbs.push(gather);
        verbs.push(Step::Redirect { url: next });
        verbs
    }

    /// A `voice_otp` call: the code read aloud, digit by digit, twice, then
    /// "press 1 to hear it again", then where to type it, and goodbye.
    pub fn read_code(&self, r: &AuthRequest, before: &[Prompt]) -> Script {
        let Some(code) = spoken_code(self.voice.keys, r) else {
            tracing::error!(request_id = %r.id, "a voice_otp request without a code the server can derive");
            return self.end(&[Prompt::Failure]);
        };
        let mut verbs: Vec<Step> = before.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.say(Prompt::OtpIntro));
        verbs.push(self.voice.prompts.say_digits(self.locale, &code));
        verbs.push(Step::Pause { seconds: 1 });
        verbs.push(self.say(Prompt::OtpAgain));
        verbs.push(self.voice.prompts.say_digits(self.locale, &code));
        if r.delivery.may_read_again() {
            verbs.push(Step::Gather {
                action: self.voice.urls.otp(r.id, self.locale),
                num_digits: Some(1),
                timeout: 5,
                finish_on_key: String::new(),
                action_on_empty_result: false,
                prompts: vec![self.say(Prompt::OtpMenu)],
            });
        }
        verbs.push(self.say(Prompt::OtpEnterOnPage));
        verbs.push(self.say(self.goodbye()));
        verbs.push(Step::Hangup);
        verbs
    }

    /// What to say when a request has ended (or never was).
    pub fn ended(&self, r: Option<&AuthRequest>) -> Script {
        match r.map(|r| (r.status, r.failure_reason)) {
            Some((Status::Verified, _)) => self.end(&[Prompt::Success]),
            Some((Status::Expired, _)) => self.end(&[Prompt::Expired]),
            Some((Status::Failed, Some(FailureReason::NoInput))) => self.end(&[Prompt::NoInput, Prompt::Failure]),
            Some((Status::Failed, Some(FailureReason::WrongCode))) => {
                self.end(&[Prompt::TooManyAttempts, Prompt::Failure])
            }
            Some((Status::Failed, Some(FailureReason::Attestation))) => self.end(&[Prompt::CallerIdUnverified]),
            Some((Status::Failed, _)) => self.end(&[Prompt::Failure]),
            _ => self.end(&[]),
        }
    }
}

/// The code of a `voice_otp` request as `<Say>` text: its digits as
/// numerals separated by commas (`4, 8, 2, 9, 1, 3`), which every provider's
/// text-to-speech reads one by one, with a short pause at each comma.
fn spoken_code(keys: &KeyRing, r: &AuthRequest) -> Option<String> {
    let code = r.expected_code(keys.for_request(r.key_id.as_deref())?)?;
    let digits: Vec<String> = code.expose().chars().map(String::from).collect();
    Some(digits.join(", "))
}
