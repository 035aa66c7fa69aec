//! Request bodies: read with a size cap, then parse as JSON whatever the content type.
//!
//! A declared `Content-Length` over the cap is refused before reading; a body without
//! one (chunked) is streamed and refused as soon as it passes the cap, so an oversize
//! body never sits whole in the isolate's memory.
//! The content type is not checked: `navigator.sendBeacon` sends `text/plain`, and the
//! snippet posts `text/plain` on purpose so browsers skip the CORS preflight.

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use worker::Request;

use crate::error::ApiError;

/// Public routes (`/v1/assign`, `/v1/events`): 64 KiB.
pub const PUBLIC_BODY_LIMIT: usize = 64 * 1024;
/// Snapshot pushes from the control plane: a site with many experiments is larger.
pub const SNAPSHOT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Reads the whole body, failing with 413 as soon as it exceeds `limit` bytes.
/// A request without a body reads as empty.
pub async fn read_capped(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => return Err(ApiError::payload_too_large(limit)),
        // The common case (fetch, sendBeacon): a declared, small length. HTTP framing
        // bounds the body by it, so one `arrayBuffer()` is safe and much cheaper than
        // pulling the stream chunk by chunk; the length is checked again after reading.
        Some(_) => {
            let body = req.bytes().await.map_err(|e| {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("the body could not be read: {e}"),
                )
            })?;
            if body.len() > limit {
                return Err(ApiError::payload_too_large(limit));
            }
            return Ok(body);
        }
        None => {}
    }
    // No declared length (chunked): stream, stopping at the limit.
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "unreadable_body",
                format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON body into `T`, with serde's message (which names the field) on failure.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "a JSON body is required",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Probe {
        site_key: String,
    }

    #[test]
    fn empty_and_malformed_bodies_get_distinct_codes() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty_body"),
            (b"  \n", "empty_body"),
            (b"{", "malformed_json"),
            (b"{\"site_key\": 3}", "malformed_json"),
            (b"[]", "malformed_json"),
        ];
        for (body, code) in cases {
            let err = parse_json::<Probe>(body).unwrap_err();
            assert_eq!(err.code, *code, "body {:?}", String::from_utf8_lossy(body));
            assert_eq!(err.status, 400);
        }
        assert!(parse_json::<Probe>(br#"{"site_key":"k"}"#).is_ok());
    }
}
