//! Request builders for Anthropic's Message Batches API: one pure function
//! per operation, like [`crate::api`]'s builders, on the same [`ApiBase`].
//!
//! The base URL is the API's root without a version
//! (`https://api.anthropic.com`, what `ANTHROPIC_BASE_URL` names); paths
//! carry `/v1`. The key travels in `x-api-key` and every request carries
//! `anthropic-version` (both set by [`Provider::anthropic`](crate::provider::Provider::anthropic)),
//! plus `anthropic-beta` when the provider adds it.
//!
//! Sources: <https://docs.anthropic.com/en/api/creating-message-batches>,
//! <https://docs.anthropic.com/en/api/retrieving-message-batches>,
//! <https://docs.anthropic.com/en/api/listing-message-batches>,
//! <https://docs.anthropic.com/en/api/canceling-message-batches>,
//! <https://docs.anthropic.com/en/api/retrieving-message-batch-results>,
//! <https://docs.anthropic.com/en/api/deleting-message-batches>.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RANGE};
use http::{HeaderValue, Method, Request, Uri};

use crate::api::requests::{JSON, push_param, request};
use crate::api::{ApiBase, Outgoing, ParamError, RequestError, ShardRef, validate_id};

/// `POST /v1/messages/batches`.
pub const BATCHES_PATH: &str = "/v1/messages/batches";

/// What goes before a shard's bytes in a create body.
pub const CREATE_HEAD: &[u8] = b"{\"requests\":[";
/// What goes after a shard's bytes in a create body.
pub const CREATE_TAIL: &[u8] = b"]}";

/// The bytes a create body adds around its shard
/// (`{"requests":[` and `]}`).
pub const CREATE_FRAMING: u64 = (CREATE_HEAD.len() + CREATE_TAIL.len()) as u64;

/// `POST /v1/messages/batches` with the requests of shard `shard`, streamed.
///
/// The body is `{"requests":[` + the shard's bytes + `]}` as an
/// [`Outgoing::Multipart`] (head, streamed shard, tail), with
/// `Content-Type: application/json` and an exact `Content-Length`; the
/// transports stream it as they stream an upload, so no body is ever held
/// in memory. The shard must be encoded by
/// [`RequestEncoder`](super::RequestEncoder): request objects separated by
/// commas (each line after the first starts with `,`), so that the framed
/// body is one JSON document.
///
/// # Errors
/// [`RequestError::Build`] if the length overflows.
pub fn create_batch(api: &ApiBase, shard: ShardRef) -> Result<Request<Outgoing>, RequestError> {
    let len = shard
        .len
        .checked_add(CREATE_FRAMING)
        .ok_or_else(|| RequestError::Build {
            detail: "body length overflows u64".to_owned(),
        })?;
    let body = Outgoing::Multipart {
        head: Bytes::from_static(CREATE_HEAD),
        shard,
        tail: Bytes::from_static(CREATE_TAIL),
        len,
    };
    let mut req = request(api, Method::POST, BATCHES_PATH, JSON, body)?;
    req.headers_mut().insert(CONTENT_TYPE, JSON);
    Ok(req)
}

/// `POST /v1/messages/batches` with a body held in memory: `requests` is
/// the JSON array's elements as a shard would hold them (see
/// [`create_batch`]). For small batches and tests.
///
/// # Errors
/// [`RequestError::Build`] if the URL cannot be built.
pub fn create_batch_bytes(
    api: &ApiBase,
    requests: &[u8],
) -> Result<Request<Outgoing>, RequestError> {
    let mut body = Vec::with_capacity(requests.len() + CREATE_HEAD.len() + CREATE_TAIL.len());
    body.extend_from_slice(CREATE_HEAD);
    body.extend_from_slice(requests);
    body.extend_from_slice(CREATE_TAIL);
    let mut req = request(
        api,
        Method::POST,
        BATCHES_PATH,
        JSON,
        Outgoing::Json(Bytes::from(body)),
    )?;
    req.headers_mut().insert(CONTENT_TYPE, JSON);
    Ok(req)
}

/// `GET /v1/messages/batches/{batch_id}`.
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn retrieve_batch(api: &ApiBase, batch_id: &str) -> Result<Request<Outgoing>, RequestError> {
    crate::api::requests::retrieve_batch_at(api, BATCHES_PATH, batch_id)
}

/// `POST /v1/messages/batches/{batch_id}/cancel`: no body, `Content-Length: 0`.
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn cancel_batch(api: &ApiBase, batch_id: &str) -> Result<Request<Outgoing>, RequestError> {
    crate::api::requests::cancel_batch_at(api, BATCHES_PATH, batch_id)
}

/// `DELETE /v1/messages/batches/{batch_id}` (only an ended batch can be deleted).
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn delete_batch(api: &ApiBase, batch_id: &str) -> Result<Request<Outgoing>, RequestError> {
    validate_id("batch id", batch_id)?;
    request(
        api,
        Method::DELETE,
        &format!("{BATCHES_PATH}/{batch_id}"),
        JSON,
        Outgoing::Empty,
    )
}

/// The query of [`list_batches`]. Pages come newest first: pass a page's
/// `last_id` as `after_id` for the next (older) page, its `first_id` as
/// `before_id` for the previous one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListMessageBatches {
    /// Batches per page, 1 to 1,000 (the API's default: 20).
    pub limit: Option<u32>,
    /// The page just before (newer than) this batch.
    pub before_id: Option<String>,
    /// The page just after (older than) this batch.
    pub after_id: Option<String>,
}

impl ListMessageBatches {
    /// The newest `limit` batches.
    pub fn newest(limit: u32) -> Self {
        ListMessageBatches {
            limit: Some(limit),
            before_id: None,
            after_id: None,
        }
    }

    /// The `limit` batches created just before `after_id`.
    pub fn older_than(after_id: impl Into<String>, limit: u32) -> Self {
        ListMessageBatches {
            limit: Some(limit),
            before_id: None,
            after_id: Some(after_id.into()),
        }
    }
}

/// `GET /v1/messages/batches?limit=&before_id=&after_id=`.
///
/// # Errors
/// [`RequestError::Param`] if `limit` is not in 1..=1000 or a cursor is empty.
pub fn list_batches(
    api: &ApiBase,
    query: &ListMessageBatches,
) -> Result<Request<Outgoing>, RequestError> {
    let mut path = String::from(BATCHES_PATH);
    if let Some(limit) = query.limit {
        crate::api::types::check_range("limit", u64::from(limit), 1, 1000)?;
        push_param(&mut path, "limit", &limit.to_string());
    }
    for (param, value) in [
        ("before_id", &query.before_id),
        ("after_id", &query.after_id),
    ] {
        match value.as_deref() {
            Some("") => return Err(ParamError::Empty { param }.into()),
            Some(v) => push_param(&mut path, param, v),
            None => {}
        }
    }
    request(api, Method::GET, &path, JSON, Outgoing::Empty)
}

/// `GET` a batch's results: JSONL, one line per request, in any order.
///
/// With a `results_url` (the batch's, once ended), that URL is fetched, but
/// only if it is on the configured base URL's origin (scheme, host and
/// port): the key is never sent to another host. Without one, the
/// documented path `/v1/messages/batches/{batch_id}/results` on the base
/// URL is used. With `resume_from = Some(n)`, asks for the bytes from
/// offset `n` on (`Range: bytes=n-`); a server that ignores it answers
/// `200` with the whole body, which the job's download skips through.
///
/// # Errors
/// [`RequestError::ForeignOrigin`] for a `results_url` elsewhere (or not
/// an absolute URL); [`RequestError::InvalidId`] for an unsafe `batch_id`.
pub fn batch_results(
    api: &ApiBase,
    batch_id: &str,
    results_url: Option<&str>,
    resume_from: Option<u64>,
) -> Result<Request<Outgoing>, RequestError> {
    let accept = HeaderValue::from_static("application/x-jsonl, application/binary");
    let mut req = match results_url {
        Some(url) => {
            let origin = origin_of(api.base_url());
            let foreign = || RequestError::ForeignOrigin {
                url: url.to_owned(),
                origin: origin.clone().unwrap_or_default(),
            };
            let uri: Uri = url.parse().map_err(|_| foreign())?;
            let same = match (uri.scheme_str(), uri.authority(), &origin) {
                (Some(scheme), Some(auth), Some(o)) => {
                    let mine = format!("{}://{}", scheme.to_ascii_lowercase(), auth.as_str());
                    mine.eq_ignore_ascii_case(o) && !auth.as_str().contains('@')
                }
                _ => false,
            };
            if !same {
                return Err(foreign());
            }
            let mut req = request(api, Method::GET, "", accept, Outgoing::Empty)?;
            *req.uri_mut() = uri;
            req
        }
        None => {
            validate_id("batch id", batch_id)?;
            request(
                api,
                Method::GET,
                &format!("{BATCHES_PATH}/{batch_id}/results"),
                accept,
                Outgoing::Empty,
            )?
        }
    };
    if let Some(offset) = resume_from.filter(|o| *o > 0) {
        let range =
            HeaderValue::try_from(format!("bytes={offset}-")).map_err(|e| RequestError::Build {
                detail: format!("range: {e}"),
            })?;
        req.headers_mut().insert(RANGE, range);
    }
    Ok(req)
}

/// `scheme://authority` of a normalised base URL.
fn origin_of(base: &str) -> Option<String> {
    let uri: Uri = base.parse().ok()?;
    Some(format!(
        "{}://{}",
        uri.scheme_str()?.to_ascii_lowercase(),
        uri.authority()?.as_str()
    ))
}
