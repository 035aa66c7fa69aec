//! `samplit_engine::assign::assign_site` behind a `#[wasm_bindgen]` API for node, so the
//! benchmark calls exactly the code the Worker runs, compiled the same way (wasm32).

use samplit_engine::assign::{VisitorContext, assign_site};
use samplit_engine::snapshot::Snapshot;
use samplit_engine::targeting::is_bot_user_agent;
use wasm_bindgen::prelude::*;

/// A parsed snapshot to assign against.
#[wasm_bindgen]
pub struct Engine {
    snapshot: Snapshot,
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
        Ok(Engine { snapshot })
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
