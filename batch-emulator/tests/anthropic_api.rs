//! The Anthropic mode's HTTP surface: headers and auth, Anthropic's error
//! envelope, create-time validation, list paging, delete, the shapes of
//! the documented examples, and the binary's `--provider anthropic`.

mod anthropic_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anthropic_common::{Api, KEY, VERSION, builder, request, start};
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Asserts `body` is Anthropic's error envelope with `kind`, and returns
/// the message.
fn error_message(body: &Value, kind: &str) -> String {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_")),
        "{body}"
    );
    body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_required_and_the_key_is_never_echoed() {
    let (emu, api) = start(builder().api_key(KEY)).await;
    let url = api.url("/v1/messages/batches");
    let r = api
        .raw(api.http.get(&url).header("anthropic-version", VERSION))
        .await;
    assert_eq!(r.status, 401);
    assert!(error_message(&r.body, "authentication_error").contains("x-api-key"));
    let r = api
        .raw(
            api.http
                .get(&url)
                .header("x-api-key", "sk-ant-wrong-secret-value")
                .header("anthropic-version", VERSION),
        )
        .await;
    assert_eq!(r.status, 401);
    error_message(&r.body, "authentication_error");
    assert!(!r.body.to_string().contains("wrong-secret"), "{}", r.body);
    let r = api.raw(api.http.get(&url).header("x-api-key", KEY)).await;
    assert_eq!(r.status, 400);
    assert!(error_message(&r.body, "invalid_request_error").contains("anthropic-version"));
    let r = api
        .raw(
            api.http
                .get(&url)
                .header("x-api-key", KEY)
                .header("anthropic-version", "2099-01-01"),
        )
        .await;
    assert_eq!(r.status, 400);
    // A beta header is accepted.
    let r = api
        .raw(
            api.auth(api.http.get(&url))
                .header("anthropic-beta", "message-batches-2024-09-24"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("req_"))
    );
    let c = emu.counters();
    assert_eq!(c.requests_on("batches.list"), 5);
    assert_eq!(c.responses.get("401"), Some(&2));
    assert_eq!(c.responses.get("400"), Some(&2));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_routes_answer_404_in_anthropics_envelope() {
    let (emu, api) = start(builder()).await;
    for (method, path) in [
        ("GET", "/v1/batches"),
        ("POST", "/v1/files"),
        ("GET", "/v1/messages/batches/x/nothing"),
        ("PUT", "/v1/messages/batches"),
    ] {
        let req = api.auth(
            api.http
                .request(method.parse().expect("method"), api.url(path)),
        );
        let r = api.raw(req).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["type"], "error");
        assert_eq!(r.body["error"]["type"], "not_found_error");
    }
    let r = api.get("/v1/messages/batches/msgbatch_01nope").await;
    assert_eq!(r.status, 404);
    error_message(&r.body, "not_found_error");
    assert_eq!(emu.counters().requests_on("unmatched"), 4);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_creates_are_refused_and_create_nothing() {
    let (emu, api) = start(builder().max_requests_per_batch(3)).await;
    let create = |body: Value| {
        let api = &api;
        async move { api.post("/v1/messages/batches", &body).await }
    };
    let cases = [
        (
            json!({"requests": [request("a", "x"), request("b", "y"), request("a", "z")]}),
            "requests.2.custom_id: Duplicate custom_id 'a'",
        ),
        (
            json!({"requests": [request("a", "x"), request("has space", "y")]}),
            "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
        ),
        (
            json!({"requests": [request(&"x".repeat(65), "y")]}),
            "requests.0.custom_id: String should match pattern",
        ),
        (
            json!({"requests": [{"custom_id": "a"}]}),
            "requests.0.params: Field required",
        ),
        (
            json!({"requests": [{"params": {}}]}),
            "requests.0.custom_id: Field required",
        ),
        (
            json!({"requests": []}),
            "requests: List should have at least 1 item",
        ),
        (json!({}), "requests: Field required"),
        (
            json!({"requests": [request("a", "1"), request("b", "2"), request("c", "3"), request("d", "4")]}),
            "at most 3 requests",
        ),
    ];
    for (body, want) in cases {
        let r = create(body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        let message = error_message(&r.body, "invalid_request_error");
        assert!(
            message.starts_with(want) || message.contains(want),
            "{message}"
        );
    }
    let r = api
        .raw(
            api.auth(
                api.http
                    .post(api.url("/v1/messages/batches"))
                    .header("content-type", "application/json")
                    .body("{\"requests\": [ {\"custom_id\": "),
            ),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(error_message(&r.body, "invalid_request_error").contains("not valid JSON"));
    // At the limit it is fine.
    let ok = create(json!({"requests": [request("a", "1"), request("b", "2"), request("c", "3")]}))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["request_counts"]["processing"], 3);
    let c = emu.counters();
    assert_eq!(c.batches_created, 1);
    assert_eq!(c.requests_on("batches.create"), 10);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_byte_limit_is_413() {
    let (emu, api) = start(builder().max_batch_file_bytes(2_000)).await;
    let requests: Vec<Value> = (0..40)
        .map(|i| request(&format!("r{i}"), "some text"))
        .collect();
    let r = api
        .post("/v1/messages/batches", &json!({"requests": requests}))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(error_message(&r.body, "request_too_large").contains("2000 bytes"));
    // The connection stays usable and a small batch goes through.
    let small = api.create(vec![request("a", "x")]).await;
    assert_eq!(small["processing_status"], "in_progress");
    assert_eq!(emu.counters().batches_created, 1);
    emu.shutdown().await.expect("shutdown");
}

#[test]
fn the_default_limits_are_anthropics() {
    let b = builder();
    assert_eq!(b.config().max_requests_per_batch, 100_000);
    assert_eq!(b.config().max_batch_file_bytes, 256_000_000);
    assert_eq!(b.config().timings.per_request, Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_batch_has_the_documented_shape() {
    let (emu, api) = start(
        builder()
            .start_time(1_724_179_044)
            .step_per_request(Duration::ZERO),
    )
    .await;
    let b = api.create(vec![request("a", "x"), request("b", "y")]).await;
    // The keys of the documented MessageBatch object
    // (https://docs.anthropic.com/en/api/creating-message-batches).
    let documented = json!({
        "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": null,
        "created_at": "2024-09-24T18:37:24.100435Z",
        "expires_at": "2024-09-25T18:37:24.100435Z",
        "archived_at": null,
        "cancel_initiated_at": null,
        "results_url": null
    });
    assert_eq!(keys(&b), keys(&documented));
    assert_eq!(
        keys(&b["request_counts"]),
        keys(&documented["request_counts"])
    );
    assert_eq!(b["request_counts"], documented["request_counts"]);
    for k in [
        "type",
        "processing_status",
        "ended_at",
        "archived_at",
        "cancel_initiated_at",
        "results_url",
    ] {
        assert_eq!(b[k], documented[k], "{k}");
    }
    let id = b["id"].as_str().expect("id");
    assert!(
        id.starts_with("msgbatch_01") && id.len() == documented["id"].as_str().map_or(0, str::len),
        "{id}"
    );
    assert_eq!(b["created_at"], "2024-08-20T18:37:24.000000Z");
    assert_eq!(b["expires_at"], "2024-08-21T18:37:24.000000Z");
    assert_eq!(api.batch(id).await, b);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_newest_first_both_ways() {
    let (emu, api) = start(builder().step_per_request(Duration::ZERO)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let b = api.create(vec![request(&format!("r{i}"), "x")]).await;
        ids.push(b["id"].as_str().expect("id").to_owned());
    }
    // Newest first: b4, b3, b2, b1, b0.
    let newest: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    let page = |q: &str| {
        let api = &api;
        let q = q.to_owned();
        async move {
            let r = api.get(&format!("/v1/messages/batches{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            let data: Vec<String> = r.body["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|b| b["id"].as_str().expect("id").to_owned())
                .collect();
            (data, r.body)
        }
    };
    let (all, body) = page("").await;
    assert_eq!(all, newest);
    assert_eq!(body["has_more"], false);
    assert_eq!(
        keys(&body),
        keys(&json!({"data": 0, "has_more": 0, "first_id": 0, "last_id": 0}))
    );
    let (p1, body) = page("?limit=2").await;
    assert_eq!(p1, newest[..2]);
    assert_eq!(body["has_more"], true);
    assert_eq!(body["first_id"], newest[0]);
    assert_eq!(body["last_id"], newest[1]);
    let (p2, body) = page(&format!("?limit=2&after_id={}", newest[1])).await;
    assert_eq!(p2, newest[2..4]);
    assert_eq!(body["has_more"], true);
    let (p3, body) = page(&format!("?limit=2&after_id={}", newest[3])).await;
    assert_eq!(p3, newest[4..]);
    assert_eq!(body["has_more"], false);
    let (back, body) = page(&format!("?limit=2&before_id={}", newest[3])).await;
    assert_eq!(back, newest[1..3]);
    assert_eq!(body["has_more"], true);
    let (back, body) = page(&format!("?limit=2&before_id={}", newest[1])).await;
    assert_eq!(back, newest[..1]);
    assert_eq!(body["has_more"], false);
    let (empty, body) = page("?after_id=msgbatch_01unknown").await;
    assert!(empty.is_empty());
    assert_eq!(body["first_id"], Value::Null);
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?before_id=a&after_id=b",
    ] {
        let r = api.get(&format!("/v1/messages/batches{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        error_message(&r.body, "invalid_request_error");
    }
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_ended_batch_can_be_deleted() {
    let (emu, api) = start(builder().step_per_request(Duration::ZERO)).await;
    let b = api.create(vec![request("a", "x")]).await;
    let id = b["id"].as_str().expect("id");
    let path = format!("/v1/messages/batches/{id}");
    let r = api.delete(&path).await;
    assert_eq!(r.status, 400);
    assert!(error_message(&r.body, "invalid_request_error").contains("cancel it"));
    emu.advance(Duration::from_secs(3600)).await;
    assert_eq!(api.batch(id).await["processing_status"], "ended");
    let r = api.delete(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"id": id, "type": "message_batch_deleted"}));
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(api.delete(&path).await.status, 404);
    let (status, _, _) = api.results(id).await;
    assert_eq!(status, 404);
    let c = emu.counters();
    assert_eq!(c.batches_deleted, 1);
    assert_eq!(c.requests_on("batches.delete"), 3);
    emu.shutdown().await.expect("shutdown");
}

#[test]
fn the_binary_serves_anthropic_at_the_bare_root() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_batch-emulator"))
        .args(["--port", "0", "--provider", "anthropic", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let outcome = std::panic::catch_unwind(|| {
        let line = line.expect("a first line within 30 s");
        let base = line
            .trim_end()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_owned();
        assert!(
            base.starts_with("http://127.0.0.1:") && !base.ends_with("/v1"),
            "{base}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let api = Api::new(&base);
            let r = api.get("/v1/messages/batches").await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["data"], json!([]));
        });
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_url_uses_the_host_the_client_used_when_bound_to_all_interfaces() {
    let emu = builder()
        .host(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        .step_per_request(Duration::ZERO)
        .start()
        .await
        .expect("start");
    let base = format!("http://127.0.0.1:{}", emu.addr().port());
    let api = Api::new(&base);
    let id = api.create(vec![request("a", "x")]).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(Duration::from_secs(3600)).await;
    let b = api.batch(&id).await;
    assert_eq!(
        b["results_url"],
        format!("{base}/v1/messages/batches/{id}/results")
    );
    emu.shutdown().await.expect("shutdown");
}
