//! `samplit_engine::assign::assign_site` behind a `#[wasm_bindgen]` API for node, so the
//! benchmark calls exactly the code the Worker runs, compiled the same way (wasm32).

use samplit_engine::assign::{VisitorContext, assign_site};
use samplit_engine::snapshot::Snapshot;
use samplit_engine::targeting::is_bot_user_agent;
use wasm_bindgen::prelude::*;

/// Size of the reused input buffer: a visitor id (≤ 128 bytes) and a page URL
/// (≤ 4096 bytes), as `/v1/assign` accepts them.
const INPUT_CAPACITY: usize = 128 + 4096;

/// A parsed snapshot to assign against.
#[wasm_bindgen]
pub struct Engine {
    snapshot: Snapshot,
    /// Reused input buffer in wasm memory: JS writes the visitor id and the URL here
    /// as UTF-8 (`TextEncoder.encodeInto`) and calls [`Engine::assign_input`], so no
    /// string crosses wasm-bindgen's glue (no `malloc`/`free` per call).
    input: Vec<u8>,
}

#[wasm_bindgen]
impl Engine {
    /// Parses a snapshot (the payload JSON; no signature needed for a benchmark).
    #[wasm_bindgen(constructor)]
    pub fn new(snapshot_json: &str) -> Result<Engine, JsError> {
        let snapshot: Snapshot = serde_json::from_str(snapshot_json)?;
        snapshot
            .validate()
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Engine {
            snapshot,
            input: vec![0; INPUT_CAPACITY],
        })
    }

    /// Where JS writes the input (an offset into the wasm memory).
    pub fn input_ptr(&self) -> usize {
        self.input.as_ptr() as usize
    }

    /// The input buffer's size in bytes.
    pub fn input_capacity(&self) -> usize {
        self.input.len()
    }

    /// [`Engine::assign`] on the visitor id (`id_len` bytes) and URL (`url_len` bytes)
    /// JS wrote one after the other at [`Engine::input_ptr`]. -2: not UTF-8 or too long.
    pub fn assign_input(&self, id_len: usize, url_len: usize) -> i32 {
        let Some(bytes) = self.input.get(..id_len.saturating_add(url_len)) else {
            return -2;
        };
        let (id, url) = bytes.split_at(id_len);
        let (Ok(visitor_id), Ok(url)) = (core::str::from_utf8(id), core::str::from_utf8(url))
        else {
            return -2;
        };
        self.assign(visitor_id, url)
    }

    /// One visitor's full site assignment; returns the first assignment's arm index in
    /// its unit (-1: none), so JS can compare with GrowthBook's variation id.
    pub fn assign(&self, visitor_id: &str, url: &str) -> i32 {
        self.arm_index(&VisitorContext {
            visitor_id,
            url,
            user_agent: Some("Mozilla/5.0"),
            ..Default::default()
        })
    }

    /// [`Engine::assign`] with what `/v1/assign` does around it: the bot user-agent check
    /// on the request's user agent first (a bot gets -1), then the same context carries
    /// that user agent.
    pub fn assign_checking_bot(&self, visitor_id: &str, url: &str, user_agent: &str) -> i32 {
        if is_bot_user_agent(user_agent) {
            return -1;
        }
        self.arm_index(&VisitorContext {
            visitor_id,
            url,
            user_agent: Some(user_agent),
            ..Default::default()
        })
    }

    /// `n` assignments of visitors `"{prefix}{i}"` inside wasm (no JS boundary per
    /// visitor); returns how many got arm 0, so the work cannot be optimised away.
    pub fn assign_many(&self, prefix: &str, n: u32, url: &str) -> u32 {
        let mut id = String::with_capacity(prefix.len() + 10);
        let mut zeros = 0;
        for i in 0..n {
            id.clear();
            id.push_str(prefix);
            id.push_str(&i.to_string());
            if self.assign(&id, url) == 0 {
                zeros += 1;
            }
        }
        zeros
    }
}

impl Engine {
    fn arm_index(&self, ctx: &VisitorContext<'_>) -> i32 {
        let result = assign_site(&self.snapshot, ctx);
        let Some(a) = result.assignments.first() else {
            return -1;
        };
        self.snapshot
            .experiments
            .iter()
            .flat_map(|e| e.units.iter())
            .find_map(|u| u.arms.iter().position(|arm| arm.id == a.arm_id))
            .map_or(-1, |i| i as i32)
    }
}

/// This module's `WebAssembly.Memory`, for JS to write inputs at [`Engine::input_ptr`]
/// (the nodejs glue does not export it).
#[wasm_bindgen]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
