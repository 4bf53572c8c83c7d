//! Status callbacks: of a call (by request id or by call sid) and of a text message.

use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use crate::domain::request::Event;
use crate::state::AppState;

use super::{Report, Signed, reply, request_id};

fn status_event(p: &Report) -> Option<Event> {
    let status = p.call_status?;
    let sip_code = p.sip_response_code.as_str().parse().ok();
    Some(Event::CallStatusReported { status, sip_code, seconds: p.call_seconds })
}

/// Status callback of an outbound call (the request id is in the URL).
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    apply_status(&state, &req, request_id(&path), &p).await
}

/// Status callback configured on the inbound number: found by call sid.
pub async fn status_by_sid(state: web::Data<AppState>, req: HttpRequest, Signed(p): Signed) -> HttpResponse {
    let sid = p.call_sid.as_str();
    let id = if sid.is_empty() {
        None
    } else {
        match state.service.inbound_request_by_call_sid(sid).await {
            Ok(r) => r.map(|r| r.id),
            Err(e) => {
                tracing::error!(error = %e, "status callback failed");
                return HttpResponse::ServiceUnavailable().finish();
            }
        }
    };
    apply_status(&state, &req, id, &p).await
}

async fn apply_status(state: &AppState, req: &HttpRequest, id: Option<Uuid>, p: &Report) -> HttpResponse {
    if let (Some(id), Some(event)) = (id, status_event(p)) {
        let sid = p.call_sid.clone();
        let result = state.service.transition(id, move |r| r.may_be_call(&sid).then(|| event.clone())).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "status callback failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    reply(req, &[])
}

/// A delivery report of a request's text message (`MessageStatus`).
pub async fn sms_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let event = match p.message_status.as_str() {
        "accepted" | "queued" | "sending" | "sent" => Event::SmsSent { sid: p.message_sid.clone() },
        "delivered" => Event::SmsDelivered { sid: p.message_sid.clone() },
        "undelivered" | "failed" => Event::SmsFailed,
        _ => return reply(&req, &[]),
    };
    if let Some(id) = request_id(&path) {
        let sid = p.message_sid.clone();
        let result = state
            .service
            .transition(id, move |r| {
                // A report of another message than the one this request sent changes nothing.
                r.delivery.is_current_message(&sid).then(|| event.clone())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "message status callback failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    reply(&req, &[])
}
