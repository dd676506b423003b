//! The Anthropic mode: Anthropic's Message Batches API
//! (<https://docs.anthropic.com/en/api/creating-message-batches> and its
//! sibling pages), with the same clock, seed, fault injection and counters
//! as the OpenAI mode.
//!
//! Routes (all need `x-api-key` and `anthropic-version`):
//!
//! | route | name in faults and counters |
//! |---|---|
//! | `POST /v1/messages/batches` | `batches.create` |
//! | `GET /v1/messages/batches` (`limit`, `before_id`, `after_id`) | `batches.list` |
//! | `GET /v1/messages/batches/{id}` | `batches.get` |
//! | `POST /v1/messages/batches/{id}/cancel` | `batches.cancel` |
//! | `GET /v1/messages/batches/{id}/results` | `batches.results` |
//! | `DELETE /v1/messages/batches/{id}` | `batches.delete` |
//!
//! Every other path under `/v1` (the OpenAI routes included) answers 404
//! `not_found_error` in Anthropic's envelope. A create body is streamed to
//! disk, then parsed one request at a time into the batch's JSONL snapshot,
//! so a 256 MB body is never held in memory.
//!
//! Lifecycle (see [`lifecycle`]): a batch is `in_progress` from its
//! creation, processes one request per `Timings::per_request` (100 ms as
//! set by the builder's `provider`) plus
//! `Timings::finalizing`, then `ended`; a cancel makes it `canceling` for
//! `Timings::cancelling`, then `ended` with the unprocessed requests
//! `canceled`; at `expires_at` (24 h) the unprocessed ones are `expired`.
//! As Anthropic documents, `request_counts` keeps every request under
//! `processing` until the batch ends.

mod create;
mod error;
mod handlers;
pub(crate) mod lifecycle;
mod model;
mod respond;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::faults::Route;
use crate::server::{AppState, counted_route, drain};
use crate::state::Shared;
use crate::util::derived_b62_id;

pub(crate) use error::AnthError;
pub(crate) use lifecycle::advance;
pub(crate) use model::MessageBatchRecord;

/// The API versions the emulator accepts in `anthropic-version`
/// (<https://docs.anthropic.com/en/api/versioning>).
const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// The Anthropic routes, without the private paths and the fallback (the
/// caller adds both).
pub(crate) fn routes(shared: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/messages/batches",
            post(create::create).get(handlers::list),
        )
        .route(
            "/v1/messages/batches/{message_batch_id}",
            get(handlers::retrieve).delete(handlers::delete),
        )
        .route(
            "/v1/messages/batches/{message_batch_id}/cancel",
            post(handlers::cancel),
        )
        .route(
            "/v1/messages/batches/{message_batch_id}/results",
            get(handlers::results),
        )
        .route_layer(middleware::from_fn_with_state(shared, layer))
        .method_not_allowed_fallback(unknown_route)
}

/// 404 `not_found_error` for any unknown path or method.
pub(crate) async fn unknown_route(State(shared): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if path.starts_with("/v1/") || path == "/v1" {
        shared.count(|c| {
            c.requests_total += 1;
            *c.requests.entry("unmatched".to_owned()).or_default() += 1;
            *c.responses.entry("404".to_owned()).or_default() += 1;
        });
    }
    drain(req.into_body()).await;
    AnthError::not_found(format!("Not found: {method} {path}")).into_response()
}

fn route_of(method: &Method, path: &str) -> Option<Route> {
    let r = match (method.as_str(), path) {
        ("POST", "/v1/messages/batches") => Route::BatchesCreate,
        ("GET" | "HEAD", "/v1/messages/batches") => Route::BatchesList,
        ("GET" | "HEAD", "/v1/messages/batches/{message_batch_id}") => Route::BatchesGet,
        ("DELETE", "/v1/messages/batches/{message_batch_id}") => Route::BatchesDelete,
        ("POST", "/v1/messages/batches/{message_batch_id}/cancel") => Route::BatchesCancel,
        ("GET" | "HEAD", "/v1/messages/batches/{message_batch_id}/results") => {
            Route::BatchesResults
        }
        _ => return None,
    };
    Some(r)
}

/// Checks `x-api-key` and `anthropic-version`; `Err` is the answer.
/// The key is never echoed.
fn check_headers(shared: &Shared, req: &Request) -> Result<(), AnthError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
    };
    let key = header("x-api-key");
    if key.is_empty() {
        return Err(AnthError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        ));
    }
    if shared.cfg.api_key.as_deref().is_some_and(|k| k != key) {
        return Err(AnthError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    let version = header("anthropic-version");
    if version.is_empty() {
        return Err(AnthError::invalid("anthropic-version: header is required"));
    }
    if !VERSIONS.contains(&version) {
        return Err(AnthError::invalid(format!(
            "anthropic-version: invalid version '{version}'; supported versions are {}",
            VERSIONS.join(", ")
        )));
    }
    Ok(())
}

/// The answer of a status fault: 429 `rate_limit_error` with
/// `retry-after`, 529 `overloaded_error`, any other 5xx `api_error`.
fn status_fault(status: u16, retry_after: u64) -> AnthError {
    match status {
        429 => {
            let mut e = AnthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Number of requests has exceeded your per-minute rate limit \
                 (https://docs.anthropic.com/en/api/rate-limits); see the response headers for \
                 current usage. Please reduce the request rate or try again later.",
            );
            e.retry_after = Some(retry_after);
            e
        }
        529 => AnthError::overloaded(),
        other => {
            let mut e = AnthError::api_error();
            e.status = StatusCode::from_u16(other).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            e
        }
    }
}

/// Counting, auth, request-level faults and commit faults for the
/// Anthropic routes; adds `request-id` to every answer and `request_id` to
/// error bodies.
async fn layer(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    let (resp, request_no) = counted_route(
        &shared,
        req,
        next,
        route_of,
        |shared, req, _| {
            check_headers(shared, req)
                .err()
                .map(IntoResponse::into_response)
        },
        |status, retry_after| status_fault(status, retry_after).into_response(),
        || AnthError::api_error().into_response(),
    )
    .await;
    let rid = derived_b62_id(
        "req_01",
        22,
        &["http", &shared.seed().to_string(), &request_no.to_string()],
    );
    let mut resp = if resp.status().is_client_error() || resp.status().is_server_error() {
        with_request_id(resp, &rid).await
    } else {
        resp
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

/// Adds `"request_id"` to an error body, as Anthropic's error answers
/// carry it (<https://docs.anthropic.com/en/api/errors>).
async fn with_request_id(resp: Response, rid: &str) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 16).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut obj)) if obj.get("type") == Some(&Value::from("error")) => {
            obj.insert("request_id".to_owned(), Value::from(rid));
            serde_json::to_vec(&obj).map_or(bytes, Into::into)
        }
        _ => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
