//! Golden tests for the level-1 request builders and response parsers: every
//! built request is compared field by field (method, URI, every header, the
//! sensitivity of `Authorization`, exact body bytes) with the expected one.

use std::collections::BTreeMap;

use batch_core::Endpoint;
use batch_core::api::{
    ApiBase, ApiConfig, ApiError, ApiKey, BatchStatus, Boundary, ConfigError, CreateBatch,
    ExpiresAfter, FilePurpose, IdProblem, ListBatches, ListFiles, ListOrder, Outgoing, ParamError,
    RequestError, ResponseError, ShardRef, UploadFile, cancel_batch, create_batch, delete_file,
    file_content, list_batches, list_files, parse_api_error, parse_batch, parse_batch_list,
    parse_deleted_file, parse_file, parse_file_list, retrieve_batch, retrieve_file, upload_file,
    upload_file_bytes,
};
use batch_core::http::{self, Method, Request};
use bytes::Bytes;

const KEY: &str = "sk-proj-GOLDEN-key-0123456789abcdef";
const UA: &str = concat!("openai-batch/", env!("CARGO_PKG_VERSION"));

fn config() -> ApiConfig {
    ApiConfig::new(KEY)
        .with_organization("org-golden")
        .with_project("proj_golden")
}

fn api() -> ApiBase {
    ApiBase::new(&config()).expect("valid config")
}

/// The headers every request carries, plus `extra`, sorted by name.
fn headers_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let auth = format!("Bearer {KEY}");
    let mut all: Vec<(String, String)> = [
        ("authorization", auth.as_str()),
        ("user-agent", UA),
        ("openai-organization", "org-golden"),
        ("openai-project", "proj_golden"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    all.sort();
    all
}

/// Checks method, URI, the complete header list, the sensitivity of
/// `Authorization` and the body.
fn assert_request(
    req: &Request<Outgoing>,
    method: Method,
    uri: &str,
    headers: Vec<(String, String)>,
    body: &Outgoing,
) {
    assert_eq!(req.method(), method);
    assert_eq!(req.uri().to_string(), uri);
    assert_eq!(req.version(), http::Version::HTTP_11);
    let mut got: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().expect("ascii header").to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, headers, "headers of {method} {uri}");
    let auth = req.headers().get("authorization").expect("authorization");
    assert!(
        auth.is_sensitive(),
        "Authorization must be marked sensitive"
    );
    for (name, value) in req.headers() {
        if name != "authorization" {
            assert!(!value.is_sensitive(), "{name} should not be sensitive");
        }
    }
    assert_eq!(req.body(), body);
    if let Some(len) = req.headers().get("content-length") {
        assert_eq!(len.to_str().expect("len"), req.body().len().to_string());
    }
}

#[test]
fn retrieve_batch_golden() {
    let req = retrieve_batch(&api(), "batch_abc123").expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/batches/batch_abc123",
        headers_with(&[("accept", "application/json")]),
        &Outgoing::Empty,
    );
}

#[test]
fn cancel_batch_golden() {
    let req = cancel_batch(&api(), "batch_abc123").expect("build");
    assert_request(
        &req,
        Method::POST,
        "https://api.openai.com/v1/batches/batch_abc123/cancel",
        headers_with(&[("accept", "application/json"), ("content-length", "0")]),
        &Outgoing::Empty,
    );
}

#[test]
fn list_batches_golden() {
    let req = list_batches(&api(), &ListBatches::default()).expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/batches",
        headers_with(&[("accept", "application/json")]),
        &Outgoing::Empty,
    );
    let query = ListBatches {
        after: Some("batch_abc 1/2".into()),
        limit: Some(100),
    };
    let req = list_batches(&api(), &query).expect("build");
    assert_eq!(
        req.uri().to_string(),
        "https://api.openai.com/v1/batches?after=batch_abc%201%2F2&limit=100"
    );
    for (limit, ok) in [(0, false), (1, true), (100, true), (101, false)] {
        let q = ListBatches {
            after: None,
            limit: Some(limit),
        };
        assert_eq!(list_batches(&api(), &q).is_ok(), ok, "limit {limit}");
    }
    let q = ListBatches {
        after: Some(String::new()),
        limit: None,
    };
    assert_eq!(
        list_batches(&api(), &q).err(),
        Some(RequestError::Param(ParamError::Empty { param: "after" }))
    );
}

#[test]
fn create_batch_golden() {
    let mut body = CreateBatch::new("file-abc123", Endpoint::ChatCompletions);
    body.metadata = Some(BTreeMap::from([
        ("job_id".to_owned(), "run-1".to_owned()),
        ("shard".to_owned(), "0".to_owned()),
    ]));
    body.output_expires_after = Some(ExpiresAfter::after_creation(86_400));
    let req = create_batch(&api(), &body).expect("build");
    let json: &'static [u8] = br#"{"input_file_id":"file-abc123","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"job_id":"run-1","shard":"0"},"output_expires_after":{"anchor":"created_at","seconds":86400}}"#;
    assert_request(
        &req,
        Method::POST,
        "https://api.openai.com/v1/batches",
        headers_with(&[
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("content-length", &json.len().to_string()),
        ]),
        &Outgoing::Json(Bytes::from_static(json)),
    );

    let minimal = CreateBatch::new("file-abc123", Endpoint::Embeddings);
    let req = create_batch(&api(), &minimal).expect("build");
    assert_eq!(
        req.body(),
        &Outgoing::Json(Bytes::from_static(
            br#"{"input_file_id":"file-abc123","endpoint":"/v1/embeddings","completion_window":"24h"}"#
        ))
    );
}

#[test]
fn create_batch_refuses_invalid_bodies() {
    let mut body = CreateBatch::new("file-abc123", Endpoint::ChatCompletions);
    body.metadata = Some((0..17).map(|i| (format!("k{i}"), String::new())).collect());
    assert_eq!(
        create_batch(&api(), &body).err(),
        Some(RequestError::Param(ParamError::TooManyMetadataPairs {
            count: 17
        }))
    );
}

#[test]
fn retrieve_and_delete_file_golden() {
    let req = retrieve_file(&api(), "file-abc123").expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/files/file-abc123",
        headers_with(&[("accept", "application/json")]),
        &Outgoing::Empty,
    );
    let req = delete_file(&api(), "file-abc123").expect("build");
    assert_request(
        &req,
        Method::DELETE,
        "https://api.openai.com/v1/files/file-abc123",
        headers_with(&[("accept", "application/json")]),
        &Outgoing::Empty,
    );
}

#[test]
fn file_content_golden() {
    let req = file_content(&api(), "file-out1", None).expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/files/file-out1/content",
        headers_with(&[("accept", "application/binary")]),
        &Outgoing::Empty,
    );
    let req = file_content(&api(), "file-out1", Some(1_048_576)).expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/files/file-out1/content",
        headers_with(&[
            ("accept", "application/binary"),
            ("range", "bytes=1048576-"),
        ]),
        &Outgoing::Empty,
    );
}

#[test]
fn list_files_golden() {
    let req = list_files(&api(), &ListFiles::default()).expect("build");
    assert_request(
        &req,
        Method::GET,
        "https://api.openai.com/v1/files",
        headers_with(&[("accept", "application/json")]),
        &Outgoing::Empty,
    );
    let query = ListFiles {
        purpose: Some(FilePurpose::Batch),
        limit: Some(10_000),
        order: Some(ListOrder::Asc),
        after: Some("file-abc=&?#".into()),
    };
    let req = list_files(&api(), &query).expect("build");
    assert_eq!(
        req.uri().to_string(),
        "https://api.openai.com/v1/files?purpose=batch&limit=10000&order=asc&after=file-abc%3D%26%3F%23"
    );
    let desc = ListFiles {
        order: Some(ListOrder::Desc),
        ..ListFiles::default()
    };
    assert_eq!(
        list_files(&api(), &desc).expect("build").uri().to_string(),
        "https://api.openai.com/v1/files?order=desc"
    );
    let too_many = ListFiles {
        limit: Some(10_001),
        ..ListFiles::default()
    };
    assert_eq!(
        list_files(&api(), &too_many).err(),
        Some(RequestError::Param(ParamError::OutOfRange {
            param: "limit",
            value: 10_001,
            min: 1,
            max: 10_000
        }))
    );
}

const BOUNDARY_42: &str = "openai-batch-boundary-bdd732262feb6e9528efe333b266f103";

#[test]
fn boundary_derivation_is_pinned() {
    // Changing the derivation changes every upload's bytes; do it on purpose only.
    assert_eq!(Boundary::from_seed(42).as_str(), BOUNDARY_42);
}

#[test]
fn upload_file_golden() {
    let upload = UploadFile::batch_input("shard-0003.jsonl", 42);
    let shard = ShardRef {
        index: 3,
        len: 1234,
    };
    let req = upload_file(&api(), &upload, shard).expect("build");

    let head = format!(
        "--{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"purpose\"\r\n\
         \r\n\
         batch\r\n\
         --{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"shard-0003.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\
         \r\n"
    );
    let tail = format!("\r\n--{BOUNDARY_42}--\r\n");
    let len = (head.len() + 1234 + tail.len()) as u64;
    assert_eq!(len, 282 + 1234 + 62, "head 282 bytes, tail 62 bytes");
    assert_request(
        &req,
        Method::POST,
        "https://api.openai.com/v1/files",
        headers_with(&[
            ("accept", "application/json"),
            (
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY_42}"),
            ),
            ("content-length", &len.to_string()),
        ]),
        &Outgoing::Multipart {
            head: head.into(),
            shard,
            tail: tail.into(),
            len,
        },
    );
}

#[test]
fn upload_file_with_expiry_golden() {
    let mut upload = UploadFile::batch_input("in \"q\"\r\n.jsonl", 42);
    upload.expires_after = Some(ExpiresAfter::after_creation(3600));
    let shard = ShardRef { index: 0, len: 0 };
    let req = upload_file(&api(), &upload, shard).expect("build");
    let head = format!(
        "--{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"expires_after[anchor]\"\r\n\r\ncreated_at\r\n\
         --{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"expires_after[seconds]\"\r\n\r\n3600\r\n\
         --{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"in %22q%22%0D%0A.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY_42}--\r\n");
    let len = (head.len() + tail.len()) as u64;
    assert_eq!(
        req.body(),
        &Outgoing::Multipart {
            head: head.into(),
            shard,
            tail: tail.into(),
            len
        }
    );
    assert_eq!(req.headers()["content-length"], len.to_string().as_str());

    upload.expires_after = Some(ExpiresAfter::after_creation(60));
    assert!(matches!(
        upload_file(&api(), &upload, shard),
        Err(RequestError::Param(ParamError::OutOfRange {
            value: 60,
            ..
        }))
    ));
    let unnamed = UploadFile::batch_input("", 42);
    assert_eq!(
        upload_file(&api(), &unnamed, shard).err(),
        Some(RequestError::Param(ParamError::Empty { param: "filename" }))
    );
}

#[test]
fn upload_file_bytes_golden() {
    let content =
        b"{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n";
    let upload = UploadFile::batch_input("small.jsonl", 42);
    let req = upload_file_bytes(&api(), &upload, content).expect("build");
    let mut expected = format!(
        "--{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{BOUNDARY_42}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"small.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(content);
    expected.extend_from_slice(format!("\r\n--{BOUNDARY_42}--\r\n").as_bytes());
    assert_request(
        &req,
        Method::POST,
        "https://api.openai.com/v1/files",
        headers_with(&[
            ("accept", "application/json"),
            (
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY_42}"),
            ),
            ("content-length", &expected.len().to_string()),
        ]),
        &Outgoing::Bytes(Bytes::from(expected.clone())),
    );

    // The same form as the streamed variant, byte for byte.
    let shard = ShardRef {
        index: 0,
        len: content.len() as u64,
    };
    let streamed = upload_file(&api(), &upload, shard).expect("build");
    let Outgoing::Multipart {
        head, tail, len, ..
    } = streamed.body()
    else {
        panic!("expected a multipart body")
    };
    let joined = [&head[..], content, &tail[..]].concat();
    assert_eq!(joined, expected);
    assert_eq!(*len, expected.len() as u64);
}

#[test]
fn upload_file_bytes_refuses_content_holding_the_delimiter() {
    let upload = UploadFile::batch_input("x.jsonl", 42);
    let inside = format!("{{\"a\":1}}\r\n--{BOUNDARY_42}--\r\n");
    assert_eq!(
        upload_file_bytes(&api(), &upload, inside.as_bytes()).err(),
        Some(RequestError::BoundaryInContent)
    );
    let at_start = format!("--{BOUNDARY_42}\r\n");
    assert_eq!(
        upload_file_bytes(&api(), &upload, at_start.as_bytes()).err(),
        Some(RequestError::BoundaryInContent)
    );
    // The boundary text alone, without the leading dashes, is harmless.
    let harmless = format!("{{\"note\":\"{BOUNDARY_42}\"}}\n");
    assert!(upload_file_bytes(&api(), &upload, harmless.as_bytes()).is_ok());
}

#[test]
fn minimal_config_sends_no_org_or_project() {
    let api = ApiBase::new(&ApiConfig::new(KEY)).expect("config");
    let req = retrieve_batch(&api, "batch_1").expect("build");
    let mut names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "authorization", "user-agent"]);
    assert_eq!(req.headers()["user-agent"], UA);
}

#[test]
fn other_base_urls() {
    for (base, expected) in [
        (
            "http://127.0.0.1:4010",
            "http://127.0.0.1:4010/batches/batch_1",
        ),
        (
            "http://127.0.0.1:4010/",
            "http://127.0.0.1:4010/batches/batch_1",
        ),
        (
            "http://localhost:8080/proxy/openai/v1/",
            "http://localhost:8080/proxy/openai/v1/batches/batch_1",
        ),
        (
            "https://gateway.example/v1",
            "https://gateway.example/v1/batches/batch_1",
        ),
    ] {
        let api = ApiBase::new(&ApiConfig::new(KEY).with_base_url(base)).expect(base);
        let req = retrieve_batch(&api, "batch_1").expect("build");
        assert_eq!(req.uri().to_string(), expected, "base {base}");
    }
    let custom_ua = ApiConfig::new(KEY).with_user_agent("my-app/2.0");
    let req = retrieve_batch(&ApiBase::new(&custom_ua).expect("config"), "b").expect("build");
    assert_eq!(req.headers()["user-agent"], "my-app/2.0");
    assert!(matches!(
        ApiBase::new(&ApiConfig::new(KEY).with_base_url("https://h/v1#x")),
        Err(ConfigError::InvalidBaseUrl { .. })
    ));
}

/// Every builder, once, with valid arguments.
fn every_request(api: &ApiBase) -> Vec<Request<Outgoing>> {
    let upload = UploadFile::batch_input("s.jsonl", 1);
    vec![
        upload_file(api, &upload, ShardRef { index: 0, len: 5 }).expect("upload"),
        upload_file_bytes(api, &upload, b"{}\n").expect("upload bytes"),
        retrieve_file(api, "file-1").expect("retrieve file"),
        delete_file(api, "file-1").expect("delete file"),
        file_content(api, "file-1", Some(5)).expect("content"),
        list_files(api, &ListFiles::default()).expect("list files"),
        create_batch(api, &CreateBatch::new("file-1", Endpoint::Responses)).expect("create"),
        retrieve_batch(api, "batch_1").expect("retrieve batch"),
        cancel_batch(api, "batch_1").expect("cancel"),
        list_batches(api, &ListBatches::default()).expect("list batches"),
    ]
}

#[test]
fn the_key_never_appears_in_debug_output() {
    let config = config();
    let api = api();
    for req in every_request(&api) {
        let debug = format!("{req:?}");
        assert!(!debug.contains(KEY), "key in {debug}");
        assert!(!debug.contains("GOLDEN"), "part of the key in {debug}");
        assert!(
            debug.contains("Sensitive"),
            "authorization is shown masked: {debug}"
        );
        // The key is still sent.
        assert_eq!(
            req.headers()["authorization"],
            format!("Bearer {KEY}").as_str()
        );
    }
    for text in [
        format!("{config:?}"),
        format!("{config:#?}"),
        format!("{api:?}"),
        format!("{:?}", config.api_key),
        config.api_key.to_string(),
    ] {
        assert!(!text.contains("GOLDEN"), "key in {text}");
    }
    assert_eq!(format!("{:?}", ApiKey::new(KEY)), "ApiKey(****)");
    assert_eq!(ApiKey::new(KEY).to_string(), "ApiKey(****)");
    assert_eq!(ApiKey::new(KEY).expose_secret(), KEY);
    assert!(format!("{config:?}").contains("ApiKey(****)"));
}

#[test]
fn ids_are_validated_before_building() {
    let api = api();
    type Builder = fn(&ApiBase, &str) -> Result<Request<Outgoing>, RequestError>;
    let builders: [(&str, Builder); 5] = [
        ("file id", retrieve_file),
        ("file id", delete_file),
        ("file id", |a, id| file_content(a, id, None)),
        ("batch id", retrieve_batch),
        ("batch id", cancel_batch),
    ];
    let bad: [(&str, IdProblem); 12] = [
        ("", IdProblem::Empty),
        ("..", IdProblem::DotSegment),
        (".", IdProblem::DotSegment),
        ("a/../b", IdProblem::Char('/')),
        ("batch_1/cancel", IdProblem::Char('/')),
        ("batch_1?x=1", IdProblem::Char('?')),
        ("batch_1#x", IdProblem::Char('#')),
        ("batch%2F1", IdProblem::Char('%')),
        ("batch 1", IdProblem::Char(' ')),
        ("batch_1\n", IdProblem::Char('\n')),
        ("batch_\u{0}", IdProblem::Char('\u{0}')),
        ("bätch", IdProblem::Char('ä')),
    ];
    for (what, build) in builders {
        for (id, problem) in &bad {
            assert_eq!(
                build(&api, id).err(),
                Some(RequestError::InvalidId {
                    what,
                    id: (*id).to_owned(),
                    problem: problem.clone()
                }),
                "{what} {id:?}"
            );
        }
        assert!(build(&api, "file-AbC_1.2~x").is_ok());
    }
    let e = retrieve_batch(&api, "a/b").expect_err("invalid");
    assert_eq!(e.to_string(), "invalid batch id \"a/b\": contains '/'");
}

// ---- parsers ------------------------------------------------------------------

fn head(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("response").into_parts().0
}

const BATCH: &[u8] = br#"{"id":"batch_1","object":"batch","endpoint":"/v1/chat/completions","errors":null,"input_file_id":"file-1","completion_window":"24h","status":"in_progress","output_file_id":null,"error_file_id":null,"created_at":1714508499,"in_progress_at":1714508500,"expires_at":1714594899,"finalizing_at":null,"completed_at":null,"failed_at":null,"expired_at":null,"cancelling_at":null,"cancelled_at":null,"request_counts":{"total":3,"completed":1,"failed":0},"metadata":{"job_id":"j"}}"#;

const FILE: &[u8] = br#"{"id":"file-1","object":"file","bytes":120,"created_at":1714508400,"expires_at":1717100400,"filename":"s.jsonl","purpose":"batch","status":"processed","status_details":null}"#;

#[test]
fn parsers_read_2xx_bodies() {
    let ok = head(200, &[("content-type", "application/json")]);
    let b = parse_batch(&ok, BATCH).expect("batch");
    assert_eq!(
        (b.id.as_str(), &b.status),
        ("batch_1", &BatchStatus::InProgress)
    );
    assert_eq!(b.request_counts().completed, 1);

    let f = parse_file(&ok, FILE).expect("file");
    assert_eq!(
        (f.id.as_str(), f.bytes, &f.purpose),
        ("file-1", 120, &FilePurpose::Batch)
    );

    let d = parse_deleted_file(&ok, br#"{"id":"file-1","object":"file","deleted":true}"#)
        .expect("deleted");
    assert!(d.deleted);

    let page = [
        &br#"{"object":"list","data":["#[..],
        BATCH,
        br#"],"first_id":"batch_1","last_id":"batch_1","has_more":true}"#,
    ]
    .concat();
    let list = parse_batch_list(&ok, &page).expect("batch list");
    assert_eq!(list.data.len(), 1);
    assert_eq!(list.next_after(), Some("batch_1"));

    let page = [
        &br#"{"object":"list","data":["#[..],
        FILE,
        br#"],"first_id":"file-1","last_id":"file-1","has_more":false}"#,
    ]
    .concat();
    let list = parse_file_list(&ok, &page).expect("file list");
    assert_eq!(list.data[0].filename, "s.jsonl");
    assert_eq!(list.next_after(), None);

    // Any 2xx counts, e.g. a proxy answering 201.
    assert!(parse_batch(&head(201, &[]), BATCH).is_ok());
}

#[test]
fn parsers_turn_non_2xx_into_api_errors() {
    let h = head(429, &[("x-request-id", "req_abc"), ("retry-after", "20")]);
    let body = br#"{"error":{"message":"Too many requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let expected = ApiError {
        status: 429,
        error_type: Some("requests".into()),
        code: Some("rate_limit_exceeded".into()),
        message: "Too many requests".into(),
        param: None,
        request_id: Some("req_abc".into()),
    };
    assert_eq!(parse_api_error(&h, body), expected);
    assert_eq!(
        parse_batch(&h, body),
        Err(ResponseError::Api(Box::new(expected.clone())))
    );
    assert_eq!(
        parse_file(&h, body).err().map(|e| e.to_string()),
        Some(expected.to_string())
    );

    // A 404 whose body happens to be a valid batch is still an error.
    let e = parse_batch(&head(404, &[]), BATCH).expect_err("404");
    assert!(
        matches!(e, ResponseError::Api(ref a) if a.status == 404),
        "{e:?}"
    );

    // A 3xx is not followed and not success.
    let e =
        parse_file_list(&head(302, &[("location", "https://elsewhere/")]), b"").expect_err("302");
    assert!(
        matches!(e, ResponseError::Api(ref a) if a.message == "Found"),
        "{e:?}"
    );
}

#[test]
fn parsers_report_bad_2xx_bodies() {
    let ok = head(200, &[]);
    let e = parse_batch(&ok, b"<html>gateway says hi</html>").expect_err("html");
    let ResponseError::Decode {
        status,
        what,
        detail,
        excerpt,
    } = e.clone()
    else {
        panic!("expected Decode, got {e:?}")
    };
    assert_eq!((status, what), (200, "batch"));
    assert!(detail.contains("line 1 column 1"), "{detail}");
    assert_eq!(excerpt, "<html>gateway says hi</html>");
    assert!(
        e.to_string()
            .starts_with("cannot decode batch from a 200 response: "),
        "{e}"
    );

    // Valid JSON of the wrong shape: a file where a batch was expected.
    let e = parse_batch(&ok, FILE).expect_err("wrong shape");
    assert!(
        matches!(e, ResponseError::Decode { what: "batch", .. }),
        "{e:?}"
    );

    // A long body is excerpted, not copied whole.
    let long = vec![b'x'; 10_000];
    let Err(ResponseError::Decode { excerpt, .. }) = parse_file(&ok, &long) else {
        panic!("expected Decode")
    };
    assert_eq!(excerpt.len(), ApiError::EXCERPT_MAX_BYTES + 3);

    let e = parse_batch_list(&ok, b"").expect_err("empty");
    assert!(
        matches!(e, ResponseError::Decode { what: "batch list", ref excerpt, .. } if excerpt.is_empty())
    );
}
