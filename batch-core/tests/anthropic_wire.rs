//! Golden tests of Anthropic's Message Batches requests and wire types:
//! exact methods, URLs, headers and bodies, and the documented example
//! objects parsed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batch_core::anthropic::{
    self, ListMessageBatches, MessageBatch, ProcessingStatus, parse_message_batch,
    parse_message_batch_page,
};
use batch_core::api::{ApiBase, ApiConfig, BatchStatus, Outgoing, RequestError, ShardRef};
use batch_core::http::{self, Method};
use batch_core::provider::{Protocol, Provider, ProviderKind, api_config_for};

fn api() -> ApiBase {
    ApiBase::new(&ApiConfig::anthropic("sk-ant-test")).unwrap()
}

fn header<'a>(r: &'a http::Request<Outgoing>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn every_request_carries_the_key_and_version_headers() {
    let api = api();
    let reqs = [
        anthropic::retrieve_batch(&api, "msgbatch_1").unwrap(),
        anthropic::cancel_batch(&api, "msgbatch_1").unwrap(),
        anthropic::list_batches(&api, &ListMessageBatches::newest(20)).unwrap(),
        anthropic::batch_results(&api, "msgbatch_1", None, None).unwrap(),
        anthropic::delete_batch(&api, "msgbatch_1").unwrap(),
        anthropic::create_batch(&api, ShardRef { index: 0, len: 10 }).unwrap(),
    ];
    for r in &reqs {
        assert_eq!(header(r, "x-api-key"), Some("sk-ant-test"));
        assert!(r.headers().get("x-api-key").unwrap().is_sensitive());
        assert_eq!(header(r, "anthropic-version"), Some("2023-06-01"));
        assert_eq!(header(r, "authorization"), None);
        assert!(
            !format!("{r:?}").contains("sk-ant-test"),
            "the key in Debug"
        );
    }
    let beta = Provider::anthropic().with_header("anthropic-beta", "message-batches-2024-09-24");
    let api = ApiBase::new(&ApiConfig::anthropic("k").with_provider(beta)).unwrap();
    let r = anthropic::retrieve_batch(&api, "msgbatch_1").unwrap();
    assert_eq!(
        header(&r, "anthropic-beta"),
        Some("message-batches-2024-09-24")
    );
    let v = Provider::anthropic().with_anthropic_version("2024-01-01");
    let api = ApiBase::new(&ApiConfig::anthropic("k").with_provider(v)).unwrap();
    let r = anthropic::retrieve_batch(&api, "msgbatch_1").unwrap();
    let versions: Vec<_> = r.headers().get_all("anthropic-version").iter().collect();
    assert_eq!(versions, ["2024-01-01"]);
}

#[test]
fn exact_urls_and_methods() {
    let api = api();
    let cases = [
        (
            anthropic::retrieve_batch(&api, "msgbatch_1").unwrap(),
            Method::GET,
            "https://api.anthropic.com/v1/messages/batches/msgbatch_1",
        ),
        (
            anthropic::cancel_batch(&api, "msgbatch_1").unwrap(),
            Method::POST,
            "https://api.anthropic.com/v1/messages/batches/msgbatch_1/cancel",
        ),
        (
            anthropic::delete_batch(&api, "msgbatch_1").unwrap(),
            Method::DELETE,
            "https://api.anthropic.com/v1/messages/batches/msgbatch_1",
        ),
        (
            anthropic::list_batches(&api, &ListMessageBatches::older_than("msgbatch_9", 100))
                .unwrap(),
            Method::GET,
            "https://api.anthropic.com/v1/messages/batches?limit=100&after_id=msgbatch_9",
        ),
        (
            anthropic::batch_results(&api, "msgbatch_1", None, None).unwrap(),
            Method::GET,
            "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
        ),
    ];
    for (r, method, uri) in cases {
        assert_eq!(r.method(), method);
        assert_eq!(r.uri().to_string(), uri);
    }
    assert!(anthropic::list_batches(&api, &ListMessageBatches::newest(1001)).is_err());
    assert!(anthropic::retrieve_batch(&api, "../x").is_err());
}

#[test]
fn the_create_body_is_streamed_from_the_shard_between_a_head_and_a_tail() {
    let api = api();
    let r = anthropic::create_batch(
        &api,
        ShardRef {
            index: 3,
            len: 1000,
        },
    )
    .unwrap();
    assert_eq!(r.method(), Method::POST);
    assert_eq!(
        r.uri().to_string(),
        "https://api.anthropic.com/v1/messages/batches"
    );
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(header(&r, "content-length"), Some("1015"));
    let Outgoing::Multipart {
        head,
        shard,
        tail,
        len,
    } = r.body()
    else {
        panic!("expected a streamed body");
    };
    assert_eq!(&head[..], b"{\"requests\":[");
    assert_eq!(&tail[..], b"]}");
    assert_eq!(
        *shard,
        ShardRef {
            index: 3,
            len: 1000
        }
    );
    assert_eq!(*len, 1015);
    let small =
        anthropic::create_batch_bytes(&api, b"{\"custom_id\":\"a\",\"params\":{}}\n").unwrap();
    let Outgoing::Json(b) = small.body() else {
        panic!("expected a JSON body");
    };
    assert_eq!(
        &b[..],
        b"{\"requests\":[{\"custom_id\":\"a\",\"params\":{}}\n]}"
    );
}

#[test]
fn results_follow_results_url_only_on_the_configured_origin() {
    let api = api();
    let same = anthropic::batch_results(
        &api,
        "msgbatch_1",
        Some("https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"),
        Some(500),
    )
    .unwrap();
    assert_eq!(
        same.uri().to_string(),
        "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"
    );
    assert_eq!(header(&same, "range"), Some("bytes=500-"));
    assert_eq!(header(&same, "x-api-key"), Some("sk-ant-test"));
    for url in [
        "https://evil.example/v1/messages/batches/msgbatch_1/results",
        "http://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
        "https://api.anthropic.com:8443/v1/messages/batches/msgbatch_1/results",
        "https://user@api.anthropic.com/v1/x",
        "/v1/messages/batches/msgbatch_1/results",
    ] {
        let err = anthropic::batch_results(&api, "msgbatch_1", Some(url), None).unwrap_err();
        assert!(
            matches!(err, RequestError::ForeignOrigin { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("sk-ant-test"));
    }
}

#[test]
fn the_documented_batch_object_parses_and_maps() {
    // The example of https://docs.anthropic.com/en/api/creating-message-batches.
    let doc = r#"{
      "archived_at": "2024-08-20T18:37:24.100435Z",
      "cancel_initiated_at": "2024-08-20T18:37:24.100435Z",
      "created_at": "2024-08-20T18:37:24.100435Z",
      "ended_at": "2024-08-20T18:37:24.100435Z",
      "expires_at": "2024-08-20T18:37:24.100435Z",
      "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
      "processing_status": "in_progress",
      "request_counts": {"canceled": 10, "errored": 30, "expired": 10, "processing": 100, "succeeded": 50},
      "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results",
      "type": "message_batch"
    }"#;
    let head = http::Response::new(()).into_parts().0;
    let b: MessageBatch = parse_message_batch(&head, doc.as_bytes()).unwrap();
    assert_eq!(b.processing_status, ProcessingStatus::InProgress);
    assert_eq!(b.request_counts.total(), 200);
    assert_eq!(b.created_at_secs(), Some(1_724_179_044));
    let view = b.to_batch();
    assert_eq!(view.id, "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(view.status, BatchStatus::InProgress);
    let c = view.request_counts();
    assert_eq!((c.total, c.completed, c.failed), (200, 50, 30));
    assert_eq!(
        view.extra
            .get(anthropic::RESULTS_URL)
            .and_then(|v| v.as_str()),
        b.results_url.as_deref()
    );

    let page = format!(r#"{{"data":[{doc}],"has_more":true,"first_id":"a","last_id":"b"}}"#);
    let p = parse_message_batch_page(&head, page.as_bytes()).unwrap();
    assert_eq!(p.data.len(), 1);
    assert!(p.has_more);
    assert_eq!(p.last_id.as_deref(), Some("b"));

    // An error answer reads through the shared error type.
    let mut err_head = http::Response::new(()).into_parts().0;
    err_head.status = http::StatusCode::from_u16(529).unwrap();
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let e = parse_message_batch(&err_head, body).unwrap_err();
    assert!(e.to_string().contains("Overloaded"), "{e}");
    assert!(e.to_string().contains("overloaded_error"), "{e}");
}

#[test]
fn the_provider_preset_and_environment() {
    let p = Provider::anthropic();
    assert_eq!(p.protocol, Protocol::AnthropicMessageBatches);
    assert_eq!(Provider::openai().protocol, Protocol::OpenAiFiles);
    assert_eq!(p.kind, ProviderKind::Anthropic);
    assert_eq!(
        ProviderKind::parse("Anthropic"),
        Some(ProviderKind::Anthropic)
    );
    let limits = p.shard_limits();
    assert_eq!(limits.max_requests, 100_000);
    assert_eq!(limits.max_bytes, 256_000_000);
    let env = |k: &str| match k {
        "ANTHROPIC_API_KEY" => Some("sk-ant-env".to_owned()),
        "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".to_owned()),
        _ => None,
    };
    let cfg = api_config_for(ProviderKind::Anthropic, env).unwrap();
    assert_eq!(cfg.base_url, "http://127.0.0.1:9/");
    let api = ApiBase::new(&cfg).unwrap();
    let r = anthropic::retrieve_batch(&api, "msgbatch_1").unwrap();
    assert_eq!(
        r.uri().to_string(),
        "http://127.0.0.1:9/v1/messages/batches/msgbatch_1"
    );
    let missing = api_config_for(ProviderKind::Anthropic, |_| None).unwrap_err();
    assert!(missing.to_string().contains("ANTHROPIC_API_KEY"));
    assert!(!format!("{api:?}").contains("sk-ant-env"));
}
