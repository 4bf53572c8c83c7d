//! The SIP endpoint: one `rsipstack` endpoint per node on UDP and TCP, the
//! requests that are not part of a call (OPTIONS keep-alives, scanners), and
//! the routing of each dialog's events to its call.
//!
//! Chosen over `ezk-sip-ua` and `rvoip-sip` (see docs/sip.md): rsipstack has
//! the transaction and dialog layers with digest authentication, PRACK and
//! CANCEL handled, is released often and used in production (rustpbx), and
//! leaves media to us — which is where our own work is (prompt playback and
//! the three ways keys arrive).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::endpoint::Endpoint;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::audio::AudioLibrary;
use super::call::{self, CallEvent};
use super::hooks::Hooks;
use super::media::pool::MediaPool;
use crate::metrics::{MethodLabel, QuantileLabel, SipMetrics, SourceLabel};
use crate::telephony::sip::settings::SipConfig;

/// One live call, as the engine routes to it.
pub(super) struct CallSlot {
    pub events: mpsc::UnboundedSender<CallEvent>,
    /// Our id of the call (the call flow's `call_sid`).
    pub sid: String,
    /// Cancelled when the call is to end from our side (`end_call`).
    pub hang_up: CancellationToken,
}

/// The engine one node runs.
pub struct Engine {
    pub(super) config: SipConfig,
    pub(super) dialogs: Arc<DialogLayer>,
    pub(super) states: DialogStateSender,
    pub(super) hooks: Hooks,
    pub(super) media: MediaPool,
    pub(super) audio: Arc<AudioLibrary>,
    pub(super) metrics: SipMetrics,
    /// Calls this node holds at most.
    pub(super) max_calls: usize,
    pub(super) active: AtomicUsize,
    /// Live calls by SIP Call-ID.
    calls: Mutex<HashMap<String, Arc<CallSlot>>>,
    /// Call-IDs by our call sid.
    sids: Mutex<HashMap<String, String>>,
    pub(super) contact: rsipstack::sip::Uri,
    stop: CancellationToken,
    _endpoint: Arc<Endpoint>,
}

/// Calls a node holds at once unless told otherwise.
pub const DEFAULT_MAX_CALLS: usize = 400;

impl Engine {
    /// Binds the SIP listener (UDP and TCP on the same address) and starts serving.
    pub async fn start(
        config: SipConfig,
        hooks: Hooks,
        audio: Arc<AudioLibrary>,
        max_calls: Option<usize>,
        metrics: SipMetrics,
    ) -> Result<Arc<Self>, String> {
        let stop = CancellationToken::new();
        let transports = TransportLayer::new(stop.child_token());
        let listen = config.listen;
        let udp = UdpConnection::create_connection(listen, None, Some(stop.child_token()))
            .await
            .map_err(|e| format!("IVR_AUTH_SIP_LISTEN {listen} (udp): {e}"))?;
        transports.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(listen, None)
            .await
            .map_err(|e| format!("IVR_AUTH_SIP_LISTEN {listen} (tcp): {e}"))?;
        transports.add_transport(tcp.into());
        let endpoint = Arc::new(
            rsipstack::EndpointBuilder::new()
                .with_cancel_token(stop.clone())
                .with_transport_layer(transports)
                .with_user_agent(concat!("ivr-auth/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let incoming = endpoint.incoming_transactions().map_err(|e| e.to_string())?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (states, state_rx) = dialogs.new_dialog_state_channel();
        let contact = rsipstack::sip::Uri::try_from(
            format!("sip:ivr-auth@{}", std::net::SocketAddr::new(config.public_address, listen.port())).as_str(),
        )
        .map_err(|e| e.to_string())?;
        let media = MediaPool::start(config.listen.ip(), config.rtp_ports);
        let engine = Arc::new(Self {
            config,
            dialogs,
            states,
            hooks,
            media,
            audio,
            metrics,
            max_calls: max_calls.unwrap_or(DEFAULT_MAX_CALLS),
            active: AtomicUsize::new(0),
            calls: Mutex::new(HashMap::new()),
            sids: Mutex::new(HashMap::new()),
            contact,
            stop: stop.clone(),
            _endpoint: endpoint.clone(),
        });
        tokio::spawn(async move { endpoint.serve().await });
        tokio::spawn(engine.clone().serve(incoming));
        tokio::spawn(engine.clone().follow(state_rx));
        tokio::spawn(engine.clone().report_media());
        tracing::info!(listen = %listen, "SIP listening on udp and tcp");
        Ok(engine)
    }

    /// Stops the listener; live calls end.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Calls up right now.
    pub fn active_calls(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn refused(&self, method: &str) {
        self.metrics.refused.get_or_create(&MethodLabel { method: method.to_owned() }).inc();
    }

    pub(super) fn is_allowed(&self, ip: IpAddr) -> bool {
        self.config.allowed_peers.iter().any(|net| net.contains(&ip))
    }

    pub(super) fn register(&self, call_id: &str, slot: Arc<CallSlot>) {
        self.sids.lock().insert(slot.sid.clone(), call_id.to_owned());
        self.calls.lock().insert(call_id.to_owned(), slot);
    }

    pub(super) fn unregister(&self, call_id: &str) {
        if let Some(slot) = self.calls.lock().remove(call_id) {
            self.sids.lock().remove(&slot.sid);
        }
    }

    /// The call with our id `sid`, if it is live on this node.
    pub(super) fn by_sid(&self, sid: &str) -> Option<Arc<CallSlot>> {
        let call_id = self.sids.lock().get(sid).cloned()?;
        self.calls.lock().get(&call_id).cloned()
    }

    fn route(&self, id: &DialogId, event: CallEvent) {
        if let Some(slot) = self.calls.lock().get(&id.call_id) {
            let _ = slot.events.send(event);
        }
    }

    /// Requests that start something: INVITEs become calls; in-dialog
    /// requests go to their dialog; the rest is answered at once.
    async fn serve(self: Arc<Self>, mut incoming: TransactionReceiver) {
        while let Some(mut tx) = incoming.recv().await {
            let in_dialog = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
            let source = source_ip(&tx.original);
            match (&tx.original.method, in_dialog) {
                (Method::Invite, false) => {
                    if !source.is_some_and(|ip| self.is_allowed(ip)) {
                        self.refused("INVITE");
                        tracing::warn!(source = ?source, "SIP INVITE from a peer not allowed: 403");
                        let _ = tx.reply(StatusCode::Forbidden).await;
                        continue;
                    }
                    tokio::spawn(call::inbound(self.clone(), tx));
                }
                (Method::Options, false) => {
                    if source.is_some_and(|ip| self.is_allowed(ip)) {
                        let allow = Header::Allow("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK".into());
                        let accept = Header::Accept("application/sdp".into());
                        let _ = tx.reply_with(StatusCode::OK, vec![allow, accept], None).await;
                    } else {
                        self.refused("OPTIONS");
                        let _ = tx.reply(StatusCode::Forbidden).await;
                    }
                }
                (Method::Ack, _) => {
                    if let Some(rsipstack::dialog::dialog::Dialog::Invite(mut d)) = self.dialogs.match_dialog(&tx) {
                        tokio::spawn(async move { d.handle(&mut tx).await });
                    }
                }
                (_, true) | (Method::Cancel, _) | (Method::Bye, _) => match self.dialogs.match_dialog(&tx) {
                    Some(rsipstack::dialog::dialog::Dialog::Invite(mut d)) => {
                        tokio::spawn(async move { d.handle(&mut tx).await });
                    }
                    _ => {
                        let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                    }
                },
                _ => {
                    // REGISTER, SUBSCRIBE, MESSAGE…: we are no registrar or
                    // presence server. Scanners send these by the thousand.
                    if !source.is_some_and(|ip| self.is_allowed(ip)) {
                        self.refused(tx.original.method.to_string().as_str());
                    }
                    let _ = tx.reply(StatusCode::MethodNotAllowed).await;
                }
            }
        }
    }

    /// Copies the media's figures into `/metrics` every few seconds; the
    /// send intervals cover the last minute.
    async fn report_media(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut n: u32 = 0;
        while !self.stop.is_cancelled() {
            tick.tick().await;
            let sent = self.media.send_intervals();
            for (quantile, d) in [("0.5", sent.p50), ("0.99", sent.p99), ("max", sent.max)] {
                self.metrics.rtp_send_interval.get_or_create(&QuantileLabel { quantile }).set(d.as_secs_f64());
            }
            let counts = self.media.counters();
            self.metrics.rtp_foreign_packets.set(i64::try_from(counts.dropped_unexpected_source).unwrap_or(i64::MAX));
            self.metrics.rtp_free_ports.set(i64::try_from(self.media.free_ports()).unwrap_or(i64::MAX));
            n += 1;
            if n.is_multiple_of(12) {
                self.media.reset_send_intervals();
            }
        }
    }

    /// Dialog events: ACKs, keys sent as INFO, offers mid-call, the end.
    async fn follow(self: Arc<Self>, mut states: DialogStateReceiver) {
        while let Some(state) = states.recv().await {
            match state {
                DialogState::Confirmed(id, _) => self.route(&id, CallEvent::Confirmed),
                DialogState::Info(id, req, handle) => {
                    let content_type = req.header_value("Content-Type").unwrap_or_default();
                    match super::media::info::info_digit(&content_type, &req.body) {
                        Some(digit) => {
                            self.metrics.digits.get_or_create(&SourceLabel { source: "info" }).inc();
                            self.route(&id, CallEvent::Digit(digit));
                            let _ = handle.reply(StatusCode::OK).await;
                        }
                        // INFO of another package (e.g. a media control): not ours.
                        None => {
                            let _ = handle.reply(StatusCode::UnsupportedMediaType).await;
                        }
                    }
                }
                DialogState::Updated(id, req, handle) => {
                    // A re-INVITE or UPDATE: a session refresh, or a new offer.
                    // The media stays as it is; an offer is answered with ours.
                    let (reply, tx) = tokio::sync::oneshot::channel();
                    self.route(&id, CallEvent::Offer { body: req.body.clone(), reply });
                    let sdp = tx.await.ok().flatten();
                    let _ = match sdp {
                        Some(Ok(sdp)) => {
                            let ct = Header::ContentType("application/sdp".into());
                            handle.respond(StatusCode::OK, Some(vec![ct]), Some(sdp.into_bytes())).await
                        }
                        Some(Err(())) => handle.reply(StatusCode::NotAcceptableHere).await,
                        None => handle.reply(StatusCode::OK).await,
                    };
                }
                DialogState::Options(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                DialogState::Notify(_, _, handle)
                | DialogState::Refer(_, _, handle)
                | DialogState::Message(_, _, handle)
                | DialogState::Publish(_, _, handle) => {
                    let _ = handle.reply(StatusCode::NotImplemented).await;
                }
                DialogState::Terminated(id, reason) => {
                    self.route(&id, CallEvent::Ended(reason));
                    self.dialogs.remove_dialog(&id);
                }
                _ => {}
            }
        }
    }
}

/// Where a request came from: the `received` the transport wrote on its top
/// Via (the packet's source), else the Via's own host.
fn source_ip(req: &rsipstack::sip::Request) -> Option<IpAddr> {
    let via = req.via_header().ok()?.typed().ok()?;
    if let Some(Ok(ip)) = via.received() {
        return Some(ip);
    }
    via.sent_by().host.to_string().trim_matches(['[', ']']).parse().ok()
}

/// How the call ended, as the call flow's words.
pub(super) fn ended_by(reason: &TerminatedReason) -> &'static str {
    match reason {
        TerminatedReason::UacCancel => "canceled",
        TerminatedReason::UacBye | TerminatedReason::UasBye => "completed",
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => "busy",
        TerminatedReason::Timeout => "no-answer",
        _ => "failed",
    }
}
