//! Ingest batches (`POST /api/v1/ingest`): the signature check over the raw body and
//! headers, the batch parse, and each item's checks — the code the handler runs before
//! the database. A body signed by `sign` verifies; an item that passes has a usable id;
//! the typed read of an item, when it answers, answers as the tree read does
//! (`control-plane/src/ingest/read.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplit_control_plane::ingest::items::{MAX_ID_LEN, WireBatch};
use samplit_control_plane::ingest;
use samplit_engine::ingest as signature;
use samplit_fuzz::mode;
use time::OffsetDateTime;

const SECRET: &[u8] = b"fuzz-ingest-secret-0123456789abcdef";
const NOW_S: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((m, rest)) = mode(data) else { return };
    let ts = NOW_S.to_string();
    let body: &[u8] = if m & 1 == 0 {
        // Headers from the input: `<timestamp>\n<signature>\n<body>`.
        let mut parts = rest.splitn(3, |&b| b == b'\n');
        let ts_h = parts.next().and_then(|p| std::str::from_utf8(p).ok());
        let sig_h = parts.next().and_then(|p| std::str::from_utf8(p).ok());
        let body = parts.next().unwrap_or_default();
        if signature::verify(SECRET, ts_h, sig_h, body, NOW_S).is_ok() {
            // Only a MAC under SECRET verifies; a fuzzer cannot forge one.
            assert_eq!(
                sig_h,
                Some(signature::sign(SECRET, ts_h.unwrap(), body).as_str())
            );
        }
        body
    } else {
        let sig = signature::sign(SECRET, &ts, rest);
        signature::verify(SECRET, Some(&ts), Some(&sig), rest, NOW_S)
            .expect("a body signed now verifies");
        rest
    };
    let Ok(batch) = serde_json::from_slice::<WireBatch>(body) else {
        return;
    };
    let now = OffsetDateTime::from_unix_timestamp(NOW_S).unwrap();
    for item in batch.items.iter().take(ingest::MAX_ITEMS) {
        assert!(ingest::paths_agree(item, now), "the two reads differ on {}", item.get());
        let value: Option<serde_json::Value> = serde_json::from_str(item.get()).ok();
        let id = value.as_ref().and_then(|v| v.get("id")).and_then(|v| v.as_str());
        match ingest::check_item(item, now) {
            Ok(()) => {
                let id = id.expect("an accepted item has an id");
                assert!(!id.is_empty() && id.chars().count() <= MAX_ID_LEN);
            }
            Err(r) => {
                assert!(!r.reason.is_empty());
                if value.is_none() {
                    // JSON a tree cannot hold (too deep, a number out of range).
                    assert_eq!((r.reason, r.id.as_str()), ("invalid_item", ""));
                } else if !matches!(r.reason, "missing_id" | "invalid_id") {
                    assert_eq!(Some(r.id.as_str()), id, "a rejection names its item");
                }
            }
        }
    }
});
