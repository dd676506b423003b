//! The batch lifecycle end to end: completion, validation failures, cancel,
//! expiry, every endpoint, and restarts on the same data folder.

mod common;

use std::time::Duration;

use batch_emulator::{Emulator, FaultConfig, RunningEmulator, Timings};
use common::{Api, assert_each_once, chat_line, chat_line_model, custom_ids};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(15);

async fn fast() -> (RunningEmulator, Api) {
    let emu = Emulator::builder()
        .speed(2000.0)
        .seed(7)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

/// A frozen clock for practical purposes: tests move it with `advance`.
async fn manual(timings: Timings) -> (RunningEmulator, Api) {
    let emu = Emulator::builder()
        .speed(1.0)
        .timings(timings)
        .seed(3)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_completes_and_every_request_is_answered_once() {
    let (emu, api) = fast().await;
    let mut lines: Vec<String> = (0..12)
        .map(|i| chat_line(&format!("req-{i}"), &format!("question number {i}")))
        .collect();
    lines.push(chat_line("fail-1", "please fail [[emulator:fail=400]]"));
    lines.push(chat_line("fail-2", "server trouble [[emulator:fail=503]]"));
    lines.push(chat_line("json-1", "give json [[emulator:json]]"));
    lines.push(chat_line(
        "len-1",
        "a fairly long question to cut [[emulator:length]]",
    ));
    // Bodies are checked when run: a missing parameter fails that request only.
    lines.push(
        json!({"custom_id": "no-messages", "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "gpt-4o-mini"}})
        .to_string(),
    );
    let ids: Vec<String> = custom_ids(
        &lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect::<Vec<Value>>(),
    );
    let file_id = api.upload(&lines).await;
    let created = api.create_batch(&file_id, "/v1/chat/completions").await;

    // The create answer has every Batch field, nulls included.
    for key in [
        "id",
        "object",
        "endpoint",
        "model",
        "errors",
        "input_file_id",
        "completion_window",
        "status",
        "output_file_id",
        "error_file_id",
        "created_at",
        "in_progress_at",
        "expires_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        "request_counts",
        "usage",
        "metadata",
    ] {
        assert!(created.get(key).is_some(), "missing {key} in {created}");
    }
    assert_eq!(created["object"], "batch");
    assert_eq!(created["status"], "validating");
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("batch_"))
    );
    assert_eq!(created["output_file_id"], Value::Null);
    assert_eq!(created["in_progress_at"], Value::Null);
    assert_eq!(
        created["expires_at"].as_i64().expect("expires_at")
            - created["created_at"].as_i64().expect("created_at"),
        86_400
    );
    assert_eq!(
        created["request_counts"],
        json!({"total": 0, "completed": 0, "failed": 0})
    );

    let id = created["id"].as_str().expect("id");
    let done = api.wait_terminal(id, LIMIT).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The dated snapshot the alias runs as, as the live API reports it.
    assert_eq!(done["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        done["request_counts"],
        json!({"total": 17, "completed": 14, "failed": 3})
    );
    for key in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(done[key].is_i64(), "{key} unset: {done}");
    }
    assert!(done["in_progress_at"].as_i64() <= done["finalizing_at"].as_i64());
    assert!(done["finalizing_at"].as_i64() <= done["completed_at"].as_i64());
    assert!(
        done["usage"]["input_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        done["usage"]["output_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );

    let output = api.result_lines(&done["output_file_id"]).await;
    let errors = api.result_lines(&done["error_file_id"]).await;
    assert_each_once(&ids, &output, &errors);
    assert_eq!(output.len(), 14);
    assert_eq!(errors.len(), 3);
    // Output order is not input order.
    let out_ids = custom_ids(&output);
    let input_order: Vec<&String> = ids.iter().filter(|i| out_ids.contains(i)).collect();
    assert_ne!(out_ids.iter().collect::<Vec<_>>(), input_order);

    for line in &output {
        assert!(
            line["id"]
                .as_str()
                .is_some_and(|s| s.starts_with("batch_req_"))
        );
        assert_eq!(line["error"], Value::Null);
        assert_eq!(line["response"]["status_code"], 200);
        assert!(line["response"]["request_id"].is_string());
        let body = &line["response"]["body"];
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-4o-mini-2024-07-18");
        let usage = &body["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["prompt_tokens"].as_u64().unwrap_or(0)
                    + usage["completion_tokens"].as_u64().unwrap_or(0)
            )
        );
        let content = body["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        match line["custom_id"].as_str() {
            Some("req-3") => assert_eq!(content, "Echo: question number 3"),
            Some("json-1") => {
                assert!(
                    content.starts_with("```json\n") && content.ends_with("\n```"),
                    "{content}"
                );
                let inner = &content[8..content.len() - 4];
                let parsed: Value = serde_json::from_str(inner).expect("fenced json");
                assert_eq!(parsed["echo"], "give json");
            }
            Some("len-1") => assert_eq!(body["choices"][0]["finish_reason"], "length"),
            _ => assert_eq!(body["choices"][0]["finish_reason"], "stop"),
        }
    }
    let mut statuses: Vec<u64> = errors
        .iter()
        .map(|l| l["response"]["status_code"].as_u64().expect("status"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 400, 503]);
    for line in &errors {
        assert_eq!(line["error"], Value::Null);
        let err = &line["response"]["body"]["error"];
        for key in ["message", "type", "param", "code"] {
            assert!(err.get(key).is_some(), "{line}");
        }
        if line["response"]["status_code"] == 400 {
            assert_eq!(err["type"], "invalid_request_error");
        }
        if line["custom_id"] == "no-messages" {
            assert_eq!(err["param"], "messages");
            assert_eq!(err["code"], "missing_required_parameter");
        }
    }

    // Result files are real files with purpose batch_output.
    let (status, out_file) = api
        .get(&format!(
            "/files/{}",
            done["output_file_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(out_file["purpose"], "batch_output");
    assert_eq!(out_file["object"], "file");
    assert!(
        out_file["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("file-"))
    );

    // Keys come in the API's order.
    let raw = api
        .content(done["output_file_id"].as_str().expect("id"))
        .await;
    let first = String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(first.starts_with("{\"id\":\"batch_req_"), "{first}");
    assert!(first.contains("\"custom_id\""));
    let raw = api
        .content(done["error_file_id"].as_str().expect("id"))
        .await;
    assert!(String::from_utf8_lossy(&raw).ends_with("\"error\":null}\n"));

    // A second download is identical (deterministic), and the counters agree.
    let again = api.result_lines(&done["output_file_id"]).await;
    assert_eq!(again, output);
    let c = emu.counters();
    assert_eq!(c.files_uploaded, 1);
    assert_eq!(c.batches_created, 1);
    assert_eq!(c.result_files_written, 2);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_results() {
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let (emu, api) = fast().await;
        let lines: Vec<String> = (0..6)
            .map(|i| chat_line(&format!("r{i}"), "same"))
            .collect();
        let file_id = api.upload(&lines).await;
        let b = api.create_batch(&file_id, "/v1/chat/completions").await;
        let done = api
            .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
            .await;
        let lines = api.result_lines(&done["output_file_id"]).await;
        // Everything but the wall-clock timestamps is fixed by the seed.
        let shape: Vec<Value> = lines
            .iter()
            .map(|l| {
                json!([
                    l["custom_id"],
                    l["id"],
                    l["response"]["request_id"],
                    l["response"]["body"]["id"],
                    l["response"]["body"]["choices"],
                    l["response"]["body"]["usage"]
                ])
            })
            .collect();
        outputs.push((b["id"].clone(), shape));
        emu.shutdown().await.expect("shutdown");
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_clock_gives_byte_identical_answers() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = Emulator::builder()
            .seed(9)
            .start_time(1_750_000_000)
            .step_per_request(Duration::from_secs(20))
            .start()
            .await
            .expect("start");
        let api = Api::new(&emu.base_url());
        let mut lines: Vec<String> = (0..8)
            .map(|i| chat_line(&format!("s{i}"), "same"))
            .collect();
        lines.push(chat_line("bad", "[[emulator:fail=429]]"));
        let file_id = api.upload(&lines).await;
        let b = api.create_batch(&file_id, "/v1/chat/completions").await;
        assert_eq!(b["created_at"], 1_750_000_040);
        let id = b["id"].as_str().expect("id");
        let mut polls = 0;
        let done = loop {
            polls += 1;
            assert!(polls < 100, "stepped clock did not finish the batch");
            let b = api.batch(id).await;
            if b["status"] == "completed" {
                break b;
            }
        };
        let out = api
            .content(done["output_file_id"].as_str().expect("out"))
            .await;
        let err = api
            .content(done["error_file_id"].as_str().expect("err"))
            .await;
        runs.push((done.to_string(), polls, out, err));
        emu.shutdown().await.expect("shutdown");
    }
    assert!(runs[0] == runs[1], "two runs differ");
}

async fn failed_errors(api: &Api, body: Vec<u8>, endpoint: &str) -> Vec<(String, Option<u64>)> {
    let (status, file) = api.upload_with("bad.jsonl", body, "batch").await;
    assert_eq!(status, 200, "{file}");
    let b = api
        .create_batch(file["id"].as_str().expect("id"), endpoint)
        .await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["failed_at"].is_i64());
    assert_eq!(done["in_progress_at"], Value::Null);
    assert_eq!(done["output_file_id"], Value::Null);
    assert_eq!(done["errors"]["object"], "list");
    done["errors"]["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| {
            assert!(e["message"].is_string());
            (
                e["code"].as_str().expect("code").to_owned(),
                e["line"].as_u64(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_failures_report_codes_and_lines() {
    let emu = Emulator::builder()
        .speed(2000.0)
        .max_requests_per_batch(3)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());

    let mut body = String::new();
    body.push_str(&chat_line("a", "ok"));
    body.push('\n');
    body.push_str("{not json\n");
    body.push('\n'); // blank lines count but are skipped
    body.push_str(&chat_line("a", "dup"));
    body.push('\n');
    let got = failed_errors(&api, body.into_bytes(), "/v1/chat/completions").await;
    assert_eq!(
        got,
        vec![
            ("invalid_json_line".to_owned(), Some(2)),
            ("duplicate_custom_id".to_owned(), Some(4))
        ]
    );

    let lines = [
        chat_line("a", "x"),
        json!({"method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini"}})
            .to_string(),
        chat_line("c", "x").replace("/v1/chat/completions", "/v1/embeddings"),
    ];
    let got = failed_errors(&api, common::jsonl(&lines), "/v1/chat/completions").await;
    assert_eq!(
        got,
        vec![
            ("missing_required_parameter".to_owned(), Some(2)),
            ("url_mismatch".to_owned(), Some(3))
        ]
    );

    let lines = [
        chat_line_model("a", "x", "gpt-4o-mini"),
        chat_line_model("b", "x", "gpt-4o"),
    ];
    let got = failed_errors(&api, common::jsonl(&lines), "/v1/chat/completions").await;
    assert_eq!(got, vec![("model_mismatch".to_owned(), Some(2))]);

    let lines: Vec<String> = (0..4).map(|i| chat_line(&format!("r{i}"), "x")).collect();
    let got = failed_errors(&api, common::jsonl(&lines), "/v1/chat/completions").await;
    assert_eq!(got, vec![("too_many_tasks".to_owned(), Some(4))]);

    let got = failed_errors(&api, b"\n \n".to_vec(), "/v1/chat/completions").await;
    assert_eq!(got, vec![("empty_file".to_owned(), None)]);

    let lines = [
        chat_line_model("a", "x", "gpt-4o-mini"),
        chat_line_model("b", "x", "gpt-4o-mini"),
    ];
    let lines = lines.map(|l| l.replace("gpt-4o-mini", "gpt-4o-mini-typo"));
    let got = failed_errors(&api, common::jsonl(&lines), "/v1/chat/completions").await;
    assert_eq!(
        got,
        vec![
            ("model_not_found".to_owned(), Some(1)),
            ("model_not_found".to_owned(), Some(2))
        ]
    );
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_model_is_accepted_only_when_asked() {
    let emu = Emulator::builder()
        .speed(2000.0)
        .accept_any_model(true)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let file_id = api
        .upload(&[chat_line_model("a", "x", "house-model-7")])
        .await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    // A name it does not know is reported as sent; a known alias still
    // becomes its snapshot.
    assert_eq!(done["model"], "house-model-7");
    let output = api.result_lines(&done["output_file_id"]).await;
    assert_eq!(output[0]["response"]["body"]["model"], "house-model-7");
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_inputs_over_the_real_limit_fail_the_batch() {
    // The default emulator keeps the API's limit of 50,000 embedding
    // inputs, summed over the batch: 30,000 + 20,000 pass, one more fails.
    let (emu, api) = manual(Timings::default()).await;
    let request = |id: &str, n: usize| {
        let input: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        json!({"custom_id": id, "method": "POST", "url": "/v1/embeddings",
               "body": {"model": "text-embedding-3-small", "input": input}})
        .to_string()
    };
    let one_more = json!({"custom_id": "c", "method": "POST", "url": "/v1/embeddings",
                          "body": {"model": "text-embedding-3-small", "input": "one more"}})
    .to_string();
    let at_limit = api
        .upload(&[request("a", 30_000), request("b", 20_000)])
        .await;
    let over = api
        .upload(&[request("a", 30_000), request("b", 20_000), one_more])
        .await;
    let at_limit = api.create_batch(&at_limit, "/v1/embeddings").await;
    let over = api.create_batch(&over, "/v1/embeddings").await;
    // Validation takes 60 virtual seconds.
    api.advance(60).await;
    let at_limit = api.batch(at_limit["id"].as_str().expect("id")).await;
    assert_eq!(at_limit["status"], "in_progress", "{at_limit}");
    assert_eq!(at_limit["model"], "text-embedding-3-small");
    let over = api.batch(over["id"].as_str().expect("id")).await;
    assert_eq!(over["status"], "failed", "{over}");
    let errors = &over["errors"]["data"];
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{over}");
    assert_eq!(errors[0]["code"], "too_many_tasks");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["param"], "body.input");
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limit_fault_fails_validation() {
    let emu = Emulator::builder()
        .speed(2000.0)
        .faults(FaultConfig::parse("token-limit-every=2").expect("spec"))
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let first = api.create_batch(&file_id, "/v1/chat/completions").await;
    let second = api.create_batch(&file_id, "/v1/chat/completions").await;
    let first = api
        .wait_terminal(first["id"].as_str().expect("id"), LIMIT)
        .await;
    let second = api
        .wait_terminal(second["id"].as_str().expect("id"), LIMIT)
        .await;
    assert_eq!(first["status"], "completed");
    assert_eq!(second["status"], "failed");
    let err = &second["errors"]["data"][0];
    assert_eq!(err["code"], "token_limit_exceeded");
    let msg = err["message"].as_str().expect("message");
    assert!(
        msg.starts_with("Enqueued token limit reached for gpt-4o-mini in organization org-"),
        "{msg}"
    );
    assert!(msg.contains("Limit: 90,000 enqueued tokens."));
    assert_eq!(emu.counters().faults_injected.get("token-limit"), Some(&1));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_partial_results() {
    let (emu, api) = manual(Timings::default()).await;
    let lines: Vec<String> = (0..20).map(|i| chat_line(&format!("c{i}"), "x")).collect();
    let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let file_id = api.upload(&lines).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let id = b["id"].as_str().expect("id");
    api.advance(60).await;
    let running = api.batch(id).await;
    assert_eq!(running["status"], "in_progress");
    assert_eq!(running["request_counts"]["total"], 20);
    api.advance(5).await;
    let progressed = api.batch(id).await;
    let done_so_far = progressed["request_counts"]["completed"]
        .as_u64()
        .expect("n");
    assert!((5..=7).contains(&done_so_far), "{progressed}");

    let (status, cancelling) = api
        .post(&format!("/batches/{id}/cancel"), &json!(null))
        .await;
    assert_eq!(status, 200);
    assert_eq!(cancelling["status"], "cancelling");
    assert!(cancelling["cancelling_at"].is_i64());
    // Cancelling again is harmless.
    let (status, again) = api
        .post(&format!("/batches/{id}/cancel"), &json!(null))
        .await;
    assert_eq!((status, &again["status"]), (200, &json!("cancelling")));

    api.advance(120).await;
    let done = api.batch(id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["cancelled_at"].is_i64());
    let output = api.result_lines(&done["output_file_id"]).await;
    let errors = api.result_lines(&done["error_file_id"]).await;
    assert_each_once(&ids, &output, &errors);
    let processed = output.len() as u64;
    assert!((5..=7).contains(&processed), "processed {processed}");
    assert!(
        errors
            .iter()
            .all(|e| e["error"]["code"] == "batch_cancelled" && e["response"].is_null())
    );
    assert_eq!(
        done["request_counts"],
        json!({"total": 20, "completed": processed, "failed": 20 - processed})
    );
    // A finished batch cannot be cancelled.
    let (status, err) = api
        .post(&format!("/batches/{id}/cancel"), &json!(null))
        .await;
    assert_eq!(status, 200, "{err}");
    let (status, err) = api
        .post(
            &format!("/batches/{}/cancel", completed_batch(&api).await),
            &json!(null),
        )
        .await;
    // 409 Conflict, as the live API answers a cancel it cannot apply.
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(
        err["error"]["message"],
        "Cannot cancel a batch with status 'completed'."
    );
    emu.shutdown().await.expect("shutdown");
}

async fn completed_batch(api: &Api) -> String {
    let file_id = api.upload(&[chat_line("z", "x")]).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let id = b["id"].as_str().expect("id").to_owned();
    api.advance(3600).await;
    assert_eq!(api.batch(&id).await["status"], "completed");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_window_expires_with_partial_results() {
    let timings = Timings {
        per_request: Duration::from_secs(3600),
        ..Timings::default()
    };
    let (emu, api) = manual(timings).await;
    let lines: Vec<String> = (0..30).map(|i| chat_line(&format!("e{i}"), "x")).collect();
    let ids: Vec<String> = (0..30).map(|i| format!("e{i}")).collect();
    let file_id = api.upload(&lines).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let id = b["id"].as_str().expect("id");
    api.advance(25 * 3600).await;
    let done = api.batch(id).await;
    assert_eq!(done["status"], "expired", "{done}");
    assert_eq!(done["expired_at"], done["expires_at"]);
    let output = api.result_lines(&done["output_file_id"]).await;
    let errors = api.result_lines(&done["error_file_id"]).await;
    assert_each_once(&ids, &output, &errors);
    // Validation takes 60 s, so 23 full hours of processing fit before 24 h.
    assert_eq!(output.len(), 23);
    for e in &errors {
        assert_eq!(e["response"], Value::Null);
        assert_eq!(
            e["error"],
            json!({"code": "batch_expired", "message": "This request could not be executed before the completion window expired."})
        );
    }
    assert_eq!(
        done["request_counts"],
        json!({"total": 30, "completed": 23, "failed": 7})
    );
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expire_fault_expires_half_way() {
    let emu = Emulator::builder()
        .speed(2000.0)
        .faults(FaultConfig::parse("expire").expect("spec"))
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let lines: Vec<String> = (0..10).map(|i| chat_line(&format!("x{i}"), "x")).collect();
    let file_id = api.upload(&lines).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
        .await;
    assert_eq!(done["status"], "expired");
    let output = api.result_lines(&done["output_file_id"]).await;
    let errors = api.result_lines(&done["error_file_id"]).await;
    assert_eq!((output.len(), errors.len()), (5, 5));
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_expired"));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_text_endpoint_answers_in_its_shape() {
    let (emu, api) = fast().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["a b", "c"]}),
            "list",
        ),
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "hello"}),
            "response",
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
            "text_completion",
        ),
        (
            "/v1/moderations",
            json!({"model": "omni-moderation-latest", "input": "x [[emulator:flag]]"}),
            "",
        ),
    ];
    for (endpoint, body, object) in cases {
        let lines = [
            json!({"custom_id": "one", "method": "POST", "url": endpoint, "body": body})
                .to_string(),
            json!({"custom_id": "two", "method": "POST", "url": endpoint, "body": body})
                .to_string(),
        ];
        let file_id = api.upload(&lines).await;
        let b = api.create_batch(&file_id, endpoint).await;
        let done = api
            .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
            .await;
        assert_eq!(done["status"], "completed", "{endpoint}: {done}");
        assert_eq!(done["error_file_id"], Value::Null);
        let output = api.result_lines(&done["output_file_id"]).await;
        assert_eq!(output.len(), 2);
        let body = &output[0]["response"]["body"];
        match endpoint {
            "/v1/embeddings" => {
                assert_eq!(body["object"], object);
                assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
                assert_eq!(
                    body["data"][0]["embedding"].as_array().map(Vec::len),
                    Some(16)
                );
            }
            "/v1/responses" => {
                assert_eq!(body["object"], object);
                assert_eq!(body["output"][0]["content"][0]["text"], "Echo: hello");
                assert_eq!(body["status"], "completed");
            }
            "/v1/completions" => {
                assert_eq!(body["object"], object);
                assert_eq!(body["choices"][0]["text"], " Echo: hi");
            }
            _ => assert_eq!(body["results"][0]["flagged"], true),
        }
    }
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_folder_keeps_files_and_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = (0..4).map(|i| chat_line(&format!("k{i}"), "x")).collect();

    // First run: one finished batch, one left validating (slow clock).
    let emu = Emulator::builder()
        .speed(2000.0)
        .data_dir(dir.path())
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let file_id = api.upload(&lines).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), LIMIT)
        .await;
    let output_bytes = api
        .content(done["output_file_id"].as_str().expect("out"))
        .await;
    emu.shutdown().await.expect("shutdown");

    let emu = Emulator::builder()
        .speed(1.0)
        .data_dir(dir.path())
        .start()
        .await
        .expect("restart");
    let api = Api::new(&emu.base_url());
    let pending = api.create_batch(&file_id, "/v1/chat/completions").await;
    let (_, before) = api
        .get(&format!("/batches/{}", done["id"].as_str().expect("id")))
        .await;
    emu.shutdown().await.expect("shutdown");

    // Second restart: everything is still there and the pending batch resumes.
    let emu = Emulator::builder()
        .speed(2000.0)
        .data_dir(dir.path())
        .start()
        .await
        .expect("restart");
    let api = Api::new(&emu.base_url());
    let (status, again) = api
        .get(&format!("/batches/{}", done["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, before);
    assert_eq!(again["status"], "completed");
    let (status, file) = api.get(&format!("/files/{file_id}")).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(
        api.content(done["output_file_id"].as_str().expect("out"))
            .await,
        output_bytes
    );
    let resumed = api
        .wait_terminal(pending["id"].as_str().expect("id"), LIMIT)
        .await;
    assert_eq!(resumed["status"], "completed");
    let (_, list) = api.get("/batches").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    // New ids do not collide with old ones.
    let third = api.create_batch(&file_id, "/v1/chat/completions").await;
    assert_ne!(third["id"], pending["id"]);
    assert_ne!(third["id"], done["id"]);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_input_snapshot_fails_the_batch_instead_of_hanging() {
    let (emu, api) = manual(Timings::default()).await;
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let id = b["id"].as_str().expect("id");
    api.advance(61).await;
    let running = api.batch(id).await;
    assert!(
        running["status"] == "in_progress" || running["status"] == "finalizing",
        "{running}"
    );
    std::fs::remove_file(emu.data_dir().join("batches").join(format!("{id}.jsonl")))
        .expect("remove snapshot");
    api.advance(3600).await;
    let done = api.batch(id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["errors"]["data"][0]["code"], "server_error");
    emu.shutdown().await.expect("shutdown");
}
