//! `POST /files`, `GET /files`, `GET /files/{id}`, `DELETE /files/{id}`.

use std::collections::HashMap;

use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;

use super::{AppState, Id};
use crate::error::{ApiError, ok_json};
use crate::lifecycle::advance_all;
use crate::model::{DeletedFile, FileRecord, ListObject, UPLOAD_PURPOSES, secs};
use crate::state::lock;
use crate::util::Fnv;

const MULTIPART_SLACK: u64 = 64 * 1024;

pub(super) fn file_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No such File object: {id}")).param("id")
}

/// A 400 in the API's envelope, as the live API refuses an oversized file
/// (`File is too large.`, no param, no code); the limit is added for people.
fn too_large(limit: u64, batch: bool) -> ApiError {
    let what = if batch { "batch input files" } else { "files" };
    ApiError::invalid(format!(
        "File is too large. The limit for {what} is {limit} bytes."
    ))
}

/// The streamed `file` part, already on disk.
struct Upload {
    tmp: std::path::PathBuf,
    filename: String,
    bytes: u64,
    etag: String,
}

/// Removes the temporary file unless it was moved into place.
struct TmpGuard(Option<std::path::PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn stream_file(
    shared: &AppState,
    mut field: Field<'_>,
    limit: u64,
    batch: bool,
    guard: &mut TmpGuard,
) -> Result<Upload, ApiError> {
    let filename = field
        .file_name()
        .map(str::to_owned)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "file".to_owned());
    let tmp = shared.tmp_path("upload");
    guard.0 = Some(tmp.clone());
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut hash = Fnv::default();
    let mut bytes = 0u64;
    loop {
        let chunk = field
            .chunk()
            .await
            .map_err(|e| ApiError::invalid(format!("Could not read the multipart body: {e}")))?;
        let Some(chunk) = chunk else { break };
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(too_large(limit, batch));
        }
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    Ok(Upload {
        tmp,
        filename,
        bytes,
        etag: format!("\"{:016x}-{:x}\"", hash.finish(), bytes),
    })
}

async fn field_text(field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let text = field.text().await.map_err(|e| {
        ApiError::invalid(format!("Could not read the multipart field '{name}': {e}"))
    })?;
    if text.len() > 4096 {
        return Err(ApiError::invalid(format!("The field '{name}' is too long.")).param(name));
    }
    Ok(text)
}

/// `POST /files`.
pub(super) async fn create(
    State(shared): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match create_inner(&shared, &headers, multipart).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn create_inner(
    shared: &AppState,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let general_limit = shared.cfg.max_upload_bytes;
    let batch_limit = shared.cfg.max_batch_file_bytes.min(general_limit);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > general_limit + MULTIPART_SLACK) {
        return Err(too_large(general_limit, false));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid(format!(
            "The request must be multipart/form-data with a 'file' and a 'purpose' part: {e}"
        ))
    })?;
    let mut guard = TmpGuard(None);
    let mut upload: Option<Upload> = None;
    let mut purpose: Option<String> = None;
    let mut anchor: Option<String> = None;
    let mut seconds: Option<String> = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::invalid(format!("Could not read the multipart body: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if upload.is_some() {
                    return Err(ApiError::invalid("Only one 'file' part is allowed.").param("file"));
                }
                let batch = purpose.as_deref() == Some("batch");
                let limit = if batch { batch_limit } else { general_limit };
                upload = Some(stream_file(shared, field, limit, batch, &mut guard).await?);
            }
            "purpose" => purpose = Some(field_text(field).await?.trim().to_owned()),
            "expires_after[anchor]" => anchor = Some(field_text(field).await?.trim().to_owned()),
            "expires_after[seconds]" => seconds = Some(field_text(field).await?.trim().to_owned()),
            other => {
                return Err(ApiError::invalid(format!(
                    "Unrecognized request argument supplied: {other}"
                ))
                .param(other.to_owned()));
            }
        }
    }
    let Some(upload) = upload else {
        return Err(ApiError::missing("file"));
    };
    let Some(purpose) = purpose else {
        return Err(ApiError::missing("purpose"));
    };
    if !UPLOAD_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::invalid(format!(
            "Invalid value for 'purpose': '{purpose}'. Supported values are: {}.",
            UPLOAD_PURPOSES
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .param("purpose")
        .code("invalid_value"));
    }
    let batch = purpose == "batch";
    if batch {
        if upload.bytes > batch_limit {
            return Err(too_large(batch_limit, true));
        }
        if !upload.filename.to_ascii_lowercase().ends_with(".jsonl") {
            return Err(ApiError::invalid(
                "Invalid file format for Batch API. Must be .jsonl",
            ));
        }
    }
    if upload.bytes == 0 {
        return Err(ApiError::invalid("The file is empty.").param("file"));
    }
    let expires_after = match (anchor, seconds) {
        (None, None) => None,
        (anchor, seconds) => {
            match anchor.as_deref() {
                Some("created_at") => {}
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for 'expires_after.anchor': '{other}'. Supported values are: 'created_at'."
                    ))
                    .param("expires_after.anchor")
                    .code("invalid_value"));
                }
                None => return Err(ApiError::missing("expires_after.anchor")),
            }
            let Some(seconds) = seconds else {
                return Err(ApiError::missing("expires_after.seconds"));
            };
            let secs: i64 = seconds.parse().map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid type for 'expires_after.seconds': expected an integer, but got '{seconds}' instead."
                ))
                .param("expires_after.seconds")
                .code("invalid_type")
            })?;
            check_expiry_seconds("expires_after.seconds", secs)?;
            Some(secs)
        }
    };
    let now = shared.clock.now_ms();
    let created_at = secs(now);
    let expires_at = match expires_after {
        Some(s) => Some(created_at + s),
        None if batch => Some(created_at + 30 * 24 * 3600),
        None => None,
    };
    let (id, seq) = lock(&shared.db).alloc_file_id(shared.seed());
    tokio::fs::rename(&upload.tmp, shared.file_path(&id))
        .await
        .map_err(ApiError::internal)?;
    guard.0 = None;
    let record = FileRecord {
        id: id.clone(),
        seq,
        bytes: upload.bytes,
        created_at,
        expires_at,
        filename: upload.filename,
        purpose,
        etag: upload.etag,
    };
    let body = ok_json(&record.to_api());
    lock(&shared.db).files.insert(id, record);
    // Counted as soon as it exists (see batches.rs: a hung-up client
    // cancels the handler while the state is saved).
    shared.count(|c| {
        c.files_uploaded += 1;
        c.bytes_uploaded += upload.bytes;
    });
    shared.persist().await.map_err(ApiError::internal)?;
    Ok(body)
}

/// 3600..=2592000, as `FileExpirationAfter` and `BatchFileExpirationAfter` say.
pub(super) fn check_expiry_seconds(param: &str, secs: i64) -> Result<(), ApiError> {
    if secs < 3600 {
        return Err(ApiError::invalid(format!(
            "Invalid '{param}': integer below minimum value. Expected a value >= 3600, but got {secs} instead."
        ))
        .param(param)
        .code("integer_below_min_value"));
    }
    if secs > 2_592_000 {
        return Err(ApiError::invalid(format!(
            "Invalid '{param}': integer above maximum value. Expected a value <= 2592000, but got {secs} instead."
        ))
        .param(param)
        .code("integer_above_max_value"));
    }
    Ok(())
}

/// Parses `limit` within `1..=max`.
pub(super) fn parse_limit(raw: Option<&String>, default: u64, max: u64) -> Result<u64, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    let n: i64 = raw.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "Invalid type for 'limit': expected an integer, but got '{raw}' instead."
        ))
        .param("limit")
        .code("invalid_type")
    })?;
    if n < 1 {
        return Err(ApiError::invalid(format!(
            "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {n} instead."
        ))
        .param("limit")
        .code("integer_below_min_value"));
    }
    let n = n as u64;
    if n > max {
        return Err(ApiError::invalid(format!(
            "Invalid 'limit': integer above maximum value. Expected a value <= {max}, but got {n} instead."
        ))
        .param("limit")
        .code("integer_above_max_value"));
    }
    Ok(n)
}

type QueryMap = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

pub(super) fn query_map(q: QueryMap) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::invalid(format!("Invalid query string: {e}")))
}

/// `GET /files`.
pub(super) async fn list(State(shared): State<AppState>, q: QueryMap) -> Response {
    advance_all(&shared).await;
    let result = (|| {
        let q = query_map(q)?;
        let limit = parse_limit(q.get("limit"), 10_000, 10_000)?;
        let desc = match q.get("order").map(String::as_str) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "Invalid value for 'order': '{other}'. Supported values are: 'asc' and 'desc'."
                ))
                .param("order")
                .code("invalid_value"));
            }
        };
        let db = lock(&shared.db);
        let mut files: Vec<&FileRecord> = db
            .files
            .values()
            .filter(|f| q.get("purpose").is_none_or(|p| &f.purpose == p))
            .collect();
        files.sort_by_key(|f| f.seq);
        if desc {
            files.reverse();
        }
        if let Some(after) = q.get("after") {
            files = match files.iter().position(|f| &f.id == after) {
                Some(i) => files.split_off(i + 1),
                None => Vec::new(),
            };
        }
        let has_more = files.len() as u64 > limit;
        files.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let list = ListObject {
            object: "list",
            first_id: files.first().map(|f| f.id.clone()),
            last_id: files.last().map(|f| f.id.clone()),
            has_more,
            data: files.iter().map(|f| f.to_api()).collect(),
        };
        Ok(ok_json(&list))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /files/{id}`.
pub(super) async fn retrieve(State(shared): State<AppState>, Id(id): Id) -> Response {
    advance_all(&shared).await;
    let db = lock(&shared.db);
    match db.files.get(&id) {
        Some(f) => ok_json(&f.to_api()),
        None => file_not_found(&id).into_response(),
    }
}

/// `DELETE /files/{id}`.
pub(super) async fn delete(State(shared): State<AppState>, Id(id): Id) -> Response {
    advance_all(&shared).await;
    let removed = lock(&shared.db).files.remove(&id);
    if removed.is_none() {
        return file_not_found(&id).into_response();
    }
    let _ = tokio::fs::remove_file(shared.file_path(&id)).await;
    if let Err(e) = shared.persist().await {
        return ApiError::internal(e).into_response();
    }
    shared.count(|c| c.files_deleted += 1);
    ok_json(&DeletedFile {
        id: &id,
        object: "file",
        deleted: true,
    })
}
