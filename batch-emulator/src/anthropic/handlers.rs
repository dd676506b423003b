//! Retrieve, list, cancel, delete and results of Message Batches
//! (<https://docs.anthropic.com/en/api/retrieving-message-batches>,
//! <https://docs.anthropic.com/en/api/listing-message-batches>,
//! <https://docs.anthropic.com/en/api/canceling-message-batches>,
//! <https://docs.anthropic.com/en/api/deleting-message-batches>,
//! <https://docs.anthropic.com/en/api/retrieving-message-batch-results>).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::AnthError;
use super::lifecycle::results_path;
use super::model::{ListPage, MessageBatchRecord, Processing};
use crate::error::ok_json;
use crate::lifecycle::advance_all;
use crate::server::AppState;
use crate::server::content::faulted_body;
use crate::state::lock;

/// The `{message_batch_id}` path segment.
pub(super) struct BatchId(String);

impl<S: Send + Sync> FromRequestParts<S> for BatchId {
    type Rejection = AnthError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<BatchId, AnthError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| BatchId(id))
            .map_err(|e| AnthError::invalid(format!("Invalid path: {e}")))
    }
}

fn not_found(id: &str) -> AnthError {
    AnthError::not_found(format!("Message batch '{id}' not found."))
}

/// The origin `results_url` starts with: the bound address, or, when the
/// server listens on all interfaces (`0.0.0.0`, `[::]`), the `Host` the
/// client used, so the URL is one it can reach.
pub(super) fn origin(shared: &AppState, headers: &HeaderMap) -> String {
    let bound = shared.origin.get().cloned().unwrap_or_default();
    let unspecified = bound.starts_with("http://0.0.0.0:") || bound.starts_with("http://[::]:");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(h) if unspecified => format!("http://{h}"),
        _ => bound,
    }
}

/// `GET /v1/messages/batches/{id}`.
pub(super) async fn retrieve(
    State(shared): State<AppState>,
    BatchId(id): BatchId,
    headers: HeaderMap,
) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let origin = origin(&shared, &headers);
    let db = lock(&shared.db);
    match db.message_batches.get(&id) {
        Some(b) => ok_json(&b.to_api(now, &origin)),
        None => not_found(&id).into_response(),
    }
}

/// `GET /v1/messages/batches`: newest first; `after_id` pages towards
/// older batches, `before_id` towards newer ones; `limit` 1..=1000
/// (default 20).
pub(super) async fn list(
    State(shared): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let origin = origin(&shared, &headers);
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return AnthError::invalid(format!("Invalid query: {e}")).into_response(),
    };
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => 20,
        Some(Ok(n)) if (1..=1000).contains(&n) => usize::try_from(n).unwrap_or(20),
        Some(Ok(n)) if n < 1 => {
            return AnthError::invalid("limit: Input should be greater than or equal to 1")
                .into_response();
        }
        Some(Ok(_)) => {
            return AnthError::invalid("limit: Input should be less than or equal to 1000")
                .into_response();
        }
        Some(Err(_)) => {
            return AnthError::invalid("limit: Input should be a valid integer").into_response();
        }
    };
    let before = q.get("before_id").filter(|s| !s.is_empty());
    let after = q.get("after_id").filter(|s| !s.is_empty());
    if before.is_some() && after.is_some() {
        return AnthError::invalid("Only one of before_id and after_id may be given.")
            .into_response();
    }
    let db = lock(&shared.db);
    let mut all: Vec<&MessageBatchRecord> = db.message_batches.values().collect();
    all.sort_by_key(|b| std::cmp::Reverse(b.seq));
    let (page, has_more): (&[&MessageBatchRecord], bool) = match (before, after) {
        (Some(id), _) => match all.iter().position(|b| &b.id == id) {
            // The `limit` batches just newer than the cursor.
            Some(i) => {
                let from = i.saturating_sub(limit);
                (&all[from..i], from > 0)
            }
            None => (&[], false),
        },
        (None, Some(id)) => match all.iter().position(|b| &b.id == id) {
            Some(i) => {
                let rest = &all[i + 1..];
                let n = rest.len().min(limit);
                (&rest[..n], rest.len() > limit)
            }
            None => (&[], false),
        },
        (None, None) => {
            let n = all.len().min(limit);
            (&all[..n], all.len() > limit)
        }
    };
    let list = ListPage {
        data: page.iter().map(|b| b.to_api(now, &origin)).collect(),
        has_more,
        first_id: page.first().map(|b| b.id.as_str()),
        last_id: page.last().map(|b| b.id.as_str()),
    };
    ok_json(&list)
}

/// `POST /v1/messages/batches/{id}/cancel`: `in_progress` becomes
/// `canceling`; a batch already `canceling` is answered as it is; an
/// `ended` one is a 400.
pub(super) async fn cancel(
    State(shared): State<AppState>,
    BatchId(id): BatchId,
    headers: HeaderMap,
) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let origin = origin(&shared, &headers);
    let (body, changed) = {
        let mut db = lock(&shared.db);
        let Some(b) = db.message_batches.get_mut(&id) else {
            return not_found(&id).into_response();
        };
        let changed = match b.status {
            Processing::InProgress => {
                b.processed_at_stop = Some(b.processed_at(now));
                b.status = Processing::Canceling;
                b.cancel_initiated_ms = Some(now);
                true
            }
            Processing::Canceling => false,
            Processing::Ended => {
                return AnthError::invalid(format!(
                    "Message batch '{id}' has already ended and can no longer be canceled."
                ))
                .into_response();
            }
        };
        (ok_json(&b.to_api(now, &origin)), changed)
    };
    if changed {
        if let Err(e) = shared.persist().await {
            return AnthError::internal(e).into_response();
        }
        shared.count(|c| c.batches_cancelled += 1);
    }
    body
}

/// `DELETE /v1/messages/batches/{id}`: only an `ended` batch can be
/// deleted ("If you'd like to delete an in-progress batch, you must first
/// cancel it").
pub(super) async fn delete(State(shared): State<AppState>, BatchId(id): BatchId) -> Response {
    advance_all(&shared).await;
    {
        let mut db = lock(&shared.db);
        let Some(b) = db.message_batches.get(&id) else {
            return not_found(&id).into_response();
        };
        if b.status != Processing::Ended {
            return AnthError::invalid(format!(
                "Message batch '{id}' is still {}; cancel it and wait until it has ended before \
                 deleting it.",
                b.status.as_str()
            ))
            .into_response();
        }
        db.message_batches.remove(&id);
    }
    let _ = tokio::fs::remove_file(shared.batch_input_path(&id)).await;
    let _ = tokio::fs::remove_file(results_path(&shared, &id)).await;
    if let Err(e) = shared.persist().await {
        return AnthError::internal(e).into_response();
    }
    shared.count(|c| c.batches_deleted += 1);
    ok_json(&json!({"id": id, "type": "message_batch_deleted"}))
}

/// `GET /v1/messages/batches/{id}/results`: the results JSONL
/// (`application/x-jsonl`), with the content faults (cut, slow).
pub(super) async fn results(State(shared): State<AppState>, BatchId(id): BatchId) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    {
        let db = lock(&shared.db);
        let Some(b) = db.message_batches.get(&id) else {
            return not_found(&id).into_response();
        };
        if b.status != Processing::Ended {
            return AnthError::invalid(format!(
                "Message batch '{id}' is still {}; its results are available once \
                 processing_status is 'ended'.",
                b.status.as_str()
            ))
            .into_response();
        }
        if b.archived(now) {
            return AnthError::not_found(format!(
                "The results of message batch '{id}' are no longer available (results are kept \
                 29 days after creation)."
            ))
            .into_response();
        }
        if !b.results_written {
            return AnthError::internal("the results of this batch could not be written")
                .into_response();
        }
    }
    let path = results_path(&shared, &id);
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return AnthError::internal(e).into_response(),
    };
    let len = match f.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return AnthError::internal(e).into_response(),
    };
    let body = faulted_body(&shared, f, len);
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-jsonl"),
    );
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    resp
}
