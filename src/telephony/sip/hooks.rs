//! The engine's side of the `sip` webhooks: it asks the call flow what to do
//! next, as a cloud provider would, and reads back the call script.
//!
//! The URLs the call flow writes are public (`IVR_AUTH_PUBLIC_URL`); the
//! engine sends them to its own node's listener instead, signed over the
//! public form the verifier rebuilds from the path.

use std::time::Duration;

use super::dialect::{Answer, CallFacts, SIGNATURE_HEADER, Signer, TIME_HEADER};
use crate::call::script::Step;

/// Why the call flow could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("webhook URL {0:?} is not under the public URL")]
    Foreign(String),
    #[error("webhook failed: {0}")]
    Http(String),
}

/// Posts a call's facts to the call flow of this node.
#[derive(Clone)]
pub struct Hooks {
    http: reqwest::Client,
    public_base: String,
    local_base: String,
    signer: Signer,
}

impl Hooks {
    /// `public_base`: the base of the URLs the call flow writes; `local_base`:
    /// this node's own listener (`http://127.0.0.1:8080`).
    pub fn new(http: reqwest::Client, public_base: &str, local_base: &str, signer: Signer) -> Self {
        Self {
            http,
            public_base: public_base.trim_end_matches('/').to_owned(),
            local_base: local_base.trim_end_matches('/').to_owned(),
            signer,
        }
    }

    /// The public URL of a path under the `sip` folder (`/voice/inbound`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/webhooks/sip{path}", self.public_base)
    }

    /// Asks `url` what the call does next. A connection refused is tried
    /// again for a moment (a node starting up); any other failure is the
    /// caller's to handle (the call says goodbye).
    pub async fn ask(&self, url: &str, facts: &CallFacts) -> Result<Vec<Step>, HookError> {
        let rest = url.strip_prefix(&self.public_base).ok_or_else(|| HookError::Foreign(url.to_owned()))?;
        let local = format!("{}{rest}", self.local_base);
        let body = serde_json::to_vec(facts).map_err(|e| HookError::Http(e.to_string()))?;
        let mut tries = 0;
        loop {
            let time = chrono::Utc::now().timestamp();
            let sent = self
                .http
                .post(&local)
                .header(SIGNATURE_HEADER, self.signer.sign(time, url, &body))
                .header(TIME_HEADER, time.to_string())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    let answer: Answer = resp.json().await.map_err(|e| HookError::Http(e.to_string()))?;
                    return Ok(answer.steps);
                }
                Ok(resp) => return Err(HookError::Http(format!("HTTP {}", resp.status().as_u16()))),
                Err(e) if e.is_connect() && tries < 5 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(HookError::Http(if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "request failed".into()
                    }));
                }
            }
        }
    }

    /// Tells the call flow how a call ended; nothing is played back.
    pub async fn tell(&self, url: &str, facts: &CallFacts) {
        if let Err(e) = self.ask(url, facts).await {
            tracing::warn!(error = %e, "SIP call status not delivered");
        }
    }
}
