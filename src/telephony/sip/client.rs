//! Our own trunk as the jobs see a provider: place a call (an INVITE to
//! `IVR_AUTH_SIP_TRUNK`), end one (BYE, or CANCEL while it rings). A trunk
//! carries no text messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::call::{new_sid, take_seat};
use super::engine::Engine;
use super::media::session::MediaSession;
use crate::telephony::{CallError, OutboundCall, OutboundSms, ProviderText, Telephony};

/// The `Telephony` of a node's SIP engine.
pub struct SipTelephony {
    engine: Arc<Engine>,
}

impl SipTelephony {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[async_trait]
impl Telephony for SipTelephony {
    /// Takes a seat and a media port, then sends the INVITE in the
    /// background: the answer, the ring timeout and the end reach the call
    /// flow through the `sip` webhooks, as a provider's callbacks would.
    async fn place_call(&self, call: &OutboundCall) -> Result<String, CallError> {
        if self.engine.config.trunk.is_none() {
            return Err(CallError::Refused(ProviderText::new("IVR_AUTH_SIP_TRUNK is not set: no outbound calls")));
        }
        let busy = |what: &str| CallError::Unavailable {
            message: ProviderText::new(what),
            retry_after: Some(Duration::from_secs(1)),
        };
        let seat = take_seat(&self.engine).ok_or_else(|| busy("this node holds its most SIP calls"))?;
        let media = MediaSession::open(&self.engine.media).await.map_err(|e| busy(&format!("no media port: {e}")))?;
        let sid = new_sid();
        let engine = self.engine.clone();
        let (call, id) = (call.clone(), sid.clone());
        tokio::spawn(async move {
            let _seat = seat;
            super::outbound::place(engine, call, id, media).await;
        });
        Ok(sid)
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        if let Some(slot) = self.engine.by_sid(call_sid) {
            slot.hang_up.cancel();
        }
        Ok(())
    }

    async fn send_sms(&self, _sms: &OutboundSms) -> Result<String, CallError> {
        Err(CallError::Refused(ProviderText::new("a SIP trunk carries no text messages")))
    }

    fn webhooks(&self) -> &'static str {
        "sip"
    }
}
