//! Calls we place on the trunk: the INVITE, its answer or its failure in
//! the call flow's words (486 busy, 603 declined, 408/480 or the ring
//! timeout no answer), then the same call script as an inbound call.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::Header;
use rsipstack::transport::SipAddr;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::call::{Call, Ending};
use super::dialect::CallFacts;
use super::engine::{CallSlot, Engine};
use super::media::session::MediaSession;
use super::sdp::{self, Local};
use crate::telephony::OutboundCall;
use crate::telephony::sip::settings::Transport;

/// How an INVITE we sent ended before any script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unanswered {
    /// The call flow's word: busy, no-answer, failed, canceled.
    pub status: &'static str,
    pub sip_code: Option<u16>,
}

/// The call flow's words for a final failure response.
pub(super) fn unanswered(code: u16) -> Unanswered {
    let status = match code {
        486 | 600 | 603 => "busy",
        408 | 480 | 487 => "no-answer",
        _ => "failed",
    };
    Unanswered { status, sip_code: Some(code) }
}

/// Places `call` with our id `sid`; runs until the call ends.
pub(super) async fn place(engine: Arc<Engine>, call: OutboundCall, sid: String, media: MediaSession) {
    let Some(trunk) = engine.config.trunk.clone() else { return };
    engine.metrics.calls.get_or_create(&crate::metrics::DirectionLabel { direction: "outbound" }).inc();
    let from = call.from.as_ref().map_or("anonymous".to_owned(), |n| n.as_str().to_owned());
    let to = call.to.as_str().to_owned();
    let facts = CallFacts { call_id: sid.clone(), from: from.clone(), to: to.clone(), ..CallFacts::default() };
    let local =
        Local { ip: engine.config.public_address, port: media.local_port(), session_id: rand::random::<u32>().into() };
    let offer = sdp::offer(&local);
    let uri = |user: &str, host: &str| rsipstack::sip::Uri::try_from(format!("sip:{user}@{host}").as_str());
    let public = std::net::SocketAddr::new(engine.config.public_address, engine.config.listen.port()).to_string();
    let trunk_host = format!("{}:{}", trunk.host, trunk.addr.port());
    let (Ok(caller), Ok(callee)) = (uri(&from, &public), uri(&to, &trunk_host)) else {
        tracing::error!("outbound SIP call: numbers do not make SIP URIs");
        return;
    };
    let credential = match (&engine.config.username, &engine.config.password) {
        (Some(username), Some(password)) => Some(Credential {
            username: username.clone(),
            password: password.expose_secret().to_owned(),
            realm: None,
            ..Default::default()
        }),
        _ => None,
    };
    let transport = match trunk.transport {
        Transport::Udp => rsipstack::sip::transport::Transport::Udp,
        Transport::Tcp => rsipstack::sip::transport::Transport::Tcp,
    };
    let mut headers = vec![Header::Other("P-Asserted-Identity".into(), format!("<{caller}>"))];
    headers.push(Header::Other("Supported".into(), "timer, 100rel".into()));
    let option = InviteOption {
        caller,
        callee,
        destination: Some(SipAddr { r#type: Some(transport), addr: trunk.addr.into() }),
        content_type: Some("application/sdp".into()),
        offer: Some(offer.into_bytes()),
        contact: engine.contact.clone(),
        credential,
        headers: Some(headers),
        support_prack: true,
        call_id: Some(sid.clone()),
        ..Default::default()
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let slot = Arc::new(CallSlot { events: events_tx, sid: sid.clone(), hang_up: CancellationToken::new() });
    engine.register(&sid, slot.clone());
    let outcome = invite(&engine, option, &slot, Duration::from_secs(call.timeout.into())).await;
    let (dialog, response) = match outcome {
        Ok(answered) => answered,
        Err(failed) => {
            engine.unregister(&sid);
            super::call::close(&engine, media).await;
            let status = CallFacts { call_status: Some(failed.status.into()), sip_code: failed.sip_code, ..facts };
            engine.hooks.tell(&call.status_callback, &status).await;
            return;
        }
    };
    let remote = match sdp::parse(&String::from_utf8_lossy(&response.body)) {
        Ok(remote) => remote,
        Err(e) => {
            tracing::warn!(error = %e, "outbound SIP call answered without usable SDP: hanging up");
            let _ = dialog.bye().await;
            engine.unregister(&sid);
            super::call::close(&engine, media).await;
            let status = CallFacts { call_status: Some("failed".into()), sip_code: Some(488), ..facts };
            engine.hooks.tell(&call.status_callback, &status).await;
            return;
        }
    };
    let up = std::time::Instant::now();
    let mut media = media;
    media.start(remote.addr, super::call::first_law(&remote).into(), remote.event_pt);
    let answered = CallFacts { call_status: Some("in-progress".into()), ..facts.clone() };
    let answer_sdp = sdp::answer(&local, &remote);
    let how = {
        let first = tokio::select! {
            steps = engine.hooks.ask(&call.answer_url, &answered) => steps.ok(),
            _ = slot.hang_up.cancelled() => None,
        };
        match first {
            Some(steps) => {
                let mut run = Call {
                    engine: &engine,
                    media: &mut media,
                    events: &mut events,
                    slot: &slot,
                    facts: &facts,
                    answer_sdp: &answer_sdp,
                };
                run.play(steps).await
            }
            None => Ending::ByUs,
        }
    };
    if how == Ending::ByUs {
        let _ = dialog.bye().await;
    }
    super::call::close(&engine, media).await;
    engine.unregister(&sid);
    let seconds = Some(super::call::seconds_since(up));
    let status = CallFacts { call_status: Some("completed".into()), seconds, ..facts };
    engine.hooks.tell(&call.status_callback, &status).await;
}

/// Sends the INVITE and waits for its final answer, the ring timeout or our
/// own hang-up; CANCELs the INVITE in the last two cases.
async fn invite(
    engine: &Engine,
    option: InviteOption,
    slot: &CallSlot,
    ring: Duration,
) -> Result<(rsipstack::dialog::invite_dialog::InviteDialog, rsipstack::sip::Response), Unanswered> {
    let (dialog, handle) = engine.dialogs.do_invite_async(option, engine.states.clone()).map_err(|e| {
        tracing::warn!(error = %e, "outbound SIP INVITE not sent");
        Unanswered { status: "failed", sip_code: None }
    })?;
    let done = tokio::select! {
        done = handle => done,
        _ = tokio::time::sleep(ring) => {
            let _ = dialog.cancel().await;
            return Err(Unanswered { status: "no-answer", sip_code: None });
        }
        _ = slot.hang_up.cancelled() => {
            let _ = dialog.cancel().await;
            return Err(Unanswered { status: "canceled", sip_code: None });
        }
    };
    match done {
        Ok(Ok((_, Some(resp)))) if resp.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
            Ok((dialog, resp))
        }
        Ok(Ok((_, Some(resp)))) => Err(unanswered(u16::from(resp.status_code.clone()))),
        Ok(Ok((_, None))) => Err(Unanswered { status: "no-answer", sip_code: Some(408) }),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "outbound SIP INVITE failed");
            Err(Unanswered { status: "failed", sip_code: None })
        }
        Err(_) => Err(Unanswered { status: "failed", sip_code: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_answers_are_the_call_flow_s_words() {
        assert_eq!(unanswered(486).status, "busy");
        assert_eq!(unanswered(603), Unanswered { status: "busy", sip_code: Some(603) });
        assert_eq!(unanswered(408).status, "no-answer");
        assert_eq!(unanswered(480).status, "no-answer");
        assert_eq!(unanswered(404).status, "failed");
        assert_eq!(unanswered(503).status, "failed");
    }
}
