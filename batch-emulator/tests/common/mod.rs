//! Helpers shared by the integration tests: a small API client over reqwest
//! and builders for request lines.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub const KEY: &str = "sk-test-emulator";

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        // In the workspace, reqwest is built without a bundled crypto
        // provider (batch-async brings its own); install ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server root (without `/v1`), for private paths.
    pub fn root(&self) -> String {
        self.base.trim_end_matches("/v1").to_owned()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.bearer_auth(KEY).send().await.expect("send");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn upload_with(&self, name: &str, bytes: Vec<u8>, purpose: &str) -> (u16, Value) {
        let form = Form::new()
            .text("purpose", purpose.to_owned())
            .part("file", Part::bytes(bytes).file_name(name.to_owned()));
        self.send(self.http.post(self.url("/files")).multipart(form))
            .await
    }

    /// Uploads a batch file and returns its id.
    pub async fn upload(&self, lines: &[String]) -> String {
        let (status, file) = self.upload_with("input.jsonl", jsonl(lines), "batch").await;
        assert_eq!(status, 200, "upload failed: {file}");
        file["id"].as_str().expect("file id").to_owned()
    }

    pub async fn create_batch(&self, file_id: &str, endpoint: &str) -> Value {
        let (status, batch) = self
            .post(
                "/batches",
                &json!({"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h"}),
            )
            .await;
        assert_eq!(status, 200, "create failed: {batch}");
        batch
    }

    pub async fn batch(&self, id: &str) -> Value {
        let (status, batch) = self.get(&format!("/batches/{id}")).await;
        assert_eq!(status, 200, "get batch failed: {batch}");
        batch
    }

    /// Polls until the batch reaches a terminal status; bounded by `limit`.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        for _ in 0..10_000 {
            let b = self.batch(id).await;
            let status = b["status"].as_str().unwrap_or_default().to_owned();
            if ["completed", "failed", "expired", "cancelled"].contains(&status.as_str()) {
                return b;
            }
            assert!(
                start.elapsed() < limit,
                "batch {id} still {status} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("batch {id} never finished");
    }

    /// Polls until the batch has `status`; bounded by `limit`.
    pub async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
        let start = Instant::now();
        for _ in 0..10_000 {
            let b = self.batch(id).await;
            if b["status"] == want {
                return b;
            }
            assert!(
                start.elapsed() < limit,
                "batch {id} not {want} after {limit:?}: {b}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("batch {id} never became {want}");
    }

    pub async fn content(&self, file_id: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(self.url(&format!("/files/{file_id}/content")))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        resp.bytes().await.expect("body").to_vec()
    }

    /// Lines of a result file, or none if the id is null.
    pub async fn result_lines(&self, file_id: &Value) -> Vec<Value> {
        match file_id.as_str() {
            Some(id) => parse_lines(&self.content(id).await),
            None => Vec::new(),
        }
    }

    pub async fn counters(&self) -> Value {
        let resp = self
            .http
            .get(format!("{}/__emulator/counters", self.root()))
            .send()
            .await
            .expect("send");
        resp.json().await.expect("json")
    }

    pub async fn advance(&self, seconds: u64) {
        let resp = self
            .http
            .post(format!("{}/__emulator/advance", self.root()))
            .json(&json!({"seconds": seconds}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
    }
}

pub fn chat_line(id: &str, text: &str) -> String {
    chat_line_model(id, text, "gpt-4o-mini")
}

pub fn chat_line_model(id: &str, text: &str, model: &str) -> String {
    json!({
        "custom_id": id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": text}
        ]}
    })
    .to_string()
}

pub fn jsonl(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

pub fn custom_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["custom_id"].as_str().expect("custom_id").to_owned())
        .collect()
}

/// Asserts every id in `expected` appears exactly once across both files.
pub fn assert_each_once(expected: &[String], output: &[Value], errors: &[Value]) {
    let mut all = custom_ids(output);
    all.extend(custom_ids(errors));
    assert_eq!(all.len(), expected.len(), "line count differs");
    let seen: BTreeSet<&String> = all.iter().collect();
    assert_eq!(seen.len(), all.len(), "a custom_id appears twice");
    let want: BTreeSet<&String> = expected.iter().collect();
    assert_eq!(seen, want);
}
