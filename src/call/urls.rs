//! The webhook URLs handed to the provider, all under `IVR_AUTH_PUBLIC_URL`.
//!
//! The URLs of a call's spoken steps carry the request's locale (`?lang=`):
//! when the database cannot be read, the hold and the "sorry" that ends it
//! are still spoken in the caller's language. The provider signs the whole
//! URL, so the locale is the server's own word, not the caller's.

use uuid::Uuid;

use crate::domain::call::InboundCall;
use crate::domain::status::Locale;

/// Builds provider-facing URLs from the public base URL (no trailing slash).
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
    /// The base and the provider's folder: what every webhook URL starts with.
    folder: String,
}

/// Route paths under a provider's folder (`/webhooks/<provider>`), shared by
/// the URL builder and the route table.
pub mod paths {
    pub const ANSWER: &str = "/voice/answer/{id}";
    pub const GATHER: &str = "/voice/gather/{id}";
    pub const NO_INPUT: &str = "/voice/no-input/{id}";
    pub const STATUS: &str = "/voice/status/{id}";
    pub const STATUS_BY_SID: &str = "/voice/status";
    pub const INBOUND: &str = "/voice/inbound";
    pub const INBOUND_GATHER: &str = "/voice/inbound/gather";
    /// The Gather action after a `voice_otp` call read the code: 1 hears it again.
    pub const OTP: &str = "/voice/otp/{id}";
    /// Delivery reports of the text message of a request.
    pub const SMS_STATUS: &str = "/sms/status/{id}";

    /// The folder of a provider's webhooks.
    pub fn folder(provider: &str) -> String {
        format!("/webhooks/{provider}")
    }
}

/// The query parameter of a spoken step's URL that names its locale.
pub const LOCALE_PARAM: &str = "lang";

/// The locale a webhook URL's query names, if it names one.
pub fn locale_in(query: &str) -> Option<Locale> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == LOCALE_PARAM).and_then(|(_, v)| Locale::parse(&v))
}

/// The query parameter of a shared-number Gather's URL that carries the call's try.
const TRY_PARAM: &str = "try";

/// The shared-number call a Gather's URL query carries (see `InboundCall::at_try`).
pub fn inbound_call_in(query: &str) -> InboundCall {
    InboundCall::at_try(
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == TRY_PARAM).and_then(|(_, v)| v.parse().ok()),
    )
}

impl Urls {
    /// The URLs of Twilio's folder (and the simulator's, which speaks TwiML).
    pub fn new(base: &str) -> Self {
        Self::for_provider(base, "twilio")
    }

    /// The URLs of `provider`'s webhooks (`/webhooks/<provider>/…`).
    pub fn for_provider(base: &str, provider: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Self { folder: format!("{base}{}", paths::folder(provider)), base }
    }

    /// The same base, for another provider's webhooks.
    pub fn of(&self, provider: &str) -> Self {
        Self::for_provider(&self.base, provider)
    }

    /// The public base URL itself.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the folder with the request's id in place of `{id}`,
    /// and the locale's query if given: written into one String.
    fn with_id_in(&self, path: &str, id: Uuid, locale: Option<Locale>) -> String {
        let mut url = String::with_capacity(self.folder.len() + path.len() + 48);
        url.push_str(&self.folder);
        match path.split_once("{id}") {
            Some((before, after)) => {
                url.push_str(before);
                url.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
                url.push_str(after);
            }
            None => url.push_str(path),
        }
        if let Some(locale) = locale {
            url.push('?');
            url.push_str(LOCALE_PARAM);
            url.push('=');
            url.push_str(locale.as_str());
        }
        url
    }

    fn with_id(&self, path: &str, id: Uuid) -> String {
        self.with_id_in(path, id, None)
    }

    /// The URL of a step that speaks, with the locale it speaks in.
    fn spoken(&self, path: &str, id: Uuid, locale: Locale) -> String {
        self.with_id_in(path, id, Some(locale))
    }

    pub fn answer(&self, id: Uuid, locale: Locale) -> String {
        self.spoken(paths::ANSWER, id, locale)
    }

    pub fn gather(&self, id: Uuid, locale: Locale) -> String {
        self.spoken(paths::GATHER, id, locale)
    }

    pub fn no_input(&self, id: Uuid, locale: Locale) -> String {
        self.spoken(paths::NO_INPUT, id, locale)
    }

    pub fn status(&self, id: Uuid) -> String {
        self.with_id(paths::STATUS, id)
    }

    pub fn otp(&self, id: Uuid, locale: Locale) -> String {
        self.spoken(paths::OTP, id, locale)
    }

    pub fn sms_status(&self, id: Uuid) -> String {
        self.with_id(paths::SMS_STATUS, id)
    }

    pub fn inbound(&self) -> String {
        format!("{}{}", self.folder, paths::INBOUND)
    }

    /// The Gather action on a number several tenants share, carrying the `call` (its try).
    pub fn inbound_gather(&self, call: InboundCall) -> String {
        format!("{}{}?{TRY_PARAM}={}", self.folder, paths::INBOUND_GATHER, call.try_number())
    }

    pub fn status_by_sid(&self) -> String {
        format!("{}{}", self.folder, paths::STATUS_BY_SID)
    }

    /// The URL the provider signed for a request the server received at `path_and_query`.
    pub fn signed_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_number_call_travels_in_its_gather_url() {
        let urls = Urls::new("https://ivr.example/");
        let second = InboundCall::first().missed().unwrap_or_else(InboundCall::first);
        let url = urls.inbound_gather(second);
        assert_eq!(url, "https://ivr.example/webhooks/twilio/voice/inbound/gather?try=2");
        let query = url.split_once('?').map_or("", |(_, q)| q);
        assert_eq!(inbound_call_in(query), second);
        assert_eq!(inbound_call_in("lang=ja-JP"), InboundCall::at_try(None), "none said: the last try");
    }

    #[test]
    fn a_step_s_url_carries_the_request_s_id_and_its_locale() {
        let urls = Urls::new("https://ivr.example");
        let id = Uuid::from_u128(0x0190_C2D4_5E6F_7A8B_9C0D_1E2F_3A4B_5C6D);
        let folder = "https://ivr.example/webhooks/twilio";
        assert_eq!(
            urls.gather(id, Locale::JaJp),
            format!("{folder}/voice/gather/0190c2d4-5e6f-7a8b-9c0d-1e2f3a4b5c6d?lang=ja-JP")
        );
        assert_eq!(urls.answer(id, Locale::EnUs), format!("{folder}/voice/answer/{id}?lang=en-US"));
        assert_eq!(urls.sms_status(id), format!("{folder}/sms/status/{id}"));
        assert_eq!(locale_in(urls.no_input(id, Locale::EnUs).split_once('?').unwrap().1), Some(Locale::EnUs));
    }

    #[test]
    fn each_provider_s_webhooks_live_in_its_own_folder() {
        let urls = Urls::new("https://ivr.example").of("vonage");
        let id = Uuid::nil();
        assert_eq!(urls.status(id), format!("https://ivr.example/webhooks/vonage/voice/status/{id}"));
        assert_eq!(urls.inbound(), "https://ivr.example/webhooks/vonage/voice/inbound");
        assert_eq!(urls.base(), "https://ivr.example");
        assert_eq!(
            urls.signed_url("/webhooks/vonage/voice/inbound"),
            "https://ivr.example/webhooks/vonage/voice/inbound"
        );
    }
}
