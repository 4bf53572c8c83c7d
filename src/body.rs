//! Reading request bodies with a hard size limit, before any parsing.

use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

use crate::error::AppError;

/// Every body the server accepts is at most this large.
pub const MAX_BODY: usize = 64 * 1024;

/// Reads the whole body, answering 413 as soon as it passes `MAX_BODY`.
pub async fn read_limited(mut payload: Payload) -> Result<Bytes, AppError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::MalformedJson(format!("could not read the body: {e}")))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(AppError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
