//! One simulated call: rings, fetches TwiML from the server's webhooks, runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{CallHandle, CallSnapshot, Inner, TimelineEntry, lock, twiml_parse};
use crate::call::script::Step;

/// What a person (or a test) does to a call.
#[derive(Debug, Clone)]
pub enum Command {
    Answer,
    Decline,
    Digits(String),
    Hangup,
}

/// How the call came about.
pub enum CallKind {
    Outbound { url: String, status_callback: String, ring_seconds: u32 },
    Inbound { url: String, status_callback: String },
}

/// Redirect loops end the call like the provider's limit does.
const MAX_DOCUMENTS: usize = 50;

pub fn stamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn entry(kind: &'static str) -> TimelineEntry {
    TimelineEntry { at: stamp(), kind, text: None, language: None, url: None }
}

struct Call {
    inner: Arc<Inner>,
    handle: Arc<CallHandle>,
    rx: mpsc::UnboundedReceiver<Command>,
    status_callback: String,
    sequence: u32,
    /// Keys pressed while no Gather listened, used by the next Gather.
    typed_ahead: String,
    answered_at: Option<Instant>,
}

/// How a Gather ended.
enum Gathered {
    Digits { digits: String, finished_on_key: Option<char> },
    Nothing,
    HungUp,
}

pub async fn run(inner: Arc<Inner>, handle: Arc<CallHandle>, rx: mpsc::UnboundedReceiver<Command>, kind: CallKind) {
    let status_callback = match &kind {
        CallKind::Outbound { status_callback, .. } | CallKind::Inbound { status_callback, .. } => {
            status_callback.clone()
        }
    };
    let mut call =
        Call { inner, handle, rx, status_callback, sequence: 0, typed_ahead: String::new(), answered_at: None };
    let final_state = match kind {
        CallKind::Outbound { url, ring_seconds, .. } => call.outbound(url, ring_seconds).await,
        CallKind::Inbound { url, .. } => {
            call.connected();
            call.status("in-progress", &[]).await;
            call.execute(url).await
        }
    };
    call.finish(final_state).await;
}

impl Call {
    fn update(&self, f: impl FnOnce(&mut CallSnapshot)) {
        let snap = {
            let mut s = lock(&self.handle.snapshot);
            f(&mut s);
            s.clone()
        };
        let _ = self.inner.events.send(snap);
    }

    fn log(&self, e: TimelineEntry) {
        self.update(|s| s.timeline.push(e));
    }

    fn connected(&mut self) {
        self.answered_at = Some(Instant::now());
        self.update(|s| {
            s.state = "in-progress";
            s.timeline.push(entry("answered"));
        });
    }

    async fn outbound(&mut self, url: String, ring_seconds: u32) -> &'static str {
        self.status("initiated", &[]).await;
        self.log(entry("ringing"));
        self.status("ringing", &[]).await;
        let ring = Duration::from_secs(u64::from(ring_seconds));
        let deadline = tokio::time::Instant::now() + ring;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return "no-answer",
                Ok(None | Some(Command::Hangup)) => return "canceled",
                Ok(Some(Command::Decline)) => {
                    self.log(entry("declined"));
                    return "busy";
                }
                Ok(Some(Command::Answer)) => break,
                Ok(Some(Command::Digits(_))) => {}
            }
        }
        self.connected();
        self.status("in-progress", &[]).await;
        self.execute(url).await
    }

    fn base_params(&self, call_status: &str) -> Vec<(String, String)> {
        let s = lock(&self.handle.snapshot);
        [
            ("AccountSid", self.inner.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", s.sid.as_str()),
            ("CallStatus", call_status),
            ("Direction", s.direction),
            ("From", s.from.as_str()),
            ("To", s.to.as_str()),
            ("Caller", s.from.as_str()),
            ("Called", s.to.as_str()),
        ]
        .into_iter()
        .chain(s.stir_verstat.as_deref().map(|v| ("StirVerstat", v)))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// POSTs a signed form to `url` (see `Inner::post_signed`), and notes the
    /// request the server's URL names.
    async fn post(&self, url: &str, params: &[(String, String)]) -> Result<String, String> {
        let body = self.inner.post_signed(url, params).await?;
        if let Some(id) = request_id_in(url) {
            self.update(|s| {
                if s.request_id.is_none() {
                    s.request_id = Some(id);
                }
            });
        }
        Ok(body)
    }

    /// A status callback, in order, with a sequence number.
    async fn status(&mut self, call_status: &str, extra: &[(&str, String)]) {
        let mut params = self.base_params(call_status);
        params.push(("SequenceNumber".into(), self.sequence.to_string()));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("Timestamp".into(), Utc::now().to_rfc2822()));
        params.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        self.sequence += 1;
        let mut e = entry("status");
        e.text = Some(call_status.to_owned());
        self.log(e);
        let url = self.status_callback.clone();
        if let Err(err) = self.post(&url, &params).await {
            let mut e = entry("error");
            e.text = Some(format!("status callback: {err}"));
            self.log(e);
        }
    }

    /// Fetches and runs TwiML documents until the call ends.
    async fn execute(&mut self, first_url: String) -> &'static str {
        let mut next = Some((first_url, Vec::new()));
        let mut fetched = 0;
        while let Some((url, extra)) = next.take() {
            fetched += 1;
            if fetched > MAX_DOCUMENTS {
                self.error("too many TwiML documents in one call");
                return "completed";
            }
            let mut params = self.base_params("in-progress");
            params.extend(extra);
            let verbs = match self.post(&url, &params).await.and_then(|doc| twiml_parse::parse(&doc)) {
                Ok(v) => v,
                Err(err) => {
                    self.error(&format!("application error: {err}"));
                    return "completed";
                }
            };
            match self.run_verbs(&url, verbs).await {
                Flow::Next(url, extra) => next = Some((url, extra)),
                Flow::End => return "completed",
            }
        }
        "completed"
    }

    fn error(&self, text: &str) {
        let mut e = entry("error");
        e.text = Some(text.to_owned());
        self.log(e);
    }

    /// Takes keys and hang-ups that arrived while no Gather was listening.
    fn drain(&mut self) -> bool {
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Hangup => return true,
                Command::Digits(d) => self.typed_ahead.push_str(&d),
                Command::Answer | Command::Decline => {}
            }
        }
        false
    }

    async fn run_verbs(&mut self, current_url: &str, verbs: Vec<Step>) -> Flow {
        for verb in verbs {
            if self.drain() {
                self.log(entry("hangup"));
                return Flow::End;
            }
            match verb {
                Step::Say { .. } | Step::Play { .. } | Step::Pause { .. } => {
                    if self.speak(&verb, false).await == Heard::HungUp {
                        self.log(entry("hangup"));
                        return Flow::End;
                    }
                }
                Step::Redirect { url } => {
                    let mut e = entry("redirect");
                    e.url = Some(url.clone());
                    self.log(e);
                    return Flow::Next(url, Vec::new());
                }
                Step::Hangup => {
                    self.log(entry("hangup"));
                    return Flow::End;
                }
                Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result, prompts } => {
                    // Keys are heard from the first nested prompt on, and a key stops the prompts.
                    self.update(|s| s.awaiting_digits = true);
                    for p in &prompts {
                        match self.speak(p, true).await {
                            Heard::Finished => {}
                            Heard::Keys => break,
                            Heard::HungUp => {
                                self.log(entry("hangup"));
                                return Flow::End;
                            }
                        }
                    }
                    let mut e = entry("gather");
                    e.text = Some(format!(
                        "timeout={timeout}s numDigits={}",
                        num_digits.map_or("-".into(), |n| n.to_string())
                    ));
                    self.log(e);
                    match self.gather(num_digits, timeout, &finish_on_key).await {
                        Gathered::HungUp => {
                            self.log(entry("hangup"));
                            return Flow::End;
                        }
                        Gathered::Nothing if action_on_empty_result => {
                            let target = if action.is_empty() { current_url.to_owned() } else { action };
                            return Flow::Next(target, vec![("Digits".to_owned(), String::new())]);
                        }
                        Gathered::Nothing => {}
                        Gathered::Digits { digits, finished_on_key } => {
                            let mut e = entry("digits");
                            e.text = Some(digits.clone());
                            self.log(e);
                            let target = if action.is_empty() { current_url.to_owned() } else { action };
                            let extra = vec![
                                ("Digits".to_owned(), digits),
                                ("FinishedOnKey".to_owned(), finished_on_key.map(String::from).unwrap_or_default()),
                            ];
                            return Flow::Next(target, extra);
                        }
                    }
                }
            }
        }
        // Running out of TwiML hangs up.
        self.log(entry("hangup"));
        Flow::End
    }

    /// Plays a prompt: logs it, then (when paced) lets it take about as long as
    /// speaking it would, listening for keys and hang-ups meanwhile. Inside a
    /// Gather a key interrupts the prompt (barge-in) and goes to the Gather.
    async fn speak(&mut self, verb: &Step, barge_in: bool) -> Heard {
        let (e, takes) = match verb {
            Step::Say { text, language, .. } => {
                let mut e = entry("say");
                e.text = Some(text.clone());
                e.language = Some(language.clone());
                // Japanese TTS reads about 8 characters a second, English about 15.
                let per_second = if language.starts_with("ja") { 8.0 } else { 15.0 };
                (e, Duration::from_secs_f64((text.chars().count() as f64 / per_second).clamp(0.5, 15.0)))
            }
            Step::Play { url } => {
                let mut e = entry("play");
                e.url = Some(url.clone());
                (e, Duration::from_secs(2))
            }
            Step::Pause { seconds } => {
                let mut e = entry("pause");
                e.text = Some(seconds.to_string());
                (e, Duration::from_secs(u64::from(*seconds)))
            }
            _ => return Heard::Finished,
        };
        self.log(e);
        if !self.inner.pacing {
            return Heard::Finished;
        }
        let until = tokio::time::Instant::now() + takes;
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Err(_) => return Heard::Finished,
                Ok(None | Some(Command::Hangup)) => return Heard::HungUp,
                Ok(Some(Command::Digits(d))) => {
                    self.typed_ahead.push_str(&d);
                    if barge_in {
                        return Heard::Keys;
                    }
                }
                Ok(Some(Command::Answer | Command::Decline)) => {}
            }
        }
    }

    async fn gather(&mut self, num_digits: Option<u32>, seconds: u32, finish_on_key: &str) -> Gathered {
        let mut buf = String::new();
        let mut pending = std::mem::take(&mut self.typed_ahead);
        let outcome = 'outer: loop {
            for c in pending.drain(..) {
                let mut e = entry("key");
                e.text = Some(c.to_string());
                self.log(e);
                if finish_on_key.contains(c) {
                    break 'outer Gathered::Digits { digits: std::mem::take(&mut buf), finished_on_key: Some(c) };
                }
                buf.push(c);
                if num_digits.is_some_and(|n| buf.len() >= n as usize) {
                    break 'outer Gathered::Digits { digits: std::mem::take(&mut buf), finished_on_key: None };
                }
            }
            match timeout(Duration::from_secs(u64::from(seconds)), self.rx.recv()).await {
                Err(_) if buf.is_empty() => break Gathered::Nothing,
                Err(_) => break Gathered::Digits { digits: std::mem::take(&mut buf), finished_on_key: None },
                Ok(None | Some(Command::Hangup)) => break Gathered::HungUp,
                Ok(Some(Command::Digits(d))) => pending = d,
                Ok(Some(Command::Answer | Command::Decline)) => {}
            }
        };
        self.update(|s| s.awaiting_digits = false);
        outcome
    }

    async fn finish(&mut self, state: &'static str) {
        let duration = self.answered_at.map_or(0, |t| t.elapsed().as_secs());
        self.update(|s| {
            s.state = state;
            s.awaiting_digits = false;
        });
        let mut extra = vec![("CallDuration", duration.to_string())];
        if state == "busy" {
            // The callee pressed "decline": SIP 603.
            extra.push(("SipResponseCode", "603".to_owned()));
        }
        self.status(state, &extra).await;
    }
}

/// How a prompt ended.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Finished,
    Keys,
    HungUp,
}

enum Flow {
    Next(String, Vec<(String, String)>),
    End,
}

/// The request id in one of the server's webhook URLs (`…/answer/{id}`).
fn request_id_in(url: &str) -> Option<String> {
    let path = url.split('?').next()?;
    let (_, last) = path.rsplit_once('/')?;
    uuid::Uuid::parse_str(last).ok().map(|u| u.to_string())
}
