//! Fault injection: every fault fires as configured, at start or at run
//! time, and the counters and control paths tell what happened.

mod common;

use std::time::{Duration, Instant};

use batch_emulator::{Emulator, FaultConfig, RunningEmulator};
use common::{Api, KEY, chat_line};
use reqwest::header;
use serde_json::{Value, json};

async fn start(spec: &str) -> (RunningEmulator, Api) {
    let emu = Emulator::builder()
        .speed(2000.0)
        .seed(11)
        .faults(FaultConfig::parse(spec).expect("spec"))
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_every_nth_request_with_retry_after() {
    let (emu, api) = start("429-every=3,retry-after=2").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = api
            .http
            .get(api.url("/batches"))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        if status == 429 {
            assert_eq!(
                resp.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
                Some("2")
            );
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["error"]["code"], "rate_limit_exceeded");
            assert_eq!(body["error"]["type"], "requests");
            assert_eq!(body["error"]["param"], Value::Null);
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    let c = emu.counters();
    assert_eq!(c.faults_injected.get("429-every"), Some(&2));
    assert_eq!(c.responses.get("429"), Some(&2));
    assert_eq!(c.requests_on("batches.list"), 6);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_can_target_one_route_and_create_nothing() {
    let (emu, api) = start("500-every=2@batches.create").await;
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let body = json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, resp) = api.post("/batches", &body).await;
        if status == 500 {
            assert_eq!(resp["error"]["type"], "server_error");
        }
        statuses.push(status);
        // Reads are not affected.
        assert_eq!(api.get("/batches").await.0, 200);
    }
    assert_eq!(statuses, [200, 500, 200, 500]);
    assert_eq!(emu.counters().batches_created, 2);
    let (_, list) = api.get("/batches").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probabilistic_faults_follow_the_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (emu, api) = start("503-prob=0.5,seed=42").await;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(api.get("/files").await.0);
        }
        assert!(
            statuses.contains(&503) && statuses.contains(&200),
            "{statuses:?}"
        );
        runs.push(statuses);
        emu.shutdown().await.expect("shutdown");
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_downloads_can_be_cut_half_way() {
    let (emu, api) = start("cut-content-every=2").await;
    let payload: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (_, file) = api
        .upload_with("big.bin", payload.clone(), "user_data")
        .await;
    let url = api.url(&format!(
        "/files/{}/content",
        file["id"].as_str().expect("id")
    ));

    let first = api
        .http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(
        first.bytes().await.expect("full body").as_ref(),
        payload.as_slice()
    );

    let second = api
        .http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(second.status().as_u16(), 200);
    assert_eq!(second.content_length(), Some(50_000));
    let mut got = 0usize;
    let mut resp = second;
    let mut failed = false;
    for _ in 0..10_000 {
        match resp.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body should end in an error");
    assert!(got <= 25_000, "got {got} bytes");

    let third = api
        .http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(third.bytes().await.expect("full body").len(), 50_000);
    let c = emu.counters();
    assert_eq!(c.faults_injected.get("cut-content"), Some(&1));
    assert_eq!(c.bytes_served, 50_000 + 25_000 + 50_000);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_take_their_time() {
    let (emu, api) = start("slow-body-ms=40").await;
    let (_, file) = api
        .upload_with("s.bin", vec![b'x'; 40 * 1024], "user_data")
        .await;
    let start = Instant::now();
    let body = api
        .http
        .get(api.url(&format!(
            "/files/{}/content",
            file["id"].as_str().expect("id")
        )))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 40 * 1024);
    // Five 8 KiB chunks, 40 ms before each.
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "{:?}",
        start.elapsed()
    );
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_can_hold_a_garbage_line() {
    let (emu, api) = start("garbage-line").await;
    let lines: Vec<String> = (0..5).map(|i| chat_line(&format!("g{i}"), "x")).collect();
    let file_id = api.upload(&lines).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), Duration::from_secs(15))
        .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["request_counts"]["completed"], 5);
    let bytes = api
        .content(done["output_file_id"].as_str().expect("out"))
        .await;
    let text = String::from_utf8(bytes).expect("utf-8");
    let (good, bad): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| serde_json::from_str::<Value>(l).is_ok());
    assert_eq!(good.len(), 5);
    assert_eq!(bad.len(), 1, "{text}");
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_can_stall() {
    let (emu, api) = start("stall-validating-ms=1000").await;
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let started = Instant::now();
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let id = b["id"].as_str().expect("id");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(api.batch(id).await["status"], "validating");
    let done = api.wait_terminal(id, Duration::from_secs(15)).await;
    assert_eq!(done["status"], "completed");
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(
        emu.counters().faults_injected.get("stall-validating"),
        Some(&1)
    );
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_can_succeed_while_the_answer_fails() {
    let (emu, api) =
        start("commit-then-500-every=1@files.create,commit-then-cut-every=2@batches.create").await;
    let (status, body) = api
        .upload_with("c.jsonl", common::jsonl(&[chat_line("a", "x")]), "batch")
        .await;
    assert_eq!(status, 500, "{body}");
    // The file exists although the client saw an error.
    let (_, files) = api.get("/files").await;
    let file_id = files["data"][0]["id"]
        .as_str()
        .expect("file was created")
        .to_owned();
    assert_eq!(emu.counters().files_uploaded, 1);

    let body = json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (status, _) = api.post("/batches", &body).await;
    assert_eq!(status, 200);
    let resp = api
        .http
        .post(api.url("/batches"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await.is_err(), "the body must be cut");
    // Both batches exist: the client must reconcile, not re-create.
    let (_, list) = api.get("/batches").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let c = emu.counters();
    assert_eq!(c.batches_created, 2);
    assert_eq!(c.faults_injected.get("commit-then-500"), Some(&1));
    assert_eq!(c.faults_injected.get("commit-then-cut"), Some(&1));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_paths_replace_faults_and_reset_counters() {
    let (emu, api) = start("").await;
    let root = api.root();
    let resp = api
        .http
        .post(format!("{root}/__emulator/faults"))
        .body("429-every=1@files.list")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(api.get("/files").await.0, 429);
    assert_eq!(api.get("/batches").await.0, 200);
    let current: Value = api
        .http
        .get(format!("{root}/__emulator/faults"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(current, json!({"spec": "429-every=1@files.list"}));

    let resp = api
        .http
        .post(format!("{root}/__emulator/faults"))
        .json(&json!({"spec": "bogus-fault"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = api
        .http
        .post(format!("{root}/__emulator/faults"))
        .json(&json!({"spec": "", "seed": 3}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(api.get("/files").await.0, 200);

    let counters = api.counters().await;
    assert_eq!(counters["requests"]["files.list"], 2);
    assert_eq!(counters["faults_injected"]["429-every"], 1);
    let resp = api
        .http
        .post(format!("{root}/__emulator/reset-counters"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(api.counters().await["requests_total"], 0);

    // The library API does the same.
    emu.set_faults(FaultConfig::parse("500-every=1").expect("spec"));
    assert_eq!(api.get("/files").await.0, 500);
    assert_eq!(emu.faults().to_string(), "500-every=1");
    emu.set_faults(FaultConfig::none());
    assert_eq!(api.get("/files").await.0, 200);
    assert_eq!(emu.counters().faults_total(), 1);

    let clock: Value = api
        .http
        .get(format!("{root}/__emulator/clock"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let before = clock["now"].as_i64().expect("now");
    api.advance(7200).await;
    assert!(emu.now() >= before + 7200);
    emu.shutdown().await.expect("shutdown");
}
