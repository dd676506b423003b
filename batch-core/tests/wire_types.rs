//! Wire types against JSON written the way the live API sends it: `null` for
//! unset fields, open enums, fields this crate does not know.

use std::collections::BTreeMap;

use batch_core::Endpoint;
use batch_core::api::{
    ApiError, Batch, BatchError, BatchStatus, BatchUsage, CompletionWindow, DeletedFile,
    ErrorResponse, FileObject, FilePurpose, FileStatus, InputTokensDetails, List,
    OutputTokensDetails, RequestCounts,
};
use batch_core::http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const COMPLETED: &str = r#"{
  "id": "batch_67f3a1c9e5d48190b2c4f1a6d3e7b8c2",
  "object": "batch",
  "endpoint": "/v1/chat/completions",
  "model": "gpt-4o-mini-2024-07-18",
  "errors": null,
  "input_file_id": "file-9GaS1sQzLYkFh8Xh2vKcPQ",
  "completion_window": "24h",
  "status": "completed",
  "output_file_id": "file-3kVxQ2bJtR7mN5pW8yZcDe",
  "error_file_id": "file-7HgT4uLpX1wS9qK2nVbMfA",
  "created_at": 1743986121,
  "in_progress_at": 1743986125,
  "expires_at": 1744072521,
  "finalizing_at": 1743987790,
  "completed_at": 1743987812,
  "failed_at": null,
  "expired_at": null,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {"total": 100, "completed": 95, "failed": 5},
  "usage": {
    "input_tokens": 1500,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 300},
    "total_tokens": 2000
  },
  "metadata": {"job_id": "run-2025-04-07-a", "shard": "3"}
}"#;

const FAILED: &str = r#"{
  "id": "batch_67f3a2d0c1e881909a1b2c3d4e5f6a7b",
  "object": "batch",
  "endpoint": "/v1/chat/completions",
  "model": null,
  "errors": {
    "object": "list",
    "data": [
      {
        "code": "invalid_json_line",
        "message": "This line is not parseable as valid JSON.",
        "param": null,
        "line": 3
      },
      {
        "code": "duplicate_custom_id",
        "message": "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.",
        "param": "custom_id",
        "line": 7
      }
    ]
  },
  "input_file_id": "file-Ab12Cd34Ef56Gh78Ij90Kl",
  "completion_window": "24h",
  "status": "failed",
  "output_file_id": null,
  "error_file_id": null,
  "created_at": 1743986400,
  "in_progress_at": null,
  "expires_at": 1744072800,
  "finalizing_at": null,
  "completed_at": null,
  "failed_at": 1743986403,
  "expired_at": null,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {"total": 0, "completed": 0, "failed": 0},
  "metadata": null
}"#;

const EXPIRED: &str = r#"{
  "id": "batch_abc_expired",
  "object": "batch",
  "endpoint": "/v1/embeddings",
  "errors": null,
  "input_file_id": "file-in-expired",
  "completion_window": "24h",
  "status": "expired",
  "output_file_id": "file-partial-out",
  "error_file_id": "file-partial-err",
  "created_at": 1743900000,
  "in_progress_at": 1743900030,
  "expires_at": 1743986400,
  "finalizing_at": 1743986401,
  "completed_at": null,
  "failed_at": null,
  "expired_at": 1743986460,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {"total": 50000, "completed": 41234, "failed": 12},
  "metadata": {}
}"#;

const CANCELLING: &str = r#"{
  "id": "batch_abc_cancelling",
  "object": "batch",
  "endpoint": "/v1/responses",
  "model": "gpt-5-2025-08-07",
  "errors": null,
  "input_file_id": "file-in-cancel",
  "completion_window": "24h",
  "status": "cancelling",
  "output_file_id": null,
  "error_file_id": null,
  "created_at": 1743990000,
  "in_progress_at": 1743990004,
  "expires_at": 1744076400,
  "finalizing_at": null,
  "completed_at": null,
  "failed_at": null,
  "expired_at": null,
  "cancelling_at": 1743990600,
  "cancelled_at": null,
  "request_counts": {"total": 10, "completed": 4, "failed": 0},
  "usage": {
    "input_tokens": 0,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 0,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 0
  },
  "metadata": {"description": "nightly eval"}
}"#;

/// Capitalised status, `""` for an unset file id, a field this crate does not
/// know, a `null` request count and usage without details.
const ODD: &str = r#"{
  "id": "batch_odd",
  "object": "batch",
  "endpoint": "/v1/audio/transcriptions",
  "errors": {"object": "list", "data": null},
  "input_file_id": "file-in-odd",
  "completion_window": "24h",
  "status": "Completed",
  "output_file_id": "",
  "error_file_id": "file-err-odd",
  "created_at": 1743990000,
  "completed_at": 1743999999,
  "request_counts": {"total": 2, "completed": null, "failed": 2},
  "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
  "metadata": null,
  "priority": {"tier": "flex", "weight": 0.5}
}"#;

const BATCH_PAGE: &str = r#"{
  "object": "list",
  "data": [
    {
      "id": "batch_page_1",
      "object": "batch",
      "endpoint": "/v1/chat/completions",
      "errors": null,
      "input_file_id": "file-p1",
      "completion_window": "24h",
      "status": "in_progress",
      "output_file_id": null,
      "error_file_id": null,
      "created_at": 1743990100,
      "in_progress_at": 1743990110,
      "expires_at": 1744076500,
      "finalizing_at": null,
      "completed_at": null,
      "failed_at": null,
      "expired_at": null,
      "cancelling_at": null,
      "cancelled_at": null,
      "request_counts": {"total": 3, "completed": 1, "failed": 0},
      "metadata": {"job_id": "j1", "shard": "0"}
    },
    {
      "id": "batch_page_2",
      "object": "batch",
      "endpoint": "/v1/chat/completions",
      "errors": null,
      "input_file_id": "file-p2",
      "completion_window": "24h",
      "status": "validating",
      "output_file_id": null,
      "error_file_id": null,
      "created_at": 1743990000,
      "in_progress_at": null,
      "expires_at": 1744076400,
      "finalizing_at": null,
      "completed_at": null,
      "failed_at": null,
      "expired_at": null,
      "cancelling_at": null,
      "cancelled_at": null,
      "request_counts": {"total": 0, "completed": 0, "failed": 0},
      "metadata": {"job_id": "j1", "shard": "1"}
    }
  ],
  "first_id": "batch_page_1",
  "last_id": "batch_page_2",
  "has_more": true
}"#;

const OUTPUT_FILE: &str = r#"{
  "id": "file-3kVxQ2bJtR7mN5pW8yZcDe",
  "object": "file",
  "bytes": 1048576,
  "created_at": 1743987800,
  "expires_at": null,
  "filename": "batch_67f3a1c9e5d48190b2c4f1a6d3e7b8c2_output.jsonl",
  "purpose": "batch_output",
  "status": "processed",
  "status_details": null
}"#;

const FILE_PAGE: &str = r#"{
  "object": "list",
  "data": [
    {
      "id": "file-in-1",
      "object": "file",
      "bytes": 2048,
      "created_at": 1743980000,
      "expires_at": 1746572000,
      "filename": "shard-0000.jsonl",
      "purpose": "batch",
      "status": "processed",
      "status_details": null
    },
    {
      "id": "file-eval-1",
      "object": "file",
      "bytes": 12,
      "created_at": 1743970000,
      "filename": "evals.jsonl",
      "purpose": "evals",
      "status": "uploaded"
    }
  ],
  "first_id": "file-in-1",
  "last_id": "file-eval-1",
  "has_more": false
}"#;

const EMPTY_PAGE: &str =
    r#"{"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}"#;

fn parse<T: DeserializeOwned>(s: &str) -> T {
    match serde_json::from_str(s) {
        Ok(v) => v,
        Err(e) => panic!("fixture does not parse: {e}\n{s}"),
    }
}

/// parse → serialize → parse gives the same value.
fn assert_round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(s: &str) {
    let first: T = parse(s);
    let json = serde_json::to_string(&first).expect("serialize");
    let second: T = parse(&json);
    assert_eq!(
        first, second,
        "round trip changed the value; serialized: {json}"
    );
}

#[test]
fn every_fixture_round_trips() {
    for f in [COMPLETED, FAILED, EXPIRED, CANCELLING, ODD] {
        assert_round_trip::<Batch>(f);
    }
    assert_round_trip::<List<Batch>>(BATCH_PAGE);
    assert_round_trip::<List<Batch>>(EMPTY_PAGE);
    assert_round_trip::<List<FileObject>>(FILE_PAGE);
    assert_round_trip::<FileObject>(OUTPUT_FILE);
}

#[test]
fn completed_batch() {
    let b: Batch = parse(COMPLETED);
    assert_eq!(b.id, "batch_67f3a1c9e5d48190b2c4f1a6d3e7b8c2");
    assert_eq!(b.object, "batch");
    assert_eq!(b.endpoint, Endpoint::ChatCompletions);
    assert_eq!(b.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(b.errors, None);
    assert_eq!(b.completion_window, CompletionWindow::Hours24);
    assert_eq!(b.status, BatchStatus::Completed);
    assert!(b.is_terminal());
    assert_eq!(
        b.output_file_id.as_deref(),
        Some("file-3kVxQ2bJtR7mN5pW8yZcDe")
    );
    assert_eq!(
        b.error_file_id.as_deref(),
        Some("file-7HgT4uLpX1wS9qK2nVbMfA")
    );
    assert_eq!(b.created_at, 1_743_986_121);
    assert_eq!(b.in_progress_at, Some(1_743_986_125));
    assert_eq!(b.expires_at, Some(1_744_072_521));
    assert_eq!(b.finalizing_at, Some(1_743_987_790));
    assert_eq!(b.completed_at, Some(1_743_987_812));
    assert_eq!(
        (b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at),
        (None, None, None, None)
    );
    assert_eq!(
        b.request_counts(),
        RequestCounts {
            total: 100,
            completed: 95,
            failed: 5
        }
    );
    assert_eq!(
        b.usage,
        Some(BatchUsage {
            input_tokens: 1500,
            input_tokens_details: InputTokensDetails {
                cached_tokens: 1024
            },
            output_tokens: 500,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: 300
            },
            total_tokens: 2000,
        })
    );
    assert_eq!(b.metadata_value("job_id"), Some("run-2025-04-07-a"));
    assert_eq!(b.metadata_value("shard"), Some("3"));
    assert_eq!(b.metadata_value("nope"), None);
    assert!(b.extra.is_empty());
}

#[test]
fn serialized_batch_matches_what_the_api_sends() {
    // Field for field, including the nulls: what an emulator serving this
    // type would put on the wire.
    let b: Batch = parse(COMPLETED);
    let original: Value = parse(COMPLETED);
    assert_eq!(serde_json::to_value(&b).expect("serialize"), original);
    let b: Batch = parse(FAILED);
    let original: Value = parse(FAILED);
    let mut out = serde_json::to_value(&b).expect("serialize");
    // The fixture omits `usage`; the type writes it as null.
    assert_eq!(
        out.as_object_mut().and_then(|o| o.remove("usage")),
        Some(Value::Null)
    );
    assert_eq!(out, original);
}

#[test]
fn failed_batch_with_line_errors() {
    let b: Batch = parse(FAILED);
    assert_eq!(b.status, BatchStatus::Failed);
    assert!(b.is_terminal());
    assert_eq!(b.model, None);
    assert_eq!(b.failed_at, Some(1_743_986_403));
    assert_eq!(b.output_file_id, None);
    assert_eq!(b.metadata, None);
    assert_eq!(b.usage, None);
    let errors = b.errors.as_ref().expect("errors");
    assert_eq!(errors.object.as_deref(), Some("list"));
    assert_eq!(
        b.error_list(),
        [
            BatchError {
                code: Some("invalid_json_line".into()),
                message: Some("This line is not parseable as valid JSON.".into()),
                param: None,
                line: Some(3),
            },
            BatchError {
                code: Some("duplicate_custom_id".into()),
                message: Some(
                    "The custom_id for this request is a duplicate of another request. \
                     The custom_id parameter must be unique for each request in a batch."
                        .into()
                ),
                param: Some("custom_id".into()),
                line: Some(7),
            },
        ]
    );
}

#[test]
fn expired_batch_keeps_partial_results() {
    let b: Batch = parse(EXPIRED);
    assert_eq!(b.status, BatchStatus::Expired);
    assert!(b.is_terminal());
    assert_eq!(b.endpoint, Endpoint::Embeddings);
    assert_eq!(b.model, None, "missing model");
    assert_eq!(b.expired_at, Some(1_743_986_460));
    assert_eq!(b.output_file_id.as_deref(), Some("file-partial-out"));
    assert_eq!(b.error_file_id.as_deref(), Some("file-partial-err"));
    let counts = b.request_counts();
    assert_eq!(
        counts,
        RequestCounts {
            total: 50_000,
            completed: 41_234,
            failed: 12
        }
    );
    assert_eq!(counts.pending(), 50_000 - 41_234 - 12);
    assert_eq!(b.metadata, Some(BTreeMap::new()));
}

#[test]
fn cancelling_batch_is_not_terminal() {
    let b: Batch = parse(CANCELLING);
    assert_eq!(b.status, BatchStatus::Cancelling);
    assert!(!b.is_terminal());
    assert_eq!(b.endpoint, Endpoint::Responses);
    assert_eq!(b.cancelling_at, Some(1_743_990_600));
    assert_eq!(b.cancelled_at, None);
    assert_eq!(b.usage.map(|u| u.total_tokens), Some(0));
}

#[test]
fn odd_batch_is_read_tolerantly() {
    let b: Batch = parse(ODD);
    assert_eq!(b.status, BatchStatus::Completed, "capitalised status");
    assert_eq!(
        b.endpoint,
        Endpoint::Unknown("/v1/audio/transcriptions".into())
    );
    assert_eq!(b.output_file_id, None, "empty string id");
    assert_eq!(b.error_file_id.as_deref(), Some("file-err-odd"));
    assert!(b.error_list().is_empty(), "null errors.data");
    assert_eq!(
        b.request_counts(),
        RequestCounts {
            total: 2,
            completed: 0,
            failed: 2
        }
    );
    let usage = b.usage.expect("usage");
    assert_eq!(usage.input_tokens_details.cached_tokens, 0);
    assert_eq!(usage.output_tokens_details.reasoning_tokens, 0);
    assert_eq!(usage.total_tokens, 10);
    assert_eq!(b.extra.len(), 1);
    assert_eq!(b.extra["priority"], json!({"tier": "flex", "weight": 0.5}));

    let out = serde_json::to_value(&b).expect("serialize");
    assert_eq!(
        out["priority"],
        json!({"tier": "flex", "weight": 0.5}),
        "extra written back"
    );
    assert_eq!(out["status"], json!("completed"), "status normalised");
    assert_eq!(out["output_file_id"], Value::Null);
    assert_eq!(out["endpoint"], json!("/v1/audio/transcriptions"));
}

#[test]
fn batch_list_page() {
    let page: List<Batch> = parse(BATCH_PAGE);
    assert_eq!(page.object, "list");
    assert!(page.has_more);
    assert_eq!(page.first_id.as_deref(), Some("batch_page_1"));
    assert_eq!(page.last_id.as_deref(), Some("batch_page_2"));
    assert_eq!(page.next_after(), Some("batch_page_2"));
    let ids: Vec<_> = page.data.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["batch_page_1", "batch_page_2"]);
    assert_eq!(page.data[0].status, BatchStatus::InProgress);
    assert_eq!(page.data[1].metadata_value("shard"), Some("1"));

    let empty: List<Batch> = parse(EMPTY_PAGE);
    assert!(empty.data.is_empty());
    assert_eq!(
        (empty.first_id, empty.last_id, empty.has_more),
        (None, None, false)
    );

    // `first_id`/`last_id` are optional for batches in the spec.
    let bare: List<Batch> = parse(r#"{"object":"list","data":[],"has_more":false}"#);
    assert_eq!(bare.last_id, None);
}

#[test]
fn file_objects() {
    let f: FileObject = parse(OUTPUT_FILE);
    assert_eq!(f.id, "file-3kVxQ2bJtR7mN5pW8yZcDe");
    assert_eq!(f.object, "file");
    assert_eq!(f.bytes, 1_048_576);
    assert_eq!(f.created_at, 1_743_987_800);
    assert_eq!(f.expires_at, None);
    assert_eq!(
        f.filename,
        "batch_67f3a1c9e5d48190b2c4f1a6d3e7b8c2_output.jsonl"
    );
    assert_eq!(f.purpose, FilePurpose::BatchOutput);
    assert_eq!(f.status, Some(FileStatus::Processed));
    assert_eq!(f.status_details, None);
    assert_eq!(
        serde_json::to_value(&f).expect("serialize"),
        parse::<Value>(OUTPUT_FILE)
    );

    let page: List<FileObject> = parse(FILE_PAGE);
    assert!(!page.has_more);
    assert_eq!(page.next_after(), None);
    assert_eq!(page.data[0].expires_at, Some(1_746_572_000));
    assert_eq!(page.data[0].purpose, FilePurpose::Batch);
    assert_eq!(page.data[1].purpose, FilePurpose::Evals);
    assert_eq!(page.data[1].status, Some(FileStatus::Uploaded));
    assert_eq!(page.data[1].expires_at, None, "missing key");

    let with_extra: FileObject = parse(
        r#"{"id":"file-x","object":"file","bytes":1,"created_at":1,"filename":"a.jsonl",
            "purpose":"vision-v2","status":"archived","retention":"short"}"#,
    );
    assert_eq!(with_extra.purpose, FilePurpose::Unknown("vision-v2".into()));
    assert_eq!(
        with_extra.status,
        Some(FileStatus::Unknown("archived".into()))
    );
    assert_eq!(with_extra.extra["retention"], json!("short"));
}

#[test]
fn deleted_file() {
    let d: DeletedFile = parse(r#"{"id": "file-abc123", "object": "file", "deleted": true}"#);
    assert_eq!(
        d,
        DeletedFile {
            id: "file-abc123".into(),
            object: "file".into(),
            deleted: true
        }
    );
    assert_round_trip::<DeletedFile>(r#"{"id":"file-x","object":"file","deleted":false}"#);
}

// ---- error envelope -------------------------------------------------------

fn with_request_id(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-request-id",
        HeaderValue::from_str(id).expect("header value"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

#[test]
fn rate_limit_envelope() {
    let body = br#"{
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-AbCdEf on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
        "type": "requests",
        "param": null,
        "code": "rate_limit_exceeded"
    }
}"#;
    let e = ApiError::from_response(
        StatusCode::TOO_MANY_REQUESTS,
        &with_request_id("req_5f3c0b3e8a2d4e1f9c7b6a5d4e3f2a1b"),
        body,
    );
    assert_eq!(e.status, 429);
    assert_eq!(e.error_type.as_deref(), Some("requests"));
    assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(e.param, None);
    assert_eq!(
        e.request_id.as_deref(),
        Some("req_5f3c0b3e8a2d4e1f9c7b6a5d4e3f2a1b")
    );
    assert!(e.message.starts_with("Rate limit reached for gpt-4o-mini"));
    assert_eq!(
        e.to_string(),
        "api error 429 (rate_limit_exceeded): Rate limit reached for gpt-4o-mini in organization \
         org-AbCdEf on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again \
         in 120ms."
    );
}

#[test]
fn html_500_falls_back_to_status_and_excerpt() {
    let body = b"<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n\
        <center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>cloudflare</center>\r\n\
        </body>\r\n</html>\r\n<!-- a padding comment to make the page longer than the cap ......\
        ............................................................................ -->\r\n";
    assert!(body.len() > ApiError::EXCERPT_MAX_BYTES);
    let e = ApiError::from_response(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), body);
    assert_eq!(e.status, 500);
    assert_eq!(
        (e.error_type, e.code, e.param, e.request_id),
        (None, None, None, None)
    );
    assert!(
        e.message.starts_with(
            "Internal Server Error: <html> <head><title>500 Internal Server Error</title></head> <body>"
        ),
        "{}",
        e.message
    );
    assert!(e.message.ends_with("..."), "{}", e.message);
    assert!(!e.message.contains('\r') && !e.message.contains('\n'));
    assert!(e.message.len() <= "Internal Server Error: ".len() + ApiError::EXCERPT_MAX_BYTES + 3);
}

#[test]
fn unauthorized_envelope_with_null_code() {
    let body = br#"{"error":{"message":"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).","type":"invalid_request_error","param":null,"code":null}}"#;
    let e = ApiError::from_response(StatusCode::UNAUTHORIZED, &with_request_id("req_401"), body);
    assert_eq!(e.status, 401);
    assert_eq!(e.code, None);
    assert_eq!(e.error_type.as_deref(), Some("invalid_request_error"));
    assert!(
        e.to_string()
            .starts_with("api error 401 (invalid_request_error): You didn't provide an API key.")
    );
}

#[test]
fn empty_body_gives_status_only() {
    let e = ApiError::from_response(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"");
    assert_eq!(
        e,
        ApiError {
            status: 503,
            error_type: None,
            code: None,
            message: "Service Unavailable".into(),
            param: None,
            request_id: None,
        }
    );
    assert_eq!(e.to_string(), "api error 503: Service Unavailable");
    // An unregistered status has no reason phrase.
    let odd = StatusCode::from_u16(599).expect("status");
    let e = ApiError::from_response(odd, &HeaderMap::new(), b"  \n");
    assert_eq!(e.to_string(), "api error 599: unexpected status");
}

#[test]
fn json_that_is_not_an_envelope_is_quoted() {
    let e = ApiError::from_response(
        StatusCode::NOT_FOUND,
        &HeaderMap::new(),
        br#"{"detail": "Not Found"}"#,
    );
    assert_eq!(e.message, r#"Not Found: {"detail": "Not Found"}"#);
    assert_eq!(e.code, None);
}

#[test]
fn error_envelope_round_trips() {
    let env = ErrorResponse::new("invalid_request_error", "Invalid file format")
        .with_param("file")
        .with_code("invalid_file_format");
    let json = serde_json::to_vec(&env).expect("serialize");
    let e = ApiError::from_response(StatusCode::BAD_REQUEST, &HeaderMap::new(), &json);
    assert_eq!(e.code.as_deref(), Some("invalid_file_format"));
    assert_eq!(e.param.as_deref(), Some("file"));
    assert_eq!(e.message, "Invalid file format");
    assert_eq!(
        serde_json::from_slice::<ErrorResponse>(&json).expect("parse"),
        env
    );
}

// ---- properties -------------------------------------------------------------

proptest! {
    /// Status mapping is total and stable: any string maps to a status, and
    /// mapping its wire string again gives the same status.
    #[test]
    fn status_mapping_is_total(s in any::<String>()) {
        let st = BatchStatus::parse(&s);
        prop_assert_eq!(BatchStatus::parse(st.as_str()), st.clone());
        let json = serde_json::to_string(&s).expect("serialize");
        prop_assert_eq!(serde_json::from_str::<BatchStatus>(&json).expect("parse"), st);
    }

    /// Known statuses are recognised whatever their case and separators.
    #[test]
    fn known_statuses_ignore_case(idx in 0usize..8, upper in proptest::collection::vec(any::<bool>(), 16)) {
        let st = BatchStatus::KNOWN[idx].clone();
        let mangled: String = st
            .as_str()
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(BatchStatus::parse(&format!(" {mangled}\t")), st);
    }

    /// Any body gives an error value with a non-empty, bounded message.
    #[test]
    fn api_error_never_fails(code in 400u16..600, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let status = StatusCode::from_u16(code).expect("status");
        let e = ApiError::from_response(status, &HeaderMap::new(), &body);
        prop_assert_eq!(e.status, code);
        prop_assert!(!e.message.is_empty());
        if e.code.is_none() && e.error_type.is_none() {
            // Fallback: reason + ": " + at most one char per excerpt byte + "...".
            prop_assert!(e.message.chars().count() <= 40 + ApiError::EXCERPT_MAX_BYTES + 3);
        }
    }
}
