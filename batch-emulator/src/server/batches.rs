//! `POST /batches`, `GET /batches`, `GET /batches/{id}`,
//! `POST /batches/{id}/cancel`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use batch_core::Endpoint;
use serde_json::Value;

use super::files::{check_expiry_seconds, parse_limit, query_map};
use super::{AppState, Id};
use crate::error::{ApiError, ok_json};
use crate::lifecycle::advance_all;
use crate::model::{BatchRecord, BatchTimings, ListObject, Status, Usage};
use crate::provider::ProviderMode;
use crate::state::lock;

const MAX_JSON_BODY: usize = 1 << 20;

fn batch_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No batch found with id '{id}'."))
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The validated fields of a `CreateBatchRequest`.
struct CreateBatch {
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    metadata: Option<BTreeMap<String, String>>,
    output_expires_after: Option<i64>,
}

fn parse_create(body: &[u8], provider: ProviderMode) -> Result<CreateBatch, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
             using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was \
             sent was not valid JSON.)",
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(ApiError::invalid_type("body", "an object", &value));
    };
    let string = |key: &str| -> Result<String, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Err(ApiError::missing(key)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::invalid_type(key, "a string", other)),
        }
    };
    let input_file_id = string("input_file_id")?;
    let sent = string("endpoint")?;
    // Azure OpenAI's batch guide names endpoints without `/v1` on its dated
    // API versions (`/chat/completions`); the batch keeps the `/v1` form.
    let endpoint = if provider.unversioned_urls() && !sent.starts_with("/v1/") {
        format!("/v1{sent}")
    } else {
        sent.clone()
    };
    if !Endpoint::parse(&endpoint).is_known() {
        let endpoint = sent;
        return Err(ApiError::invalid(format!(
            "Invalid value: '{endpoint}'. Supported values are: {}.",
            Endpoint::KNOWN
                .iter()
                .map(|e| format!("'{e}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .param("endpoint")
        .code("invalid_value"));
    }
    let completion_window = string("completion_window")?;
    if let Err(message) = provider.window(&completion_window) {
        return Err(ApiError::invalid(message)
            .param("completion_window")
            .code("invalid_value"));
    }
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if m.len() > 16 {
                return Err(ApiError::invalid(format!(
                    "Invalid 'metadata': too many properties. Expected an object with at most 16 \
                     properties, but got an object with {} properties instead.",
                    m.len()
                ))
                .param("metadata")
                .code("object_above_max_properties"));
            }
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let key_len = k.chars().count();
                if key_len > 64 {
                    return Err(ApiError::invalid(format!(
                        "Invalid 'metadata': string too long. Expected a string with maximum length \
                         64, but got a string with length {key_len} instead."
                    ))
                    .param("metadata")
                    .code("string_above_max_length"));
                }
                let Value::String(s) = v else {
                    return Err(ApiError::invalid_type(
                        &format!("metadata.{k}"),
                        "a string",
                        v,
                    ));
                };
                let len = s.chars().count();
                if len > 512 {
                    return Err(ApiError::invalid(format!(
                        "Invalid 'metadata.{k}': string too long. Expected a string with maximum \
                         length 512, but got a string with length {len} instead."
                    ))
                    .param(format!("metadata.{k}"))
                    .code("string_above_max_length"));
                }
                out.insert(k.clone(), s.clone());
            }
            Some(out)
        }
        Some(other) => return Err(ApiError::invalid_type("metadata", "an object", other)),
    };
    let output_expires_after = match obj.get("output_expires_after") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            match o.get("anchor") {
                Some(Value::String(a)) if a == "created_at" => {}
                Some(Value::String(a)) => {
                    return Err(ApiError::invalid(format!(
                        "Invalid value: '{a}'. Supported values are: 'created_at'."
                    ))
                    .param("output_expires_after.anchor")
                    .code("invalid_value"));
                }
                Some(other) => {
                    return Err(ApiError::invalid_type(
                        "output_expires_after.anchor",
                        "a string",
                        other,
                    ));
                }
                None => return Err(ApiError::missing("output_expires_after.anchor")),
            }
            let secs = match o.get("seconds") {
                Some(v) => v.as_i64().ok_or_else(|| {
                    ApiError::invalid_type("output_expires_after.seconds", "an integer", v)
                })?,
                None => return Err(ApiError::missing("output_expires_after.seconds")),
            };
            check_expiry_seconds("output_expires_after.seconds", secs)?;
            Some(secs)
        }
        Some(other) => {
            return Err(ApiError::invalid_type(
                "output_expires_after",
                "an object",
                other,
            ));
        }
    };
    Ok(CreateBatch {
        input_file_id,
        endpoint,
        completion_window,
        metadata,
        output_expires_after,
    })
}

/// `POST /batches`.
pub(super) async fn create(State(shared): State<AppState>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_JSON_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::invalid("The request body is too large or could not be read.")
                .status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
                .into_response();
        }
    };
    let req = match parse_create(&bytes, shared.cfg.provider) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let record = {
        let mut db = lock(&shared.db);
        match db.files.get(&req.input_file_id) {
            None => {
                return ApiError::invalid(format!("No such File object: {}", req.input_file_id))
                    .param("input_file_id")
                    .into_response();
            }
            Some(f) if f.purpose != "batch" => {
                return ApiError::invalid(format!(
                    "The input file {} has purpose '{}', but batches need a file with purpose 'batch'.",
                    f.id, f.purpose
                ))
                .param("input_file_id")
                .into_response();
            }
            Some(_) => {}
        }
        let (id, seq) = db.alloc_batch_id(shared.seed());
        let faults = lock(&shared.faults).on_batch_created();
        let t = shared.cfg.timings;
        let window = shared
            .cfg
            .provider
            .window(&req.completion_window)
            .ok()
            .flatten()
            .unwrap_or(t.completion_window);
        BatchRecord {
            id,
            seq,
            endpoint: req.endpoint,
            model: None,
            input_file_id: req.input_file_id,
            completion_window: req.completion_window,
            status: Status::Validating,
            output_file_id: None,
            error_file_id: None,
            errors: None,
            created_ms: now,
            in_progress_ms: None,
            expires_ms: now + ms(window),
            never_expires: !shared.cfg.provider.expires(),
            finalizing_ms: None,
            completed_ms: None,
            failed_ms: None,
            expired_ms: None,
            cancelling_ms: None,
            cancelled_ms: None,
            total: 0,
            fail_positions: Vec::new(),
            processed_at_stop: None,
            final_counts: None,
            usage: Usage::default(),
            metadata: req.metadata,
            output_expires_after: req.output_expires_after,
            timings: BatchTimings {
                validate_ms: ms(t.validating),
                per_request_ms: ms(t.per_request).max(1),
                finalize_ms: ms(t.finalizing),
                cancel_ms: ms(t.cancelling),
                window_ms: ms(window),
            },
            stall_ms: shared.clock.real_to_virtual_ms(faults.stall_real_ms),
            faults,
        }
    };
    if record.faults.expire {
        shared.count(|c| c.fault("expire"));
    }
    if record.faults.token_limit {
        shared.count(|c| c.fault("token-limit"));
    }
    if record.stall_ms > 0 {
        shared.count(|c| c.fault("stall-validating"));
    }
    // Snapshot the input so deleting the file later cannot break the batch.
    let src = shared.file_path(&record.input_file_id);
    let dst = shared.batch_input_path(&record.id);
    let linked = match tokio::fs::hard_link(&src, &dst).await {
        Ok(()) => Ok(()),
        Err(_) => tokio::fs::copy(&src, &dst).await.map(|_| ()),
    };
    if let Err(e) = linked {
        return ApiError::internal(e).into_response();
    }
    let body = ok_json(&record.to_api(now));
    lock(&shared.db).batches.insert(record.id.clone(), record);
    // Counted as soon as it exists: a client that hangs up while the state
    // is saved cancels this handler, but the batch is there all the same.
    shared.count(|c| c.batches_created += 1);
    if let Err(e) = shared.persist().await {
        return ApiError::internal(e).into_response();
    }
    body
}

/// `GET /batches/{id}`.
pub(super) async fn retrieve(State(shared): State<AppState>, Id(id): Id) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let db = lock(&shared.db);
    match db.batches.get(&id) {
        Some(b) => ok_json(&b.to_api(now)),
        None => batch_not_found(&id).into_response(),
    }
}

/// `POST /batches/{id}/cancel`.
pub(super) async fn cancel(State(shared): State<AppState>, Id(id): Id) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let (body, changed) = {
        let mut db = lock(&shared.db);
        let Some(b) = db.batches.get_mut(&id) else {
            return batch_not_found(&id).into_response();
        };
        let changed = match b.status {
            Status::Validating | Status::InProgress | Status::Finalizing => {
                b.processed_at_stop = Some(match b.status {
                    Status::InProgress => b.processed_at(now),
                    Status::Finalizing => b.total,
                    _ => 0,
                });
                b.status = Status::Cancelling;
                b.cancelling_ms = Some(now);
                true
            }
            Status::Cancelling | Status::Cancelled => false,
            Status::Completed | Status::Failed | Status::Expired => {
                return ApiError::invalid(format!(
                    "Cannot cancel a batch with status '{}'.",
                    b.status.as_str()
                ))
                .status(axum::http::StatusCode::CONFLICT)
                .into_response();
            }
        };
        (ok_json(&b.to_api(now)), changed)
    };
    if changed {
        if let Err(e) = shared.persist().await {
            return ApiError::internal(e).into_response();
        }
        shared.count(|c| c.batches_cancelled += 1);
    }
    body
}

/// `GET /batches`.
pub(super) async fn list(
    State(shared): State<AppState>,
    q: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let result = (|| {
        let q = query_map(q)?;
        let limit = parse_limit(q.get("limit"), 20, 100)?;
        let db = lock(&shared.db);
        let mut batches: Vec<&BatchRecord> = db.batches.values().collect();
        batches.sort_by_key(|b| std::cmp::Reverse(b.seq));
        if let Some(after) = q.get("after") {
            batches = match batches.iter().position(|b| &b.id == after) {
                Some(i) => batches.split_off(i + 1),
                None => Vec::new(),
            };
        }
        let has_more = batches.len() as u64 > limit;
        batches.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let list = ListObject {
            object: "list",
            first_id: batches.first().map(|b| b.id.clone()),
            last_id: batches.last().map(|b| b.id.clone()),
            has_more,
            data: batches.iter().map(|b| b.to_api(now)).collect(),
        };
        Ok::<_, ApiError>(ok_json(&list))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}
