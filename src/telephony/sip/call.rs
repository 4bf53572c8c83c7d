//! One call on our own trunk, from its INVITE to its end: the SDP, the
//! media, and the call script the call flow answers, played as audio.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rsipstack::dialog::dialog::TerminatedReason;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dialect::CallFacts;
use super::engine::{CallSlot, Engine, ended_by};
use super::identity;
use super::media::session::{MediaSession, PlayOutcome};
use super::sdp::{self, Local, Remote};
use crate::call::script::Step;

/// What happens to a call that its task must hear about.
#[derive(Debug)]
pub enum CallEvent {
    /// The ACK of our 200 arrived.
    Confirmed,
    /// A key sent as SIP INFO.
    Digit(char),
    /// A new offer mid-call (re-INVITE, UPDATE): answered with our SDP,
    /// `Err` when it cannot be carried, `None` when it carried no SDP.
    Offer { body: Vec<u8>, reply: oneshot::Sender<Option<Result<String, ()>>> },
    /// The dialog ended (BYE, CANCEL, a timeout).
    Ended(TerminatedReason),
}

/// The longest a session may go without a refresh that we accept: we
/// refresh nothing ourselves, and calls last a few minutes.
const MIN_SESSION_EXPIRES: u32 = 90;

/// Holds a seat among the node's calls; gives it back when dropped.
pub(super) struct Seat(Arc<Engine>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.active_calls.dec();
    }
}

/// A seat, unless the node holds its most calls (`Engine::max_calls`).
pub(super) fn take_seat(engine: &Arc<Engine>) -> Option<Seat> {
    let before = engine.active.fetch_add(1, Ordering::Relaxed);
    engine.metrics.active_calls.inc();
    let seat = Seat(engine.clone());
    (before < engine.max_calls).then_some(seat)
}

/// A call a trunk sent us.
pub async fn inbound(engine: Arc<Engine>, mut tx: Transaction) {
    let Some(_seat) = take_seat(&engine) else {
        engine.metrics.over_capacity.inc();
        let _ = tx.reply(StatusCode::BusyHere).await;
        return;
    };
    let req = tx.original.clone();
    let remote = match sdp::parse(&String::from_utf8_lossy(&req.body)) {
        Ok(remote) => remote,
        Err(e) => {
            tracing::info!(error = %e, "SIP INVITE refused: 488");
            let _ = tx.reply(StatusCode::NotAcceptableHere).await;
            return;
        }
    };
    if let Some(expires) = session_expires(&req)
        && expires < MIN_SESSION_EXPIRES
    {
        let min_se = Header::Other("Min-SE".into(), MIN_SESSION_EXPIRES.to_string());
        let _ = tx.reply_with(StatusCode::SessionIntervalTooSmall, vec![min_se], None).await;
        return;
    }
    let mut media = match MediaSession::open(&engine.media).await {
        Ok(media) => media,
        Err(e) => {
            tracing::warn!(error = %e, "no media port for an inbound SIP call: 503");
            let _ = tx.reply(StatusCode::ServiceUnavailable).await;
            return;
        }
    };
    let dialog = match engine.dialogs.get_or_create_server_invite(
        &tx,
        engine.states.clone(),
        None,
        Some(engine.contact.clone()),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "SIP INVITE not taken");
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return;
        }
    };
    engine.metrics.calls.get_or_create(&crate::metrics::DirectionLabel { direction: "inbound" }).inc();
    let call_id = req.call_id_header().map(|c| c.value().to_owned()).unwrap_or_default();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let slot = Arc::new(CallSlot { events: events_tx, sid: new_sid(), hang_up: CancellationToken::new() });
    engine.register(&call_id, slot.clone());
    let mut driver = dialog.clone();
    tokio::spawn(async move { driver.handle(&mut tx).await });

    let from = req.from_header().map(|f| f.value().to_owned()).unwrap_or_default();
    let pai = req.header_value("P-Asserted-Identity");
    let facts = CallFacts {
        call_id: slot.sid.clone(),
        from: identity::caller(pai.as_deref(), &from, req.header_value("Privacy").as_deref()),
        to: req.uri.user().unwrap_or_default().to_owned(),
        attestation: identity::attestation(pai.as_deref(), &from, req.header_value("Identity").as_deref())
            .map(|a| a.as_str().to_owned()),
        ..CallFacts::default()
    };
    if !requires_100rel(&req) {
        let _ = dialog.ringing(None, None);
    }
    let local =
        Local { ip: engine.config.public_address, port: media.local_port(), session_id: rand::random::<u32>().into() };
    let answer_sdp = sdp::answer(&local, &remote);
    let url = engine.hooks.url(crate::call::urls::paths::INBOUND);
    // It rings first (if configured): a caller who gives up meanwhile
    // (CANCEL) never reaches the call flow, and the request is untouched.
    let first = tokio::select! {
        steps = async {
            tokio::time::sleep(engine.config.answer_delay).await;
            engine.hooks.ask(&url, &facts).await
        } => steps,
        ended = wait_end(&mut events) => {
            tracing::info!(how = ended_by(&ended), "SIP caller left before the answer");
            engine.unregister(&call_id);
            return;
        }
    };
    let steps = match first {
        Ok(steps) => steps,
        Err(e) => {
            tracing::error!(error = %e, "inbound SIP call: the call flow did not answer; 480");
            let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
            engine.unregister(&call_id);
            return;
        }
    };
    let mut headers = vec![Header::ContentType("application/sdp".into())];
    if let Some(expires) = session_expires(&req) {
        headers.push(Header::Other("Session-Expires".into(), format!("{expires};refresher=uac")));
        headers.push(Header::Other("Require".into(), "timer".into()));
    }
    if dialog.accept(Some(headers), Some(answer_sdp.clone().into_bytes())).is_err() {
        engine.unregister(&call_id);
        return;
    }
    // The ACK (or the end: a CANCEL that crossed our 200, a BYE).
    let confirmed = tokio::time::timeout(Duration::from_secs(32), async {
        loop {
            match events.recv().await {
                Some(CallEvent::Confirmed) => return true,
                Some(CallEvent::Ended(_)) | None => return false,
                Some(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    let up = std::time::Instant::now();
    let how = if confirmed {
        media.start(remote.addr, first_law(&remote).into(), remote.event_pt);
        let mut call = Call {
            engine: &engine,
            media: &mut media,
            events: &mut events,
            slot: &slot,
            facts: &facts,
            answer_sdp: &answer_sdp,
        };
        call.play(steps).await
    } else {
        Ending::ByCaller
    };
    if how == Ending::ByUs {
        let _ = dialog.bye().await;
    }
    close(&engine, media).await;
    engine.unregister(&call_id);
    let seconds = confirmed.then(|| seconds_since(up));
    let status = CallFacts { call_status: Some("completed".into()), seconds, ..facts.clone() };
    engine.hooks.tell(&engine.hooks.url(crate::call::urls::paths::STATUS_BY_SID), &status).await;
}

/// Whole seconds a call was up, rounded up as carriers bill them.
pub(super) fn seconds_since(up: std::time::Instant) -> u32 {
    u32::try_from(up.elapsed().as_millis().div_ceil(1000)).unwrap_or(u32::MAX)
}

pub(super) fn new_sid() -> String {
    format!("sip-{}", uuid::Uuid::now_v7().simple())
}

/// The `Session-Expires` of a request, in seconds.
fn session_expires(req: &rsipstack::sip::Request) -> Option<u32> {
    // `x` is its compact form (RFC 4028).
    req.header_value("Session-Expires").or_else(|| req.header_value("x"))?.split(';').next()?.trim().parse().ok()
}

/// `Require: 100rel`: provisional responses must be sent reliably; we send
/// none but 100 (which never is), which RFC 3262 allows.
fn requires_100rel(req: &rsipstack::sip::Request) -> bool {
    req.header_value("Require").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("100rel")))
}

async fn wait_end(events: &mut mpsc::UnboundedReceiver<CallEvent>) -> TerminatedReason {
    loop {
        match events.recv().await {
            Some(CallEvent::Ended(reason)) => return reason,
            None => return TerminatedReason::Timeout,
            Some(_) => {}
        }
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The script hung up, ran out or failed: we send BYE.
    ByUs,
    /// The caller hung up (or the dialog died).
    ByCaller,
}

/// A call being played: its media and its events.
pub(super) struct Call<'a> {
    pub engine: &'a Engine,
    pub media: &'a mut MediaSession,
    pub events: &'a mut mpsc::UnboundedReceiver<CallEvent>,
    pub slot: &'a CallSlot,
    pub facts: &'a CallFacts,
    pub answer_sdp: &'a str,
}

/// What happened while waiting on the media.
enum Heard<T> {
    Done(T),
    Gone(Ending),
}

/// What a call's event asks of the call being played.
enum Next {
    /// A key sent as SIP INFO.
    Key(char),
    Gone(Ending),
    /// Handled (an ACK, a new offer answered).
    Nothing,
}

/// Answers what can be answered at once (a new offer) and says what the
/// rest means for the call.
fn event(event: Option<CallEvent>, answer_sdp: &str) -> Next {
    match event {
        Some(CallEvent::Digit(d)) => Next::Key(d),
        Some(CallEvent::Offer { body, reply }) => {
            let answer = match body.is_empty() {
                true => None,
                false => {
                    Some(sdp::parse(&String::from_utf8_lossy(&body)).map(|_| answer_sdp.to_owned()).map_err(|_| ()))
                }
            };
            let _ = reply.send(answer);
            Next::Nothing
        }
        Some(CallEvent::Confirmed) => Next::Nothing,
        Some(CallEvent::Ended(_)) | None => Next::Gone(Ending::ByCaller),
    }
}

impl Call<'_> {
    /// Plays the script, asking the call flow again at each Gather's
    /// action and each Redirect, until a Hangup, the end of a script, or
    /// the caller leaves.
    pub async fn play(&mut self, mut steps: Vec<Step>) -> Ending {
        loop {
            let mut next: Option<(String, CallFacts)> = None;
            for step in steps {
                match step {
                    Step::Say { .. } | Step::Play { .. } | Step::Pause { .. } => {
                        if let Heard::Gone(how) = self.speak(&step, false).await {
                            return how;
                        }
                    }
                    Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result, prompts } => {
                        match self.gather(&prompts, num_digits, timeout, &finish_on_key).await {
                            Heard::Gone(how) => return how,
                            Heard::Done(Some((digits, key))) if !digits.is_empty() || action_on_empty_result => {
                                let facts = CallFacts { digits, finished_on_key: key, ..self.facts.clone() };
                                next = Some((action, facts));
                                break;
                            }
                            // Nothing typed: on to the step after the Gather.
                            Heard::Done(_) => {}
                        }
                    }
                    Step::Redirect { url } => {
                        next = Some((url, self.facts.clone()));
                        break;
                    }
                    Step::Hangup => return Ending::ByUs,
                }
            }
            let Some((url, facts)) = next else { return Ending::ByUs };
            let asked = self.engine.hooks.ask(&url, &facts);
            tokio::pin!(asked);
            let answer = loop {
                tokio::select! {
                    answer = &mut asked => break answer,
                    e = self.events.recv() => match event(e, self.answer_sdp) {
                        Next::Gone(how) => return how,
                        // A key while the call flow thinks: as a provider, not heard.
                        Next::Key(_) | Next::Nothing => {}
                    },
                    _ = self.slot.hang_up.cancelled() => return Ending::ByUs,
                }
            };
            steps = match answer {
                Ok(steps) => steps,
                Err(e) => {
                    tracing::error!(error = %e, "SIP call: the call flow did not answer; hanging up");
                    return Ending::ByUs;
                }
            };
        }
    }

    /// Plays one spoken step; `barge_in`: a key stops it (and stays to be read).
    async fn speak(&mut self, step: &Step, barge_in: bool) -> Heard<PlayOutcome> {
        let clips = match self.engine.audio.clips(step) {
            Ok(clips) => clips,
            Err(missing) => {
                self.engine.metrics.missing_audio.inc();
                tracing::error!(%missing, "prompt audio missing: played as silence");
                Vec::new()
            }
        };
        let played = self.media.play(clips, barge_in);
        tokio::pin!(played);
        loop {
            tokio::select! {
                outcome = &mut played => return Heard::Done(outcome),
                e = self.events.recv() => match event(e, self.answer_sdp) {
                    Next::Gone(how) => return Heard::Gone(how),
                    Next::Key(k) => {
                        self.media.inject_digit(k);
                    }
                    Next::Nothing => {}
                },
                _ = self.slot.hang_up.cancelled() => return Heard::Gone(Ending::ByUs),
            }
        }
    }

    /// A Gather: its prompts (a key stops them), then keys until the
    /// count, the finish key or `timeout` seconds without one.
    async fn gather(
        &mut self,
        prompts: &[Step],
        num_digits: Option<u32>,
        timeout: u32,
        finish: &str,
    ) -> Heard<Option<(String, String)>> {
        // Keys pressed before the Gather belong to no code.
        while self.media.next_digit(Duration::ZERO).await.is_some() {}
        for prompt in prompts {
            match self.speak(prompt, true).await {
                Heard::Gone(how) => return Heard::Gone(how),
                Heard::Done(PlayOutcome::Interrupted) => break,
                Heard::Done(_) => {}
            }
        }
        let mut typed = String::new();
        let wait = Duration::from_secs(timeout.into());
        loop {
            let key = tokio::select! {
                key = self.media.next_digit(wait) => key,
                e = self.events.recv() => match event(e, self.answer_sdp) {
                    Next::Gone(how) => return Heard::Gone(how),
                    Next::Key(k) => Some(k),
                    Next::Nothing => continue,
                },
                _ = self.slot.hang_up.cancelled() => return Heard::Gone(Ending::ByUs),
            };
            match key {
                Some(k) if finish.contains(k) => return Heard::Done(Some((typed, k.to_string()))),
                Some(k) => {
                    typed.push(k);
                    if num_digits.is_some_and(|n| n > 0 && typed.chars().count() >= n as usize) {
                        return Heard::Done(Some((typed, String::new())));
                    }
                }
                None if typed.is_empty() => return Heard::Done(None),
                None => return Heard::Done(Some((typed, String::new()))),
            }
        }
    }
}

/// Ends a call's media: the port is free when this returns, and the keys it
/// heard are counted by how they came.
pub(super) async fn close(engine: &Engine, media: MediaSession) {
    let heard = media.counters();
    for (source, n) in [("rfc4733", heard.digits_rfc4733), ("inband", heard.digits_inband)] {
        engine.metrics.digits.get_or_create(&crate::metrics::SourceLabel { source }).inc_by(n);
    }
    media.close().await;
}

/// The far end's audio, as the call reads it.
pub(super) fn first_law(remote: &Remote) -> sdp::Law {
    remote.laws.first().copied().unwrap_or(sdp::Law::Pcmu)
}
