//! Every response the tests see is checked against the OpenAPI document the server
//! serves: the operation is found by method and path template, and a JSON body is
//! validated (JSON Schema 2020-12, the `jsonschema` crate) against the schema documented
//! for its status and content type. A response that contradicts its documentation fails
//! the test that made the request.
//!
//! A status the operation does not document fails too: the common error answers (401,
//! 403, 404, 400/422) are added to the document by `http::common_responses`, the rest
//! is listed on each operation.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::Value;

static DOC: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(samplit_control_plane::http::openapi()).expect("the document")
});

static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(Mutex::default);

/// The documented path template matching `path` (relative to the server URL), preferring
/// literal segments over parameters (`/sites/verify` over `/sites/{id}`).
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    DOC["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (t, s) in parts.iter().zip(&segments) {
                if t.starts_with('{') && t.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                } else if t == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

fn validator(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    let mut cache = VALIDATORS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = cache.get(key) {
        return Arc::clone(v);
    }
    // The schema with the document's components beside it, so `#/components/...`
    // references resolve inside one root.
    let mut root = serde_json::json!({ "components": DOC["components"].clone() });
    if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
        for (k, v) in schema {
            root.insert(k.clone(), v.clone());
        }
    }
    let compiled = Arc::new(
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{key}: the documented schema does not compile: {e}")),
    );
    cache.insert(key.to_owned(), Arc::clone(&compiled));
    compiled
}

/// Checks one response against the document (see the module docs).
#[track_caller]
pub fn check(
    method: &Method,
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) {
    let Some(relative) = path.strip_prefix("/api/v1") else {
        return; // /healthz, /metrics, /docs: outside the API document
    };
    let Some(template) = template_of(relative) else {
        return; // the router's 404 for an unknown path
    };
    let method_key = method.as_str().to_ascii_lowercase();
    let operation = &DOC["paths"][template][&method_key];
    if !operation.is_object() {
        return; // 405: not an operation
    }
    let responses = &operation["responses"];
    let documented = &responses[status.as_str()];
    let documented = if documented.is_object() {
        documented
    } else if responses["default"].is_object() {
        &responses["default"]
    } else {
        panic!(
            "{method} {path} → {status}: the document does not list this status for \
             {method} {template} (it lists {:?})",
            responses.as_object().map(|r| r.keys().collect::<Vec<_>>())
        );
    };
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    let is_json = media == "application/json" || media.ends_with("+json");
    if !is_json || body.is_empty() {
        return; // files (csv, xlsx), empty bodies: nothing to validate
    }
    let Some(schema) = documented["content"]
        .get(media)
        .or_else(|| documented["content"].get("application/json"))
        .map(|c| &c["schema"])
        .filter(|s| s.is_object())
    else {
        panic!(
            "{method} {path} → {status}: a {media} body, but the document gives this \
             response no JSON schema: {documented}"
        );
    };
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{method} {path} → {status}: {media} body is not JSON ({e})"));
    let key = format!("{method_key} {template} {} {media}", status.as_u16());
    let errors: Vec<String> = validator(&key, schema)
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} → {status}: the body contradicts the documented schema:\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}
