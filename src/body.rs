//! Reading request bodies with a hard size limit and a deadline, before any parsing.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::error::AppError;

/// Every body the server accepts is at most this large.
pub const MAX_BODY: usize = 64 * 1024;

/// A body must have arrived this long after its head: a client that sends
/// it a byte at a time holds a connection no longer.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Reads the whole body: 413 at once when the declared `Content-Length` is
/// over `MAX_BODY` (nothing is read), or as soon as what arrives passes it;
/// 408 when it has not all arrived within `BODY_DEADLINE`.
pub async fn read_limited<S>(req: &HttpRequest, mut payload: S) -> Result<Bytes, AppError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(AppError::PayloadTooLarge);
    }
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| AppError::MalformedJson(format!("could not read the body: {e}")))?;
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(AppError::PayloadTooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(BODY_DEADLINE, read).await.map_err(|_| AppError::RequestTimeout)?
}
