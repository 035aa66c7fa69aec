//! The error answers every operation of a kind can give, added to the OpenAPI document
//! once instead of repeated in each `#[utoipa::path]`: a client generated from the
//! document then knows every status the server may send (the tests check each response
//! they see against the document, `tests/api/contract.rs`).
//!
//! | operation | adds (unless it documents its own) |
//! |---|---|
//! | needs a bearer token | 401 not authenticated |
//! | needs a token and changes something (not GET) | 403 the caller's role does not allow it |
//! | has a path parameter | 404 no such resource in the caller's organisation |
//! | has a request body | 400 malformed body, 422 invalid values |
//! | has query parameters | 400 malformed query string |
//!
//! Each is a problem document ([`crate::error::Problem`], `application/problem+json`).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| problem(description));
}

/// Adds the common error responses (see the module docs) to every operation of `doc`.
pub fn add_to(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_path_parameter = path.contains('{');
        let operations = [
            (false, item.get.as_mut()),
            (true, item.post.as_mut()),
            (true, item.put.as_mut()),
            (true, item.patch.as_mut()),
            (true, item.delete.as_mut()),
        ];
        for (changes, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            if authenticated {
                add(
                    operation,
                    "401",
                    "Not authenticated: no, expired or revoked token or key",
                );
                if changes {
                    add(
                        operation,
                        "403",
                        "Your role in this organisation does not allow this action",
                    );
                }
            }
            if has_path_parameter {
                add(
                    operation,
                    "404",
                    "No such resource in your organisation (another organisation's ids too)",
                );
            }
            let has_query = operation.parameters.as_ref().is_some_and(|ps| {
                ps.iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query))
            });
            if has_query {
                add(
                    operation,
                    "400",
                    "Malformed query string: a wrong type or an unknown value",
                );
            }
            if operation.request_body.is_some() {
                add(
                    operation,
                    "400",
                    "Malformed body: not JSON, a wrong type or an unknown field",
                );
                add(
                    operation,
                    "422",
                    "Invalid values: `errors` names each field and why",
                );
            }
        }
    }
}
