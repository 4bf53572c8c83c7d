//! One behavioural suite over every provider adapter: the same flows, each
//! through a protocol double of the provider that takes the client's REST
//! calls as the client sends them and signs its webhooks as the provider does.
//!
//! `Provider` is what a flow needs of a double: the settings that point the
//! server at it, the calls it was asked to place, a webhook in its words, its
//! signature, and a reader of its markup. `conformance!` writes one test per
//! provider per flow, so a failure names the provider.

mod doubles;
mod flows;
mod guards;
mod hold;
mod markup;

use crate::helpers::Configure;

pub use doubles::{Calls, Placed};
pub use markup::Script;

/// The public URL every server of the suite is reached by (as behind a proxy):
/// the doubles sign it, the tests send to the server's own address.
pub const PUBLIC: &str = "https://ivr.example.test";
/// The caller ID of outbound calls (the harness's `IVR_AUTH_CALLER_ID`).
pub const CALLER_ID: &str = "+815011112222";

/// One side of a call, as the provider reports it (numbers in E.164).
#[derive(Clone, Debug)]
pub struct Call {
    pub sid: String,
    pub from: String,
    pub to: String,
}

/// A call's progress, as a status callback (Vonage: event webhook) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    Ringing,
    InProgress,
    Completed,
    Busy,
    /// The callee declined the call (Twilio: busy with SIP 603; Vonage: rejected).
    Declined,
}

/// What a webhook tells the server.
#[derive(Clone, Copy, Debug)]
pub enum What<'a> {
    /// The callee answered an outbound call (its answer URL).
    Answer,
    /// A user dialled the inbound number; `get`: fetched with GET and a query
    /// (Vonage's default; the form providers always POST).
    Inbound {
        get: bool,
    },
    /// The caller typed digits (the gather's action).
    Digits(&'a str),
    /// The gather heard nothing.
    Silence,
    /// The call follows a redirect (TwiML `<Redirect>`: the call's parameters;
    /// NCCO `notify`: its `payload`, as JSON).
    Redirect {
        payload: &'a str,
    },
    Status(CallStatus),
}

/// A webhook as the provider sends it: to the public URL, signed or not yet.
#[derive(Clone, Debug)]
pub struct Hook {
    pub method: reqwest::Method,
    /// The full public URL (what the provider signs), query included.
    pub url: String,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// What a flow needs of a provider's double.
pub trait Provider {
    /// Its webhook folder (`/webhooks/<name>/`).
    fn name(&self) -> &'static str;
    /// The server's settings that point it at this double.
    fn settings(&self) -> Configure;
    /// The calls the server asked the double to place, and what it refused.
    fn calls(&self) -> &Calls;
    /// A fresh call sid, as this provider writes them (for inbound calls).
    fn new_sid(&self) -> String;
    /// The webhook that says `what` about `call`, to `url`, unsigned.
    fn webhook(&self, url: &str, call: &Call, what: What<'_>) -> Hook;
    /// `hook` signed as the provider signs it now.
    fn sign(&self, hook: Hook) -> Hook;
    /// Copies of a signed `hook` that must not verify, each with a name:
    /// one wrong byte, stale (or signed for something else), changed body.
    fn forgeries(&self, hook: &Hook) -> Vec<(&'static str, Hook)>;
    /// The call script in an answer.
    fn script(&self, body: &str) -> Script;
}

/// The inbound number's URL, which the provider is configured with.
pub fn inbound_url(provider: &str) -> String {
    format!("{PUBLIC}/webhooks/{provider}/voice/inbound")
}

/// Writes one test per provider per flow, in a module named after the provider.
/// A provider's entry may carry attributes (`#[ignore = "…"]`) for the flows
/// that begin with an outbound call, for the hold, and for the words of a refusal.
macro_rules! conformance {
    ($($provider:ident => $start:expr,
        outbound [$(#[$outbound:meta])*], hold [$(#[$hold:meta])*], refusal [$(#[$refusal:meta])*];)*) => {$(
        mod $provider {
            use super::*;

            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn outbound_call_verifies() { flows::outbound($start.await).await }
            #[tokio::test(flavor = "multi_thread")]
            async fn inbound_call_verifies() { flows::inbound($start.await, true).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn voice_otp_reads_the_code_and_the_site_checks_it() { flows::voice_otp($start.await).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn a_wrong_code_then_the_right_one() { flows::wrong_then_right($start.await).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn silence_asks_again_then_fails() { flows::no_input($start.await).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn busy_and_declined_fail_as_for_twilio() { flows::busy_and_declined($start.await).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn status_callbacks_out_of_order_and_twice() { flows::out_of_order($start.await).await }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn forged_or_stale_webhooks_are_403_and_change_nothing() {
                guards::forged_and_stale($start.await).await
            }
            $(#[$outbound])*
            #[tokio::test(flavor = "multi_thread")]
            async fn a_call_s_webhooks_on_two_nodes() { guards::two_nodes($start.await).await }
            $(#[$hold])*
            #[tokio::test(flavor = "multi_thread")]
            async fn a_caller_held_through_a_database_outage_is_verified() { hold::held($start.await).await }
            $(#[$refusal])*
            #[tokio::test(flavor = "multi_thread")]
            async fn a_refusal_names_no_other_provider_s_signature() {
                guards::refusal_words($start.await).await
            }
        }
    )*};
}

conformance! {
    twilio => doubles::form::Form::twilio(), outbound [], hold [], refusal [];
    signalwire => doubles::form::Form::signalwire(), outbound [], hold [], refusal [];
    telnyx => doubles::telnyx::Telnyx::start(),
        outbound [],
        hold [],
        refusal [];
    vonage => doubles::vonage::Vonage::start(),
        outbound [],
        hold [],
        refusal [];
}

/// Vonage fetches an answer URL with GET by default (the flow above), and
/// with POST and a JSON body when so configured.
#[tokio::test(flavor = "multi_thread")]
async fn vonage_inbound_call_by_post_verifies() {
    flows::inbound(doubles::vonage::Vonage::start().await, false).await;
}
