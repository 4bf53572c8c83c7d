//! The simulator provider: a stand-in for the telephony provider that lives in the process.
//!
//! It "places" calls by driving the server's own webhooks over real HTTP,
//! signed exactly as the provider signs them, and runs the TwiML it gets
//! back. A person (the dev phone page) or a test answers, declines and
//! presses keys through its small JSON API.

pub mod api;
mod call;
mod snapshot;
pub mod twiml_parse;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};

use crate::call::urls::Urls;
use crate::domain::phone::PhoneNumber;
use crate::telephony::{CallError, OutboundCall, OutboundSms, Telephony};
use call::CallKind;
pub use call::Command;
pub use snapshot::{CallSnapshot, MessageSnapshot, TimelineEntry};

/// Calls kept for listing; older finished calls are forgotten.
const KEEP_CALLS: usize = 200;
/// Caller ID of simulated outbound calls when none is configured.
const DEFAULT_CALLER_ID: &str = "+815012340000";

struct CallHandle {
    snapshot: Mutex<CallSnapshot>,
    commands: mpsc::UnboundedSender<Command>,
}

/// Why a simulator API command was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no simulated call with this sid")]
    NoSuchCall,
    #[error("{0}")]
    NotNow(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
}

struct Inner {
    calls: Mutex<VecDeque<Arc<CallHandle>>>,
    http: reqwest::Client,
    auth_token: SecretString,
    account_sid: String,
    caller_id: String,
    inbound_number: Option<PhoneNumber>,
    /// Whether prompts take as long as speaking them would (for people), or no time (for tests).
    pacing: bool,
    /// Where the server listens (`http://127.0.0.1:port`), set once bound.
    target: OnceLock<String>,
    urls: OnceLock<Urls>,
    events: broadcast::Sender<CallSnapshot>,
    messages: Mutex<VecDeque<MessageSnapshot>>,
    message_events: broadcast::Sender<MessageSnapshot>,
    /// Turns true when the server stops, so that live event streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

/// The simulated provider. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_sid(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

impl Inner {
    /// POSTs a signed form to `url`; the URL is signed as given (the public
    /// URL) and sent to where the server listens, like a reverse proxy would.
    async fn post_signed(&self, url: &str, params: &[(String, String)]) -> Result<String, String> {
        let sig = crate::telephony::twilio::signature::sign(self.auth_token.expose_secret().as_bytes(), url, params);
        let target = match (self.urls.get(), self.target.get()) {
            (Some(urls), Some(target)) if url.starts_with(urls.base()) => {
                format!("{target}{}", &url[urls.base().len()..])
            }
            _ => url.to_owned(),
        };
        let resp = self
            .http
            .post(&target)
            .header("X-Twilio-Signature", sig)
            .header("User-Agent", "ivr-auth-simulator/1.0")
            .form(params)
            .send()
            .await
            .map_err(|e| {
                format!("webhook request failed: {}", if e.is_timeout() { "timeout" } else { "network error" })
            })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|_| "webhook answer unreadable".to_owned())?;
        if !status.is_success() {
            return Err(format!("webhook answered HTTP {}", status.as_u16()));
        }
        Ok(body)
    }
}

impl Simulator {
    /// A simulator signing webhooks with `auth_token`.
    pub fn new(
        http: reqwest::Client,
        auth_token: SecretString,
        caller_id: Option<&PhoneNumber>,
        inbound_number: Option<PhoneNumber>,
        pacing: bool,
    ) -> Self {
        let (events, _) = broadcast::channel(256);
        let (message_events, _) = broadcast::channel(64);
        let (closing, _) = tokio::sync::watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                calls: Mutex::new(VecDeque::new()),
                http,
                auth_token,
                account_sid: format!("AC{}", "0".repeat(32)),
                caller_id: caller_id.map_or(DEFAULT_CALLER_ID.to_owned(), |c| c.as_str().to_owned()),
                inbound_number,
                pacing,
                target: OnceLock::new(),
                urls: OnceLock::new(),
                events,
                messages: Mutex::new(VecDeque::new()),
                message_events,
                closing,
            }),
        }
    }

    /// Tells the simulator where the server listens and which public URLs it signs.
    pub fn attach(&self, target: String, urls: Urls) {
        let _ = self.inner.target.set(target);
        let _ = self.inner.urls.set(urls);
    }

    /// Live updates: every change of every call.
    pub fn subscribe(&self) -> broadcast::Receiver<CallSnapshot> {
        self.inner.events.subscribe()
    }

    /// Live updates of text messages.
    pub fn subscribe_messages(&self) -> broadcast::Receiver<MessageSnapshot> {
        self.inner.message_events.subscribe()
    }

    /// The kept text messages, newest first.
    pub fn messages(&self) -> Vec<MessageSnapshot> {
        lock(&self.inner.messages).iter().rev().cloned().collect()
    }

    fn set_message_status(&self, sid: &str, status: &'static str) {
        let updated = {
            let mut messages = lock(&self.inner.messages);
            messages.iter_mut().find(|m| m.sid == sid).map(|m| {
                m.status = status;
                m.clone()
            })
        };
        if let Some(m) = updated {
            let _ = self.inner.message_events.send(m);
        }
    }

    /// Ends the live event streams (the server is stopping).
    pub fn close(&self) {
        let _ = self.inner.closing.send(true);
    }

    /// Turns true when the server stops.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// The numbers the simulator uses: the inbound number users dial, and the caller ID of outbound calls.
    pub fn numbers(&self) -> (Option<&PhoneNumber>, &str) {
        (self.inner.inbound_number.as_ref(), &self.inner.caller_id)
    }

    /// All kept calls, newest first.
    pub fn calls(&self) -> Vec<CallSnapshot> {
        lock(&self.inner.calls).iter().rev().map(|h| lock(&h.snapshot).clone()).collect()
    }

    pub fn call(&self, sid: &str) -> Option<CallSnapshot> {
        self.handle(sid).map(|h| lock(&h.snapshot).clone())
    }

    fn handle(&self, sid: &str) -> Option<Arc<CallHandle>> {
        lock(&self.inner.calls).iter().find(|h| lock(&h.snapshot).sid == sid).cloned()
    }

    /// Sends a command to a live call.
    pub fn command(&self, sid: &str, command: Command) -> Result<CallSnapshot, SimError> {
        let handle = self.handle(sid).ok_or(SimError::NoSuchCall)?;
        let snap = lock(&handle.snapshot).clone();
        let ringing = snap.state == "ringing";
        let live = matches!(snap.state, "ringing" | "in-progress");
        match &command {
            Command::Answer | Command::Decline if !ringing => return Err(SimError::NotNow("the call is not ringing")),
            Command::Digits(_) if snap.state != "in-progress" => {
                return Err(SimError::NotNow("the call is not connected"));
            }
            Command::Hangup if !live => return Err(SimError::NotNow("the call has ended")),
            _ => {}
        }
        handle.commands.send(command).map_err(|_| SimError::NotNow("the call has ended"))?;
        Ok(snap)
    }

    /// The user calls `to` (a tenant's own number; `None`: the server's inbound
    /// number) from `from` (a number, or a withheld caller ID).
    pub fn dial_in(&self, from: &str, to: Option<&str>, verstat: Option<&str>) -> Result<CallSnapshot, SimError> {
        let to = match to {
            Some(to) => {
                let e164 = to
                    .strip_prefix('+')
                    .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
                if !e164 {
                    return Err(SimError::Invalid("to: an E.164 number like +81312345678"));
                }
                to.to_owned()
            }
            None => self
                .inner
                .inbound_number
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .ok_or(SimError::NotNow("inbound calls are disabled: IVR_AUTH_INBOUND_NUMBER is unset"))?,
        };
        if from.chars().count() > 64 || from.chars().any(char::is_control) {
            return Err(SimError::Invalid("from: at most 64 printable characters"));
        }
        if verstat.is_some_and(|v| v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
            return Err(SimError::Invalid("stir_verstat: at most 64 letters, digits and dashes"));
        }
        let urls = self.inner.urls.get().ok_or(SimError::NotNow("the server is not listening yet"))?;
        let kind = CallKind::Inbound { url: urls.inbound(), status_callback: urls.status_by_sid() };
        let call = self.start(from.to_owned(), to, "inbound", kind, verstat.map(str::to_owned));
        Ok(call)
    }

    fn start(
        &self,
        from: String,
        to: String,
        direction: &'static str,
        kind: CallKind,
        stir_verstat: Option<String>,
    ) -> CallSnapshot {
        let (tx, rx) = mpsc::unbounded_channel();
        let snapshot = CallSnapshot {
            sid: new_sid("CA"),
            direction,
            from,
            to,
            stir_verstat,
            state: "ringing",
            awaiting_digits: false,
            request_id: None,
            created_at: call::stamp(),
            timeline: Vec::new(),
        };
        let handle = Arc::new(CallHandle { snapshot: Mutex::new(snapshot.clone()), commands: tx });
        {
            let mut calls = lock(&self.inner.calls);
            calls.push_back(handle.clone());
            while calls.len() > KEEP_CALLS {
                let Some(pos) =
                    calls.iter().position(|h| !matches!(lock(&h.snapshot).state, "ringing" | "in-progress"))
                else {
                    break;
                };
                calls.remove(pos);
            }
        }
        tokio::spawn(call::run(self.inner.clone(), handle, rx, kind));
        snapshot
    }
}

#[async_trait]
impl Telephony for Simulator {
    async fn place_call(&self, c: &OutboundCall) -> Result<String, CallError> {
        let from = c.from.as_ref().map_or(self.inner.caller_id.clone(), |f| f.as_str().to_owned());
        let kind = CallKind::Outbound {
            url: c.answer_url.clone(),
            status_callback: c.status_callback.clone(),
            ring_seconds: c.timeout,
        };
        Ok(self.start(from, c.to.as_str().to_owned(), "outbound-api", kind, None).sid)
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        // A call that has already ended needs nothing more.
        let _ = self.command(call_sid, Command::Hangup);
        Ok(())
    }

    /// "Delivers" the message to the dev phone at once, then reports it
    /// `sent` and `delivered` to its status callback, signed like the provider.
    async fn send_sms(&self, sms: &OutboundSms) -> Result<String, CallError> {
        let message = MessageSnapshot {
            sid: new_sid("SM"),
            from: sms.from.as_ref().map_or(self.inner.caller_id.clone(), |f| f.as_str().to_owned()),
            to: sms.to.as_str().to_owned(),
            body: sms.body.clone(),
            status: "queued",
            created_at: call::stamp(),
        };
        {
            let mut messages = lock(&self.inner.messages);
            messages.push_back(message.clone());
            while messages.len() > KEEP_CALLS {
                messages.pop_front();
            }
        }
        let _ = self.inner.message_events.send(message.clone());
        let (sim, callback, sid) = (self.clone(), sms.status_callback.clone(), message.sid.clone());
        tokio::spawn(async move {
            for status in ["sent", "delivered"] {
                sim.set_message_status(&sid, status);
                let params: Vec<(String, String)> = [
                    ("AccountSid", sim.inner.account_sid.as_str()),
                    ("ApiVersion", "2010-04-01"),
                    ("MessageSid", sid.as_str()),
                    ("SmsSid", sid.as_str()),
                    ("MessageStatus", status),
                    ("SmsStatus", status),
                    ("From", message.from.as_str()),
                    ("To", message.to.as_str()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
                if let Err(e) = sim.inner.post_signed(&callback, &params).await {
                    tracing::warn!(error = %e, "simulated message status callback failed");
                }
            }
        });
        Ok(message.sid)
    }

    /// The simulator speaks TwiML and signs as Twilio does.
    fn webhooks(&self) -> &'static str {
        "twilio"
    }
}
