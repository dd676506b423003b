//! The Anthropic mode's lifecycle on a stepped clock (time moves only when
//! the test says so): processing and results, cancel, expiry, archiving,
//! state across a restart, and the fault injection shared with the OpenAI
//! mode (status faults, lost create answers, cut and garbled results).

mod anthropic_common;

use std::time::Duration;

use anthropic_common::{Api, builder, ids, line, request, start};
use batch_emulator::{EmulatorBuilder, FaultConfig, Timings};
use serde_json::{Value, json};

/// The JSON kind of every key of `documented` (recursively for objects)
/// must be the kind of the same key in `ours`; `ours` may have more keys.
fn assert_fits(ours: &Value, documented: &Value, at: &str) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match documented {
        Value::Object(doc) => {
            for (k, v) in doc {
                let mine = ours
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k} is missing: {ours}"));
                assert_fits(mine, v, &format!("{at}.{k}"));
            }
        }
        Value::Array(doc) => {
            let mine = ours
                .as_array()
                .unwrap_or_else(|| panic!("{at} is not an array"));
            if let (Some(d), Some(m)) = (doc.first(), mine.first()) {
                assert_fits(m, d, &format!("{at}[0]"));
            }
        }
        other => assert_eq!(kind(ours), kind(other), "{at}: {ours}"),
    }
}

/// A stepped clock that moves only on `advance`.
fn frozen() -> EmulatorBuilder {
    builder().step_per_request(Duration::ZERO)
}

const HOUR: Duration = Duration::from_secs(3600);

fn tool_request(id: &str) -> Value {
    json!({
        "custom_id": id,
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "weather in Paris"}],
            "tools": [{"name": "get_weather", "description": "Weather for a city.",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                        "required": ["city"]}}],
            "tool_choice": {"type": "any"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_to_ended_with_a_result_per_request() {
    let (emu, api) = start(frozen()).await;
    let mut bad_model = request("bad-model", "x");
    bad_model["params"]["model"] = json!("claude-no-such-model");
    let mut no_max = request("no-max", "x");
    no_max["params"]
        .as_object_mut()
        .expect("params")
        .remove("max_tokens");
    let requests = vec![
        request("plain", "hello there"),
        tool_request("tool"),
        no_max,
        bad_model,
        request("fail", "boom [[emulator:fail=529]]"),
    ];
    let b = api.create(requests).await;
    let id = b["id"].as_str().expect("id").to_owned();
    // Processed but not finalized: still in progress, every request still
    // `processing`.
    emu.advance(Duration::from_secs(3)).await;
    let mid = api.batch(&id).await;
    assert_eq!(mid["processing_status"], "in_progress");
    assert_eq!(mid["request_counts"]["processing"], 5);
    assert_eq!(mid["results_url"], Value::Null);
    let (status, _, _) = api.results(&id).await;
    assert_eq!(status, 400, "results before the end");
    // 5 requests at 100 ms each, then 30 s of finalizing.
    emu.advance(Duration::from_secs(40)).await;
    let done = api.batch(&id).await;
    assert_eq!(done["processing_status"], "ended");
    assert_eq!(
        done["request_counts"],
        json!({"processing": 0, "succeeded": 2, "errored": 3, "canceled": 0, "expired": 0})
    );
    assert!(done["ended_at"].is_string());
    let url = done["results_url"].as_str().expect("results_url");
    assert_eq!(
        url,
        format!("{}/v1/messages/batches/{id}/results", api.base)
    );
    let (status, ctype, lines) = api.results(&id).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/x-jsonl");
    assert_eq!(
        ids(&lines),
        ["bad-model", "fail", "no-max", "plain", "tool"]
    );
    let order: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap_or_default())
        .collect();
    assert_ne!(order, ["plain", "tool", "no-max", "bad-model", "fail"]);

    let plain = line(&lines, "plain");
    assert_eq!(plain["result"]["type"], "succeeded");
    let m = &plain["result"]["message"];
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["model"], "claude-sonnet-4-5");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "Echo: hello there"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["stop_sequence"], Value::Null);
    for k in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert!(m["usage"][k].is_u64(), "{k}: {m}");
    }

    let tool = &line(&lines, "tool")["result"]["message"];
    assert_eq!(tool["stop_reason"], "tool_use");
    assert_eq!(tool["content"][0]["type"], "tool_use");
    assert_eq!(tool["content"][0]["name"], "get_weather");
    assert_eq!(
        tool["content"][0]["input"],
        json!({"city": "weather in Paris"})
    );

    let err = |cid: &str| line(&lines, cid)["result"].clone();
    assert_eq!(err("no-max")["type"], "errored");
    assert_eq!(
        err("no-max")["error"],
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
    );
    assert_eq!(
        err("bad-model")["error"]["error"]["type"],
        "not_found_error"
    );
    assert_eq!(err("fail")["error"]["error"]["type"], "overloaded_error");

    // The absolute results_url works as given.
    let r = api.raw(api.auth(api.http.get(url))).await;
    assert_eq!(r.status, 200);
    // The same answers on a second download.
    assert_eq!(api.results(&id).await.2, lines);
    let c = emu.counters();
    assert_eq!(c.batches_created, 1);
    assert_eq!(c.result_files_written, 1);
    assert_eq!(c.requests_on("batches.results"), 4);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_model_lets_unknown_models_through() {
    let (emu, api) = start(frozen().accept_any_model(true)).await;
    let mut r = request("a", "x");
    r["params"]["model"] = json!("my-finetune");
    let id = api.create(vec![r]).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(HOUR).await;
    let (_, _, lines) = api.results(&id).await;
    assert_eq!(lines[0]["result"]["type"], "succeeded");
    assert_eq!(lines[0]["result"]["message"]["model"], "my-finetune");
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_what_ran_and_cancels_the_rest() {
    let (emu, api) = start(frozen()).await;
    let requests: Vec<Value> = (0..10).map(|i| request(&format!("r{i}"), "x")).collect();
    let id = api.create(requests).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(Duration::from_millis(350)).await;
    let path = format!("/v1/messages/batches/{id}/cancel");
    let r = api.post(&path, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["processing_status"], "canceling");
    assert!(r.body["cancel_initiated_at"].is_string());
    assert_eq!(r.body["request_counts"]["processing"], 10);
    // A second cancel answers the batch as it is.
    let again = api.post(&path, &json!({})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body);
    emu.advance(Duration::from_secs(61)).await;
    let done = api.batch(&id).await;
    assert_eq!(done["processing_status"], "ended");
    assert_eq!(done["cancel_initiated_at"], r.body["cancel_initiated_at"]);
    assert_eq!(
        done["request_counts"],
        json!({"processing": 0, "succeeded": 3, "errored": 0, "canceled": 7, "expired": 0})
    );
    let (_, _, lines) = api.results(&id).await;
    assert_eq!(lines.len(), 10);
    for i in 0..10 {
        let result = &line(&lines, &format!("r{i}"))["result"];
        if i < 3 {
            assert_eq!(result["type"], "succeeded");
        } else {
            assert_eq!(result, &json!({"type": "canceled"}));
        }
    }
    // An ended batch cannot be canceled.
    let late = api.post(&path, &json!({})).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.body["error"]["type"], "invalid_request_error");
    assert_eq!(emu.counters().batches_cancelled, 1);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_requests_expire_after_24_hours() {
    let timings = Timings {
        per_request: Duration::from_secs(3 * 3600),
        ..Timings::default()
    };
    let (emu, api) = start(frozen().timings(timings)).await;
    let requests: Vec<Value> = (0..10).map(|i| request(&format!("r{i}"), "x")).collect();
    let b = api.create(requests).await;
    let id = b["id"].as_str().expect("id").to_owned();
    emu.advance(23 * HOUR).await;
    assert_eq!(api.batch(&id).await["processing_status"], "in_progress");
    emu.advance(2 * HOUR).await;
    let done = api.batch(&id).await;
    assert_eq!(done["processing_status"], "ended");
    assert_eq!(done["ended_at"], b["expires_at"]);
    // 24 h at 3 h a request: 8 ran.
    assert_eq!(
        done["request_counts"],
        json!({"processing": 0, "succeeded": 8, "errored": 0, "canceled": 0, "expired": 2})
    );
    let (_, _, lines) = api.results(&id).await;
    assert_eq!(line(&lines, "r9")["result"], json!({"type": "expired"}));
    assert_eq!(line(&lines, "r7")["result"]["type"], "succeeded");
    // Results are kept 29 days from creation, then archived.
    emu.advance(29 * 24 * HOUR).await;
    let old = api.batch(&id).await;
    assert!(old["archived_at"].is_string(), "{old}");
    let (status, _, _) = api.results(&id).await;
    assert_eq!(status, 404);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expire_fault_ends_a_batch_half_way() {
    let (emu, api) = start(frozen().faults(FaultConfig::parse("expire").expect("spec"))).await;
    let requests: Vec<Value> = (0..10).map(|i| request(&format!("r{i}"), "x")).collect();
    let b = api.create(requests).await;
    let id = b["id"].as_str().expect("id").to_owned();
    emu.advance(HOUR).await;
    let done = api.batch(&id).await;
    assert_eq!(done["request_counts"]["succeeded"], 5);
    assert_eq!(done["request_counts"]["expired"], 5);
    assert!(done["ended_at"].as_str() < b["expires_at"].as_str());
    assert_eq!(emu.counters().faults_injected.get("expire"), Some(&1));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_deterministic_for_a_seed_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |seed: u64, name: &str| {
        let dir = dir.path().join(name);
        async move {
            let (emu, api) =
                start(frozen().seed(seed).start_time(1_700_000_000).data_dir(&dir)).await;
            let requests: Vec<Value> = (0..6).map(|i| request(&format!("r{i}"), "same")).collect();
            let id = api.create(requests).await["id"]
                .as_str()
                .expect("id")
                .to_owned();
            emu.advance(HOUR).await;
            let (_, _, lines) = api.results(&id).await;
            let batch = api.batch(&id).await;
            emu.shutdown().await.expect("shutdown");
            // The state file keeps the batch and its results.
            let (emu, api) =
                start(frozen().seed(seed).start_time(1_700_000_000).data_dir(&dir)).await;
            let again = api.batch(&id).await;
            assert_eq!(again["request_counts"], batch["request_counts"]);
            assert_eq!(again["ended_at"], batch["ended_at"]);
            assert_eq!(api.results(&id).await.2, lines);
            emu.shutdown().await.expect("shutdown");
            (id, lines)
        }
    };
    let (id_a, a) = run(1, "first").await;
    let (id_b, b) = run(1, "second").await;
    assert_eq!(id_a, id_b);
    assert_eq!(a, b);
    let (id_c, _) = run(2, "third").await;
    assert_ne!(id_a, id_c);
}

async fn statuses(api: &Api, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(api.get(path).await.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_faults_answer_in_anthropics_envelope() {
    let (emu, api) = start(
        frozen().faults(
            FaultConfig::parse("429-every=2@batches.list,retry-after=3,529-every=3@batches.get")
                .expect("spec"),
        ),
    )
    .await;
    let list = "/v1/messages/batches";
    let r1 = api.get(list).await;
    let r2 = api.get(list).await;
    assert_eq!((r1.status, r2.status), (200, 429));
    assert_eq!(
        r2.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    assert_eq!(r2.body["type"], "error");
    assert_eq!(r2.body["error"]["type"], "rate_limit_error");
    let id = api.create(vec![request("a", "x")]).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let got = statuses(&api, &format!("/v1/messages/batches/{id}"), 3).await;
    assert_eq!(got, [200, 200, 529]);
    emu.set_faults(FaultConfig::parse("529-every=1@batches.get").expect("spec"));
    let r = api.get(&format!("/v1/messages/batches/{id}")).await;
    assert_eq!(r.status, 529);
    assert_eq!(r.body["error"]["type"], "overloaded_error");
    let c = emu.counters();
    assert_eq!(c.faults_injected.get("429-every"), Some(&1));
    assert_eq!(c.faults_injected.get("529-every"), Some(&2));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_creates_nothing_and_a_lost_answer_still_creates() {
    let (emu, api) =
        start(frozen().faults(FaultConfig::parse("500-every=2@batches.create").expect("spec")))
            .await;
    let body = json!({"requests": [request("a", "x")]});
    let mut got = Vec::new();
    for _ in 0..4 {
        let r = api.post("/v1/messages/batches", &body).await;
        if r.status == 500 {
            assert_eq!(r.body["error"]["type"], "api_error");
        }
        got.push(r.status);
    }
    assert_eq!(got, [200, 500, 200, 500]);
    assert_eq!(emu.counters().batches_created, 2);

    // The create is committed, then answered 500: the batch exists.
    emu.set_faults(FaultConfig::parse("commit-then-500-every=1@batches.create").expect("spec"));
    let r = api.post("/v1/messages/batches", &body).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["error"]["type"], "api_error");
    // The create is committed, then its answer cut half way.
    emu.set_faults(FaultConfig::parse("commit-then-cut-every=1@batches.create").expect("spec"));
    let sent = api
        .auth(api.http.post(api.url("/v1/messages/batches")).json(&body))
        .send()
        .await;
    let read = match sent {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(read.is_err(), "a cut answer must not read cleanly");
    emu.set_faults(FaultConfig::none());
    let list = api.get("/v1/messages/batches").await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(4));
    let c = emu.counters();
    assert_eq!(c.batches_created, 4);
    assert_eq!(c.faults_injected.get("commit-then-500"), Some(&1));
    assert_eq!(c.faults_injected.get("commit-then-cut"), Some(&1));
    assert_eq!(c.requests_on("batches.create"), 6);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_downloads_can_be_cut_or_garbled() {
    let (emu, api) = start(
        frozen().faults(FaultConfig::parse("cut-content-every=2,garbage-line").expect("spec")),
    )
    .await;
    let requests: Vec<Value> = (0..20)
        .map(|i| request(&format!("r{i}"), "some words here"))
        .collect();
    let id = api.create(requests).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(HOUR).await;
    let url = api.url(&format!("/v1/messages/batches/{id}/results"));
    let fetch = || async {
        let resp = api.auth(api.http.get(&url)).send().await.expect("send");
        let declared = resp.content_length();
        resp.bytes().await.map(|b| (declared, b))
    };
    let (declared, whole) = fetch().await.expect("first download is whole");
    assert_eq!(declared, Some(whole.len() as u64));
    assert!(fetch().await.is_err(), "the second download is cut");
    let text = String::from_utf8(whole.to_vec()).expect("utf-8");
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .collect();
    assert_eq!(bad.len(), 1, "one garbage line");
    assert_eq!(text.lines().count(), 21);
    let c = emu.counters();
    assert_eq!(c.faults_injected.get("cut-content"), Some(&1));
    assert!(c.bytes_served >= whole.len() as u64);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_clock_ends_batches_by_itself() {
    // Speed 2000: 3 requests and finalizing take about 17 ms of real time.
    let (emu, api) = start(builder().speed(2000.0)).await;
    let id = api
        .create(vec![
            request("a", "x"),
            request("b", "y"),
            request("c", "z"),
        ])
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let done = api.wait_status(&id, "ended", Duration::from_secs(60)).await;
    assert_eq!(done["request_counts"]["succeeded"], 3);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_lines_fit_the_documented_examples() {
    let (emu, api) = start(frozen()).await;
    let mut bad = request("bad", "x");
    bad["params"]["max_tokens"] = json!(0);
    let id = api.create(vec![request("good", "hi"), bad]).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(HOUR).await;
    let (_, _, lines) = api.results(&id).await;
    // The shape of the documented result lines
    // (https://docs.anthropic.com/en/api/retrieving-message-batch-results),
    // with values of our own.
    let succeeded = json!({"custom_id": "my-request", "result": {"type": "succeeded", "message": {
        "id": "msg_01FqfsLoHwgeFbguDgpz48m7", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 34}}}});
    let errored = json!({"custom_id": "my-request", "result": {"type": "errored",
        "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}}}});
    let good = line(&lines, "good");
    assert_fits(good, &succeeded, "succeeded");
    let message = &good["result"]["message"];
    let doc_message = &succeeded["result"]["message"];
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let (mut ours, mut doc) = (keys(message), keys(doc_message));
    ours.sort();
    doc.sort();
    assert_eq!(ours, doc, "a Message has exactly the documented keys");
    assert_eq!(
        message["id"].as_str().map(str::len),
        doc_message["id"].as_str().map(str::len)
    );
    let bad = line(&lines, "bad");
    assert_fits(bad, &errored, "errored");
    assert_eq!(
        bad["result"]["error"]["error"]["message"],
        "max_tokens: Input should be greater than or equal to 1"
    );
    // The other two result types carry only their type.
    let canceled = json!({"custom_id": "x", "result": {"type": "canceled"}});
    let expired = json!({"custom_id": "x", "result": {"type": "expired"}});
    for doc in [&canceled, &expired] {
        assert_eq!(keys(&doc["result"]), ["type"]);
    }
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_results_downloads_still_arrive_whole() {
    let (emu, api) =
        start(frozen().faults(FaultConfig::parse("slow-body-ms=1").expect("spec"))).await;
    let requests: Vec<Value> = (0..30).map(|i| request(&format!("r{i}"), "x")).collect();
    let id = api.create(requests).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    emu.advance(HOUR).await;
    let (status, _, lines) = api.results(&id).await;
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 30);
    assert_eq!(emu.counters().faults_injected.get("slow-body"), Some(&1));
    emu.shutdown().await.expect("shutdown");
}
