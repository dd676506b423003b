//! Golden tests of the request builders per provider: the URL (path layout
//! and query), how the key travels, extra headers, the default input file
//! expiry, and the completion windows each service accepts.

use batch_core::Endpoint;
use batch_core::api::{
    ApiBase, ApiConfig, CompletionWindow, ConfigError, CreateBatch, ListBatches, ListFiles,
    Outgoing, Provider, RequestError, ShardRef, UploadFile, cancel_batch, create_batch,
    delete_file, file_content, list_batches, list_files, retrieve_batch, retrieve_file,
    upload_file, upload_file_bytes,
};
use batch_core::http::Request;
use batch_core::input::BatchRequest;
use batch_core::job::{JobConfig, PlanBuilder, SettingsError, ShardLimits};

const KEY: &str = "azure-GOLDEN-key-0123456789abcdef";

/// Every builder, once, with valid arguments.
fn every_request(api: &ApiBase) -> Vec<Request<Outgoing>> {
    let upload = UploadFile::batch_input("s.jsonl", 1);
    vec![
        upload_file(api, &upload, ShardRef { index: 0, len: 5 }).expect("upload"),
        upload_file_bytes(api, &upload, b"{}\n").expect("upload bytes"),
        retrieve_file(api, "file-1").expect("retrieve file"),
        delete_file(api, "file-1").expect("delete file"),
        file_content(api, "file-1", Some(5)).expect("content"),
        list_files(
            api,
            &ListFiles {
                limit: Some(2),
                ..ListFiles::default()
            },
        )
        .expect("list files"),
        create_batch(api, &CreateBatch::new("file-1", Endpoint::ChatCompletions)).expect("create"),
        retrieve_batch(api, "batch_1").expect("retrieve batch"),
        cancel_batch(api, "batch_1").expect("cancel"),
        list_batches(api, &ListBatches::default()).expect("list batches"),
    ]
}

fn uris(api: &ApiBase) -> Vec<String> {
    every_request(api)
        .iter()
        .map(|r| format!("{} {}", r.method(), r.uri()))
        .collect()
}

fn api(base: &str, provider: Provider) -> ApiBase {
    ApiBase::new(
        &ApiConfig::new(KEY)
            .with_base_url(base)
            .with_provider(provider),
    )
    .expect("valid config")
}

#[test]
fn openai_default_is_unchanged() {
    let api = ApiBase::new(&ApiConfig::new(KEY)).expect("config");
    assert_eq!(
        uris(&api),
        [
            "POST https://api.openai.com/v1/files",
            "POST https://api.openai.com/v1/files",
            "GET https://api.openai.com/v1/files/file-1",
            "DELETE https://api.openai.com/v1/files/file-1",
            "GET https://api.openai.com/v1/files/file-1/content",
            "GET https://api.openai.com/v1/files?limit=2",
            "POST https://api.openai.com/v1/batches",
            "GET https://api.openai.com/v1/batches/batch_1",
            "POST https://api.openai.com/v1/batches/batch_1/cancel",
            "GET https://api.openai.com/v1/batches",
        ]
    );
    for req in every_request(&api) {
        assert_eq!(
            req.headers()["authorization"],
            format!("Bearer {KEY}").as_str()
        );
        assert!(req.headers().get("api-key").is_none());
    }
    // No expiry is sent by default: OpenAI keeps its own 30 days.
    let upload = &every_request(&api)[1];
    let Outgoing::Bytes(body) = upload.body() else {
        panic!("bytes body")
    };
    assert!(!String::from_utf8_lossy(body).contains("expires_after"));
}

#[test]
fn azure_v1_sends_the_key_in_api_key_and_files_expire() {
    let api = api("https://res.openai.azure.com/openai/v1/", Provider::azure());
    assert_eq!(
        uris(&api),
        [
            "POST https://res.openai.azure.com/openai/v1/files",
            "POST https://res.openai.azure.com/openai/v1/files",
            "GET https://res.openai.azure.com/openai/v1/files/file-1",
            "DELETE https://res.openai.azure.com/openai/v1/files/file-1",
            "GET https://res.openai.azure.com/openai/v1/files/file-1/content",
            "GET https://res.openai.azure.com/openai/v1/files?limit=2",
            "POST https://res.openai.azure.com/openai/v1/batches",
            "GET https://res.openai.azure.com/openai/v1/batches/batch_1",
            "POST https://res.openai.azure.com/openai/v1/batches/batch_1/cancel",
            "GET https://res.openai.azure.com/openai/v1/batches",
        ]
    );
    for req in every_request(&api) {
        let key = &req.headers()["api-key"];
        assert_eq!(key, KEY);
        assert!(key.is_sensitive());
        assert!(req.headers().get("authorization").is_none());
    }
    let upload = &every_request(&api)[1];
    let Outgoing::Bytes(body) = upload.body() else {
        panic!("bytes body")
    };
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains(
            "name=\"expires_after[anchor]\"\r\n\r\ncreated_at\r\n--openai-batch-boundary-"
        ),
        "{text}"
    );
    assert!(
        text.contains("name=\"expires_after[seconds]\"\r\n\r\n2592000\r\n"),
        "{text}"
    );
    // A caller's own expiry wins over the provider's.
    let mut own = UploadFile::batch_input("s.jsonl", 1);
    own.expires_after = Some(batch_core::api::ExpiresAfter::after_creation(7200));
    let req = upload_file_bytes(&api, &own, b"{}\n").expect("upload");
    let Outgoing::Bytes(body) = req.body() else {
        panic!("bytes body")
    };
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("\r\n\r\n7200\r\n"), "{text}");
    assert!(!text.contains("2592000"), "{text}");
}

#[test]
fn azure_dated_adds_api_version_to_every_request() {
    let dated = api(
        "https://res.openai.azure.com/openai",
        Provider::azure_dated("2024-10-21"),
    );
    assert_eq!(
        uris(&dated),
        [
            "POST https://res.openai.azure.com/openai/files?api-version=2024-10-21",
            "POST https://res.openai.azure.com/openai/files?api-version=2024-10-21",
            "GET https://res.openai.azure.com/openai/files/file-1?api-version=2024-10-21",
            "DELETE https://res.openai.azure.com/openai/files/file-1?api-version=2024-10-21",
            "GET https://res.openai.azure.com/openai/files/file-1/content?api-version=2024-10-21",
            "GET https://res.openai.azure.com/openai/files?limit=2&api-version=2024-10-21",
            "POST https://res.openai.azure.com/openai/batches?api-version=2024-10-21",
            "GET https://res.openai.azure.com/openai/batches/batch_1?api-version=2024-10-21",
            "POST https://res.openai.azure.com/openai/batches/batch_1/cancel?api-version=2024-10-21",
            "GET https://res.openai.azure.com/openai/batches?api-version=2024-10-21",
        ]
    );
    // The same, with the version written in the base URL instead.
    let in_url = api(
        "https://res.openai.azure.com/openai/?api-version=2024-10-21",
        Provider::azure(),
    );
    assert_eq!(uris(&in_url), uris(&dated));
}

#[test]
fn extra_headers_and_query_reach_every_request() {
    let provider = Provider::custom()
        .with_header("X-Gateway-Team", "batch")
        .with_header("X-Gateway-Token", "gw-SECRET-token")
        .with_query("route", "eu west");
    let api = api("https://gateway.example/v1", provider);
    for req in every_request(&api) {
        assert_eq!(req.headers()["x-gateway-team"], "batch");
        assert!(!req.headers()["x-gateway-team"].is_sensitive());
        assert_eq!(req.headers()["x-gateway-token"], "gw-SECRET-token");
        assert!(req.headers()["x-gateway-token"].is_sensitive());
        let uri = req.uri().to_string();
        assert!(uri.ends_with("route=eu%20west"), "{uri}");
        let debug = format!("{req:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
    assert!(!format!("{api:?}").contains("SECRET"));
    // A server echoing the gateway token has it redacted like the key.
    assert_eq!(
        api.redact(&format!("bad token gw-SECRET-token for key {KEY}")),
        "bad token [redacted key] for key [redacted key]"
    );
}

#[test]
fn redact_covers_the_key_in_any_header() {
    let api = api("https://res.openai.azure.com/openai/v1", Provider::azure());
    let echoed = format!("Access denied due to invalid subscription key {KEY}.");
    let red = api.redact(&echoed);
    assert!(!red.contains("GOLDEN"), "{red}");
    assert!(red.contains(ApiBase::REDACTED));
    let debug = format!("{api:?}");
    assert!(!debug.contains("GOLDEN"), "{debug}");
}

#[test]
fn bad_provider_headers_and_queries_are_refused() {
    let with = |p: Provider| ApiBase::new(&ApiConfig::new(KEY).with_provider(p)).err();
    assert_eq!(
        with(Provider::custom().with_header("bad name", "v")),
        Some(ConfigError::InvalidExtraHeader {
            name: "bad name".into()
        })
    );
    let e = with(Provider::custom().with_header("X-Api-Key", "line\nbreak"));
    assert_eq!(
        e,
        Some(ConfigError::InvalidExtraHeader {
            name: "X-Api-Key".into()
        })
    );
    assert!(!format!("{e:?}").contains("line"));
    assert_eq!(
        with(Provider::custom().with_query("", "v")),
        Some(ConfigError::EmptyQueryName)
    );
}

#[test]
fn completion_windows_per_provider() {
    let create = |p: Provider, window: &str| {
        let api = api("https://h.example/v1", p);
        let mut body = CreateBatch::new("file-1", Endpoint::ChatCompletions);
        body.completion_window = CompletionWindow::parse(window);
        create_batch(&api, &body).map(|_| ())
    };
    assert_eq!(create(Provider::openai(), "24h"), Ok(()));
    assert_eq!(
        create(Provider::openai(), "7d"),
        Err(RequestError::WindowNotAccepted {
            window: "7d".into(),
            allowed: "24h".into()
        })
    );
    assert!(create(Provider::azure(), "48h").is_err());
    assert_eq!(create(Provider::groq(), "7d"), Ok(()));
    assert_eq!(create(Provider::groq(), "72h"), Ok(()));
    assert!(create(Provider::groq(), "8d").is_err());
    assert_eq!(create(Provider::custom(), "30d"), Ok(()));

    // The job's settings check says the same before anything is sent.
    let mut cfg = JobConfig::new(api("https://h.example/v1", Provider::openai()));
    cfg.completion_window = CompletionWindow::parse("7d");
    assert!(matches!(
        cfg.validate_settings(),
        Err(SettingsError::WindowNotAccepted {
            provider: "openai",
            ..
        })
    ));
    let mut cfg = JobConfig::new(api("https://api.groq.com/openai/v1", Provider::groq()));
    cfg.completion_window = CompletionWindow::parse("7d");
    assert_eq!(cfg.validate_settings(), Ok(()));
}

#[test]
fn limits_feed_the_planner() {
    assert_eq!(Provider::openai().shard_limits().max_requests, 50_000);
    assert_eq!(Provider::azure().shard_limits().max_requests, 100_000);
    assert_eq!(Provider::groq().shard_limits().max_bytes, 200 * 1024 * 1024);
}

#[test]
fn azure_dated_names_the_endpoint_without_v1_in_create_and_in_request_lines() {
    // Azure OpenAI's batch guide for the dated API versions writes
    // `"url": "/chat/completions"` in input lines and creates the batch with
    // `endpoint="/chat/completions"`; its v1 API takes OpenAI's `/v1/...`.
    let endpoint_sent = |api: &ApiBase| {
        let req = create_batch(api, &CreateBatch::new("file-1", Endpoint::ChatCompletions))
            .expect("create");
        let Outgoing::Json(body) = req.body() else {
            panic!("a JSON body");
        };
        let v: serde_json::Value = serde_json::from_slice(body).expect("json");
        v["endpoint"].as_str().expect("endpoint").to_owned()
    };
    let dated = api(
        "https://res.openai.azure.com/openai",
        Provider::azure_dated("2024-10-21"),
    );
    assert_eq!(endpoint_sent(&dated), "/chat/completions");
    let v1 = api("https://res.openai.azure.com/openai/v1", Provider::azure());
    assert_eq!(endpoint_sent(&v1), "/v1/chat/completions");

    // The planner writes the lines the same way, and counts their bytes as
    // written. A custom_id that spells out a url does not fool it.
    let line_of = |style| {
        let mut builder = PlanBuilder::new(
            "job",
            Endpoint::ChatCompletions,
            ShardLimits::new(10, 1 << 20),
            "in.jsonl",
        )
        .url_style(style);
        let req = BatchRequest::parse_line(
            "in.jsonl",
            1,
            br#"{"custom_id":"a\",\"method\":\"POST\",\"url\":\"/v1/x","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#,
        )
        .expect("a line");
        let mut line = Vec::new();
        builder.push(1, &req, &mut line).expect("placed");
        let plan = builder.finish().expect("a plan");
        assert_eq!(plan.shards()[0].bytes, line.len() as u64);
        String::from_utf8(line).expect("utf-8")
    };
    assert_eq!(
        line_of(Provider::azure_dated("2024-10-21").url_style),
        "{\"custom_id\":\"a\\\",\\\"method\\\":\\\"POST\\\",\\\"url\\\":\\\"/v1/x\",\"method\":\"POST\",\"url\":\"/chat/completions\",\"body\":{\"messages\":[],\"model\":\"m\"}}\n"
    );
    assert_eq!(
        line_of(Provider::azure().url_style),
        "{\"custom_id\":\"a\\\",\\\"method\\\":\\\"POST\\\",\\\"url\\\":\\\"/v1/x\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"messages\":[],\"model\":\"m\"}}\n"
    );
}
