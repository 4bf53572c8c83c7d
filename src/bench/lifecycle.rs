//! One full verification lifecycle, driven over real HTTP exactly as a site
//! and the provider would: register → answer → gather → status → poll.
//! Every answer is checked; a fast wrong answer is an error, not a data point.
//! With several servers, each step goes to another server than the one
//! before, as behind a load balancer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::header::{AUTHORIZATION, HeaderName};
use hyper::{Method, StatusCode};

use super::client::{Conns, Exchange};
use super::double::Waiting;
use super::report::{Recorder, Step};
use ivr_auth::telephony::twilio::signature;

/// The code every bench request uses (the server stores only its hash).
const CODE: &str = "246810";
const WRONG: &str = "135799";

/// What every lifecycle needs.
pub struct Driver {
    /// For what is not a lifecycle's step (the kill-after lookups, counters).
    pub http: reqwest::Client,
    /// The lifecycles' own exchanges.
    pub conns: Conns,
    /// Every server's own address.
    pub bases: Vec<String>,
    /// The public URL all servers are configured with: webhook URLs start with
    /// it and are signed with it, and are sent to one server's address.
    pub public: String,
    pub next_server: AtomicUsize,
    pub api_key: String,
    pub auth_token: Vec<u8>,
    pub waiting: Arc<Waiting>,
    pub inbound_number: String,
    pub caller_id: String,
    pub counter: AtomicU64,
    /// Every acknowledged (201) request id, when a durability check follows.
    pub acked: Option<std::sync::Mutex<Vec<String>>>,
    /// Average pause between steps (think time of callers and the provider).
    pub think: Duration,
    /// Caps HTTP requests in flight (and so connections), however many lifecycles are.
    pub http_slots: tokio::sync::Semaphore,
}

impl Driver {
    /// The same servers, tenant and double, without think time: for the
    /// write probes after the load, which measure writes, not callers.
    pub fn without_think(&self) -> Self {
        Self {
            http: self.http.clone(),
            conns: Conns::default(),
            bases: self.bases.clone(),
            public: self.public.clone(),
            next_server: AtomicUsize::new(0),
            api_key: self.api_key.clone(),
            auth_token: self.auth_token.clone(),
            waiting: self.waiting.clone(),
            inbound_number: self.inbound_number.clone(),
            caller_id: self.caller_id.clone(),
            counter: AtomicU64::new(self.counter.load(Ordering::Relaxed) + 1_000_000),
            acked: None,
            think: Duration::ZERO,
            http_slots: tokio::sync::Semaphore::new(self.http_slots.available_permits().max(1)),
        }
    }

    /// How long one lifecycle may take before it is counted as an error: every
    /// step bounded by its own timeout, plus the pauses between them.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(60) + self.think * 20
    }
}

/// Which step failed, and how.
pub type Failure = (Step, String);

/// The server of each step of one lifecycle: the next one in turn each time.
/// A call as its webhooks name it.
struct Call {
    sid: String,
    gather_url: String,
    status_url: String,
    /// The numbers the provider reports as `From` and `To`.
    from: String,
    to: String,
}

struct Route<'a> {
    bases: &'a [String],
    at: usize,
}

impl Route<'_> {
    fn next(&mut self) -> &str {
        self.at = (self.at + 1) % self.bases.len();
        &self.bases[self.at]
    }
}

/// The `action` of the first `<Gather>` in a TwiML answer, unescaped.
fn gather_action(doc: &str) -> Option<String> {
    let gather = &doc[doc.find("<Gather")?..];
    let action = &gather[gather.find("action=\"")? + "action=\"".len()..];
    Some(action[..action.find('"')?].replace("&amp;", "&"))
}

fn fail(step: Step, what: impl Into<String>) -> Failure {
    (step, what.into())
}

impl Driver {
    /// A fresh Japanese mobile number per lifecycle, so inbound matching is unambiguous.
    fn next_phone(&self) -> String {
        // 090-1000-0000 … 090-8999-9999: numbers libphonenumber knows as allocated.
        let n = 10_000_000 + self.counter.fetch_add(1, Ordering::Relaxed) % 80_000_000;
        format!("+8190{n:08}")
    }

    /// Waits the think time (0.5–1.5 × the average), like a caller between steps.
    async fn think(&self) {
        if !self.think.is_zero() {
            let factor = rand::RngExt::random_range(&mut rand::rng(), 0.5..1.5);
            tokio::time::sleep(self.think.mul_f64(factor)).await;
        }
    }

    /// Posts a webhook for the public `url` to `base`, signed as the provider signs it.
    async fn webhook(&self, step: Step, base: &str, url: &str, params: &[(&str, &str)]) -> Result<String, Failure> {
        let sig = signature::sign(&self.auth_token, url, params);
        let path =
            url.strip_prefix(self.public.as_str()).ok_or_else(|| fail(step, "a URL not under the public one"))?;
        let form = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let _slot = self.http_slots.acquire().await.map_err(|_| fail(step, "closed"))?;
        let (status, body) = self
            .conns
            .send(Exchange {
                method: Method::POST,
                base,
                path,
                headers: &[(HeaderName::from_static("x-twilio-signature"), sig.as_str())],
                content_type: Some("application/x-www-form-urlencoded"),
                body: form.into(),
            })
            .await
            .map_err(|e| fail(step, e))?;
        if status != 200 {
            return Err(fail(step, format!("HTTP {status}")));
        }
        let body = String::from_utf8(body.into()).map_err(|_| fail(step, "not UTF-8"))?;
        if !body.starts_with("<?xml") || !body.contains("<Response>") {
            return Err(fail(step, "not TwiML"));
        }
        Ok(body)
    }

    /// A site's call to the API with its key: the status and the JSON answer.
    async fn api(
        &self,
        step: Step,
        method: Method,
        base: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Answer), Failure> {
        let bearer = format!("Bearer {}", self.api_key);
        let _slot = self.http_slots.acquire().await.map_err(|_| fail(step, "closed"))?;
        let (status, answer) = self
            .conns
            .send(Exchange {
                method,
                base,
                path,
                headers: &[(AUTHORIZATION, bearer.as_str())],
                content_type: body.as_ref().map(|_| "application/json"),
                body: body.unwrap_or_default().into(),
            })
            .await
            .map_err(|e| fail(step, e))?;
        let answer = match status.is_success() {
            true => serde_json::from_slice(&answer).map_err(|e| fail(step, format!("json: {e}")))?,
            false => Answer::default(),
        };
        Ok((status, answer))
    }

    async fn register(&self, base: &str, phone: &str, inbound: bool) -> Result<String, Failure> {
        let body = serde_json::json!({
            "phone_number": phone,
            "code": CODE,
            "mode": if inbound { "inbound" } else { "outbound" },
        });
        let body = serde_json::to_vec(&body).map_err(|e| fail(Step::Register, e.to_string()))?;
        let (status, v) = self.api(Step::Register, Method::POST, base, "/v1/auth-requests", Some(body)).await?;
        if status != 201 {
            return Err(fail(Step::Register, format!("HTTP {status}")));
        }
        match (v.id, v.status.as_deref()) {
            (Some(id), Some("pending")) => {
                if let Some(acked) = &self.acked {
                    acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id.clone());
                }
                Ok(id)
            }
            _ => Err(fail(Step::Register, "201 without id or not pending")),
        }
    }

    /// Runs one lifecycle, recording each step's latency.
    pub async fn run(&self, inbound: bool, wrong_first: bool, rec: &mut Recorder) -> Result<(), Failure> {
        let phone = self.next_phone();
        let mut route = Route { bases: &self.bases, at: self.next_server.fetch_add(1, Ordering::Relaxed) };
        let t = Instant::now();
        let id = self.register(route.next(), &phone, inbound).await?;
        rec.record(Step::Register, t.elapsed());
        let call = match inbound {
            true => self.call_in(&id, &phone, &mut route, rec).await?,
            false => self.call_out(&id, &phone, &mut route, rec).await?,
        };
        let (sid, from, to) = (call.sid.as_str(), call.from.as_str(), call.to.as_str());
        if wrong_first {
            let params =
                [("CallSid", sid), ("From", from), ("To", to), ("CallStatus", "in-progress"), ("Digits", WRONG)];
            self.think().await;
            let t = Instant::now();
            let doc = self.webhook(Step::Gather, route.next(), &call.gather_url, &params).await?;
            rec.record(Step::Gather, t.elapsed());
            if !doc.contains("<Gather") {
                return Err(fail(Step::Gather, "a wrong code did not ask again"));
            }
        }
        let params = [("CallSid", sid), ("From", from), ("To", to), ("CallStatus", "in-progress"), ("Digits", CODE)];
        self.think().await;
        let t = Instant::now();
        let doc = self.webhook(Step::Gather, route.next(), &call.gather_url, &params).await?;
        rec.record(Step::Gather, t.elapsed());
        if doc.contains("<Gather") || !doc.ends_with("<Hangup/></Response>") {
            return Err(fail(Step::Gather, "the right code was not accepted"));
        }
        let params = [
            ("CallSid", sid),
            ("From", from),
            ("To", to),
            ("CallStatus", "completed"),
            ("SequenceNumber", "3"),
            ("CallDuration", "12"),
        ];
        self.think().await;
        let t = Instant::now();
        self.webhook(Step::Status, route.next(), &call.status_url, &params).await?;
        rec.record(Step::Status, t.elapsed());
        self.poll(&id, &mut route, rec).await
    }

    /// The user calls the inbound number; the answer must name request `id`.
    async fn call_in(&self, id: &str, phone: &str, route: &mut Route<'_>, rec: &mut Recorder) -> Result<Call, Failure> {
        let sid = format!("CAin{}", id.replace('-', ""));
        let url = format!("{}/webhooks/twilio/voice/inbound", self.public);
        let params = [
            ("CallSid", sid.as_str()),
            ("From", phone),
            ("To", self.inbound_number.as_str()),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ];
        self.think().await;
        let t = Instant::now();
        let doc = self.webhook(Step::Answer, route.next(), &url, &params).await?;
        rec.record(Step::Answer, t.elapsed());
        // The action names the request the call was matched to (and the call's language).
        let gather_url = format!("{}/webhooks/twilio/voice/gather/{id}", self.public);
        let Some(gather_url) = gather_action(&doc).filter(|action| action.starts_with(&gather_url)) else {
            return Err(fail(Step::Answer, "inbound call not matched to its request"));
        };
        let status_url = format!("{}/webhooks/twilio/voice/status", self.public);
        Ok(Call { sid, gather_url, status_url, from: phone.to_owned(), to: self.inbound_number.clone() })
    }

    /// The server calls the user: the double must see the call, and the answer must gather for it.
    async fn call_out(
        &self,
        id: &str,
        phone: &str,
        route: &mut Route<'_>,
        rec: &mut Recorder,
    ) -> Result<Call, Failure> {
        let t = Instant::now();
        let call = tokio::time::timeout(Duration::from_secs(10), self.waiting.expect(id))
            .await
            .map_err(|_| fail(Step::PlaceCall, "no call placed within 10 s"))?
            .map_err(|_| fail(Step::PlaceCall, "double closed"))?;
        rec.record(Step::PlaceCall, t.elapsed());
        if call.to != phone {
            return Err(fail(Step::PlaceCall, "call to the wrong number"));
        }
        let params = [
            ("CallSid", call.sid.as_str()),
            ("From", self.caller_id.as_str()),
            ("To", phone),
            ("CallStatus", "in-progress"),
            ("Direction", "outbound-api"),
        ];
        self.think().await;
        let t = Instant::now();
        let doc = self.webhook(Step::Answer, route.next(), &call.answer_url, &params).await?;
        rec.record(Step::Answer, t.elapsed());
        let gather_url = call.answer_url.replace("/answer/", "/gather/");
        if !doc.contains("<Gather") || !doc.contains(&format!("action=\"{gather_url}\"")) {
            return Err(fail(Step::Answer, "answer without the expected Gather"));
        }
        let from = self.caller_id.clone();
        Ok(Call { sid: call.sid, gather_url, status_url: call.status_callback, from, to: phone.to_owned() })
    }

    /// The site polls the result: it must be verified.
    async fn poll(&self, id: &str, route: &mut Route<'_>, rec: &mut Recorder) -> Result<(), Failure> {
        self.think().await;
        let t = Instant::now();
        let path = format!("/v1/auth-requests/{id}");
        let (status, v) = self.api(Step::Poll, Method::GET, route.next(), &path, None).await?;
        if status != 200 {
            return Err(fail(Step::Poll, format!("HTTP {status}")));
        }
        rec.record(Step::Poll, t.elapsed());
        if v.status.as_deref() != Some("verified") {
            return Err(fail(Step::Poll, format!("status {:?} instead of verified", v.status)));
        }
        Ok(())
    }
}

/// The fields of a request's JSON the generator checks.
#[derive(Debug, Default, serde::Deserialize)]
struct Answer {
    id: Option<String>,
    status: Option<String>,
}
