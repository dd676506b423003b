//! Helpers for the Anthropic-mode tests: a small Message Batches client
//! over reqwest and builders for requests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use batch_emulator::{Emulator, EmulatorBuilder, ProviderMode, RunningEmulator};
use serde_json::{Value, json};

pub const KEY: &str = "sk-ant-test-emulator";
pub const VERSION: &str = "2023-06-01";

pub struct Api {
    /// The server root, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    pub http: reqwest::Client,
}

/// A reply: status, headers and body (JSON, or the text as a string).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
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

    /// Adds the two required headers.
    pub fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("x-api-key", KEY)
            .header("anthropic-version", VERSION)
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(self.auth(self.http.get(self.url(path)))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.raw(self.auth(self.http.post(self.url(path)).json(body)))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(self.auth(self.http.delete(self.url(path)))).await
    }

    /// Creates a batch and returns it.
    pub async fn create(&self, requests: Vec<Value>) -> Value {
        let r = self
            .post("/v1/messages/batches", &json!({"requests": requests}))
            .await;
        assert_eq!(r.status, 200, "create failed: {}", r.body);
        r.body
    }

    pub async fn batch(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/messages/batches/{id}")).await;
        assert_eq!(r.status, 200, "get failed: {}", r.body);
        r.body
    }

    /// Polls until the batch has `status`; bounded by `limit`.
    pub async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let b = self.batch(id).await;
            if b["processing_status"] == want {
                return b;
            }
            assert!(
                start.elapsed() < limit,
                "batch {id} not {want} after {limit:?}: {b}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The results download: status, content type and the parsed lines.
    pub async fn results(&self, id: &str) -> (u16, String, Vec<Value>) {
        let resp = self
            .auth(
                self.http
                    .get(self.url(&format!("/v1/messages/batches/{id}/results"))),
            )
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        let lines = if status == 200 {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
                .collect()
        } else {
            Vec::new()
        };
        (status, ctype, lines)
    }

    pub async fn counters(&self) -> Value {
        self.http
            .get(format!("{}/__emulator/counters", self.base))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    pub async fn advance(&self, seconds: u64) {
        let resp = self
            .http
            .post(format!("{}/__emulator/advance", self.base))
            .json(&json!({"seconds": seconds}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
    }
}

/// An Anthropic-mode emulator builder with a fixed seed.
pub fn builder() -> EmulatorBuilder {
    Emulator::builder()
        .provider(ProviderMode::Anthropic)
        .seed(7)
}

pub async fn start(b: EmulatorBuilder) -> (RunningEmulator, Api) {
    let emu = b.start().await.expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

/// One request of a create body.
pub fn request(id: &str, text: &str) -> Value {
    json!({
        "custom_id": id,
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": text}]
        }
    })
}

/// The `custom_id`s of result lines, sorted.
pub fn ids(lines: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().expect("custom_id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The result line of `custom_id`.
pub fn line<'a>(lines: &'a [Value], custom_id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["custom_id"] == custom_id)
        .unwrap_or_else(|| panic!("no result for {custom_id}"))
}
