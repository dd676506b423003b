//! A deterministic simulation of the Files and Batches API, in memory, on a
//! virtual clock, with scripted faults and crashes, for driving a `Job`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

use batch_core::api::{ApiBase, ApiConfig, Outgoing};
use batch_core::http::{self, HeaderValue, Method, Request, StatusCode};
use batch_core::input::BatchRequest;
use batch_core::job::{
    BatchJob, BatchOptions, Checkpoint, EffectState, FailureKind, Job, JobConfig, JobEvent,
    JobOutcome, JobPlan, JobResult, JobSummary, NotProcessed, ShardLimits, Step, TransportFailure,
    shard_filename,
};
pub use batch_core::{Endpoint, UnixMillis};
use serde_json::{Value, json};

pub const BASE: &str = "http://sim.invalid/v1";

pub fn api() -> ApiBase {
    ApiBase::new(&ApiConfig::new("sk-sim-secret").with_base_url(BASE)).expect("api base")
}

/// Timings and behaviour of simulated batches.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validate_ms: u64,
    pub run_ms: u64,
    pub finalize_ms: u64,
    pub cancel_ms: u64,
    /// Batches expire after this long (the real API: 24 h).
    pub expire_ms: u64,
    /// Batches stall in progress after this fraction of requests, so they expire.
    pub stall_at: Option<f64>,
    /// The first N creates fail validation with `token_limit_exceeded`.
    pub token_limit_creates: u32,
    /// Every batch fails validation with this error at this line.
    pub validation_error: Option<(String, u64)>,
    /// A garbage line is written into each output file.
    pub garbage_line: bool,
    /// Output lines that are missing (dropped by the server) for these ids.
    pub drop_ids: BTreeSet<String>,
    /// The content endpoint ignores `Range` and always sends the whole file.
    pub ignore_range: bool,
    /// Result files do not end with a newline.
    pub no_final_newline: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            validate_ms: 60_000,
            run_ms: 3_600_000,
            finalize_ms: 120_000,
            cancel_ms: 300_000,
            expire_ms: 24 * 3_600_000,
            stall_at: None,
            token_limit_creates: 0,
            validation_error: None,
            garbage_line: false,
            drop_ids: BTreeSet::new(),
            ignore_range: false,
            no_final_newline: false,
        }
    }
}

#[derive(Clone, Debug)]
struct SimFile {
    id: String,
    filename: String,
    purpose: String,
    bytes: Vec<u8>,
    created_at: u64,
}

#[derive(Clone, Debug)]
struct SimBatch {
    id: String,
    input_file_id: String,
    endpoint: String,
    metadata: Option<Value>,
    created_ms: u64,
    ids: Vec<String>,
    token_limit: bool,
    cancel_ms: Option<u64>,
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    terminal: Option<(String, u64, u64)>, // (status, processed, at_ms)
}

/// Counters a test checks.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub uploads: u64,
    pub creates: u64,
    pub polls: u64,
    pub downloads: u64,
    pub lists: u64,
    pub cancels: u64,
}

/// The simulated server.
#[derive(Debug, Default)]
pub struct SimApi {
    pub cfg: SimConfig,
    files: Vec<SimFile>,
    batches: Vec<SimBatch>,
    next: u64,
    creates_seen: u32,
    pub counters: Counters,
}

pub struct SimResponse {
    pub head: http::response::Parts,
    pub body: Vec<u8>,
}

fn response(status: u16, body: Vec<u8>) -> SimResponse {
    let mut r = http::Response::new(());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let (head, ()) = r.into_parts();
    SimResponse { head, body }
}

fn json_response(status: u16, v: &Value) -> SimResponse {
    let mut r = response(status, serde_json::to_vec(v).unwrap());
    r.head.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, message: &str, code: Option<&str>) -> SimResponse {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

impl SimApi {
    pub fn new(cfg: SimConfig) -> Self {
        SimApi {
            cfg,
            ..Default::default()
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{:06}", self.next)
    }

    /// How many batches exist whose metadata names `shard` and that did not
    /// fail for the token limit.
    pub fn live_batches_for_shard(&self, shard: u32) -> usize {
        self.batches
            .iter()
            .filter(|b| !b.token_limit)
            .filter(|b| {
                b.metadata
                    .as_ref()
                    .and_then(|m| m.get("openai_batch_shard"))
                    .and_then(Value::as_str)
                    == Some(&shard.to_string())
            })
            .count()
    }

    pub fn uploads_named(&self, name: &str) -> usize {
        self.files.iter().filter(|f| f.filename == name).count()
    }

    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// Answers one request at virtual time `now`.
    pub fn handle(
        &mut self,
        req: &Request<Outgoing>,
        shards: &[Vec<u8>],
        now: UnixMillis,
    ) -> SimResponse {
        let now = now.as_millis();
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth.starts_with("Bearer ") {
            return error(401, "missing bearer", Some("invalid_api_key"));
        }
        let path_q = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let path_q = path_q.strip_prefix("/v1").unwrap_or(&path_q).to_owned();
        let (path, query) = path_q
            .split_once('?')
            .map_or((path_q.as_str(), ""), |(a, b)| (a, b));
        let q: BTreeMap<String, String> = query
            .split('&')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method().clone(), segs.as_slice()) {
            (Method::POST, ["files"]) => self.upload(req, shards, now),
            (Method::GET, ["files"]) => {
                self.counters.lists += 1;
                let mut files: Vec<&SimFile> = self
                    .files
                    .iter()
                    .filter(|f| q.get("purpose").is_none_or(|p| *p == f.purpose))
                    .collect();
                files.reverse();
                page(files.iter().map(|f| file_json(f)).collect(), &q, 10_000)
            }
            (Method::GET, ["files", id]) => match self.files.iter().find(|f| f.id == *id) {
                Some(f) => json_response(200, &file_json(f)),
                None => error(404, "no such file", None),
            },
            (Method::GET, ["files", id, "content"]) => {
                self.counters.downloads += 1;
                let Some(f) = self.files.iter().find(|f| f.id == *id) else {
                    return error(404, "no such file", None);
                };
                let range = req
                    .headers()
                    .get(http::header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|r| r.strip_prefix("bytes="))
                    .filter(|_| !self.cfg.ignore_range);
                let start: usize = range
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                if start > 0 {
                    if start >= f.bytes.len() {
                        return response(416, Vec::new());
                    }
                    let mut r = response(206, f.bytes[start..].to_vec());
                    let v = format!("bytes {start}-{}/{}", f.bytes.len() - 1, f.bytes.len());
                    r.head.headers.insert(
                        http::header::CONTENT_RANGE,
                        HeaderValue::from_str(&v).unwrap(),
                    );
                    r.head.headers.insert(
                        http::header::ETAG,
                        HeaderValue::from_str(&format!("\"{}\"", f.id)).unwrap(),
                    );
                    r
                } else {
                    let mut r = response(200, f.bytes.clone());
                    r.head.headers.insert(
                        http::header::ETAG,
                        HeaderValue::from_str(&format!("\"{}\"", f.id)).unwrap(),
                    );
                    r
                }
            }
            (Method::POST, ["batches"]) => self.create(req, now),
            (Method::GET, ["batches"]) => {
                self.counters.lists += 1;
                let ids: Vec<String> = self.batches.iter().rev().map(|b| b.id.clone()).collect();
                let items: Vec<Value> = ids.iter().map(|id| self.batch_json(id, now)).collect();
                page(items, &q, 100)
            }
            (Method::GET, ["batches", id]) => {
                self.counters.polls += 1;
                if !self.batches.iter().any(|b| b.id == *id) {
                    return error(404, "no such batch", None);
                }
                json_response(200, &self.batch_json(id, now))
            }
            (Method::POST, ["batches", id, "cancel"]) => {
                self.counters.cancels += 1;
                let Some(i) = self.batches.iter().position(|b| b.id == *id) else {
                    return error(404, "no such batch", None);
                };
                let status = self.status_of(i, now).0;
                if matches!(
                    status.as_str(),
                    "completed" | "failed" | "expired" | "cancelled"
                ) {
                    return error(
                        400,
                        &format!("Cannot cancel a batch with status '{status}'."),
                        None,
                    );
                }
                if self.batches[i].cancel_ms.is_none() {
                    self.batches[i].cancel_ms = Some(now);
                }
                let id = id.to_string();
                json_response(200, &self.batch_json(&id, now))
            }
            _ => error(404, "unknown route", None),
        }
    }

    fn upload(&mut self, req: &Request<Outgoing>, shards: &[Vec<u8>], now: u64) -> SimResponse {
        let (head, bytes) = match req.body() {
            Outgoing::Multipart { head, shard, .. } => {
                (head.clone(), shards[shard.index as usize].clone())
            }
            _ => return error(400, "expected a multipart upload", None),
        };
        let head = String::from_utf8_lossy(&head).into_owned();
        let filename = head
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_owned();
        if !head.contains("name=\"purpose\"\r\n\r\nbatch\r\n") {
            return error(400, "purpose must be batch", None);
        }
        self.counters.uploads += 1;
        let id = self.id("file-");
        let f = SimFile {
            id,
            filename,
            purpose: "batch".into(),
            bytes,
            created_at: now / 1000,
        };
        let v = file_json(&f);
        self.files.push(f);
        json_response(200, &v)
    }

    fn create(&mut self, req: &Request<Outgoing>, now: u64) -> SimResponse {
        let Outgoing::Json(body) = req.body() else {
            return error(400, "expected JSON", None);
        };
        let v: Value = serde_json::from_slice(body).unwrap();
        let file_id = v["input_file_id"].as_str().unwrap_or("").to_owned();
        let Some(file) = self.files.iter().find(|f| f.id == file_id).cloned() else {
            return error(400, "input file not found", None);
        };
        assert_eq!(v["completion_window"], "24h");
        self.counters.creates += 1;
        self.creates_seen += 1;
        let ids = String::from_utf8_lossy(&file.bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["custom_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let id = self.id("batch_");
        let b = SimBatch {
            id: id.clone(),
            input_file_id: file_id,
            endpoint: v["endpoint"].as_str().unwrap_or("").to_owned(),
            metadata: v.get("metadata").cloned(),
            created_ms: now,
            ids,
            token_limit: self.creates_seen <= self.cfg.token_limit_creates,
            cancel_ms: None,
            output_file_id: None,
            error_file_id: None,
            terminal: None,
        };
        self.batches.push(b);
        json_response(200, &self.batch_json(&id, now))
    }

    /// (status, processed requests) of batch `i` at `now`.
    fn status_of(&self, i: usize, now: u64) -> (String, u64) {
        let b = &self.batches[i];
        if let Some((s, p, _)) = &b.terminal {
            return (s.clone(), *p);
        }
        let c = &self.cfg;
        let n = b.ids.len() as u64;
        let t = now.saturating_sub(b.created_ms);
        let processed_at = |t: u64| -> u64 {
            let run_t = t.saturating_sub(c.validate_ms);
            let p = (n * run_t.min(c.run_ms)).checked_div(c.run_ms).unwrap_or(n);
            match c.stall_at {
                Some(f) => p.min((n as f64 * f) as u64),
                None => p,
            }
        };
        if let Some(cm) = b.cancel_ms {
            let processed = processed_at(cm.saturating_sub(b.created_ms));
            if now >= cm + c.cancel_ms {
                return ("cancelled".into(), processed);
            }
            return ("cancelling".into(), processed);
        }
        if t < c.validate_ms {
            return ("validating".into(), 0);
        }
        if b.token_limit || c.validation_error.is_some() {
            return ("failed".into(), 0);
        }
        if t >= c.expire_ms && processed_at(t) < n {
            return ("expired".into(), processed_at(c.expire_ms));
        }
        if t < c.validate_ms + c.run_ms || processed_at(t) < n {
            return ("in_progress".into(), processed_at(t));
        }
        if t < c.validate_ms + c.run_ms + c.finalize_ms {
            return ("finalizing".into(), n);
        }
        ("completed".into(), n)
    }

    fn batch_json(&mut self, id: &str, now: u64) -> Value {
        let i = self.batches.iter().position(|b| b.id == id).unwrap();
        let (status, processed) = self.status_of(i, now);
        let terminal = matches!(
            status.as_str(),
            "completed" | "failed" | "expired" | "cancelled"
        );
        if terminal && self.batches[i].terminal.is_none() {
            self.finish(i, &status, processed, now);
        }
        let b = &self.batches[i];
        let failed_ids = b.ids[..processed as usize]
            .iter()
            .filter(|id| id.contains("fail"))
            .count() as u64;
        let errors = if status == "failed" {
            if b.token_limit {
                json!({"object": "list", "data": [{"code": "token_limit_exceeded", "message": "Enqueued token limit reached for gpt-4o-mini in organization org-sim. Limit: 90,000 enqueued tokens. Please try again once some in_progress batches have been completed.", "param": null, "line": null}]})
            } else {
                let (code, line) = self.cfg.validation_error.clone().unwrap();
                json!({"object": "list", "data": [{"code": code, "message": "invalid line", "param": "body", "line": line}]})
            }
        } else {
            Value::Null
        };
        json!({
            "id": b.id, "object": "batch", "endpoint": b.endpoint, "errors": errors,
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "created_at": b.created_ms / 1000, "in_progress_at": null, "expires_at": (b.created_ms + self.cfg.expire_ms) / 1000,
            "finalizing_at": null, "completed_at": null, "failed_at": null, "expired_at": null, "cancelling_at": null, "cancelled_at": null,
            "request_counts": {"total": b.ids.len(), "completed": processed - failed_ids, "failed": failed_ids},
            "metadata": b.metadata,
        })
    }

    /// Writes the output and error files of a batch that just became terminal.
    fn finish(&mut self, i: usize, status: &str, processed: u64, now: u64) {
        let b = self.batches[i].clone();
        let mut out = String::new();
        let mut err = String::new();
        if status != "failed" {
            // Output order is not input order.
            for (k, id) in b.ids.iter().enumerate().take(processed as usize).rev() {
                if self.cfg.drop_ids.contains(id) {
                    continue;
                }
                if id.contains("fail") {
                    let line = json!({"id": format!("batch_req_{k}"), "custom_id": id, "response": {"status_code": 400, "request_id": format!("req_{k}"), "body": {"error": {"message": "Invalid 'messages': too long.", "type": "invalid_request_error", "param": "messages", "code": null}}}, "error": null});
                    err.push_str(&line.to_string());
                    err.push('\n');
                } else {
                    let line = json!({"id": format!("batch_req_{k}"), "custom_id": id, "response": {"status_code": 200, "request_id": format!("req_{k}"), "body": {"id": format!("chatcmpl-{k}"), "object": "chat.completion", "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("answer to {id}")}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}, "error": null});
                    out.push_str(&line.to_string());
                    out.push('\n');
                    if self.cfg.garbage_line && k == 0 {
                        out.push_str("{this is not json\n");
                    }
                }
            }
            let code = match status {
                "expired" => Some((
                    "batch_expired",
                    "This request could not be executed before the completion window expired.",
                )),
                "cancelled" => Some((
                    "batch_cancelled",
                    "This request was not executed because the batch was cancelled.",
                )),
                _ => None,
            };
            if let Some((code, message)) = code {
                for (k, id) in b.ids.iter().enumerate().skip(processed as usize) {
                    let line = json!({"id": format!("batch_req_{k}"), "custom_id": id, "response": null, "error": {"code": code, "message": message}});
                    err.push_str(&line.to_string());
                    err.push('\n');
                }
            }
        }
        let no_final_newline = self.cfg.no_final_newline;
        let mut mk = |mut content: String, name: &str| -> Option<String> {
            if content.is_empty() {
                return None;
            }
            if no_final_newline {
                content.pop();
            }
            let id = self.id("file-");
            self.files.push(SimFile {
                id: id.clone(),
                filename: name.into(),
                purpose: "batch_output".into(),
                bytes: content.into_bytes(),
                created_at: now / 1000,
            });
            Some(id)
        };
        let out_id = mk(out, "batch_output.jsonl");
        let err_id = mk(err, "batch_errors.jsonl");
        let b = &mut self.batches[i];
        b.output_file_id = out_id;
        b.error_file_id = err_id;
        b.terminal = Some((status.to_owned(), processed, now));
    }
}

fn file_json(f: &SimFile) -> Value {
    json!({"id": f.id, "object": "file", "bytes": f.bytes.len(), "created_at": f.created_at, "expires_at": null, "filename": f.filename, "purpose": f.purpose, "status": "processed", "status_details": null})
}

fn page(items: Vec<Value>, q: &BTreeMap<String, String>, default_limit: usize) -> SimResponse {
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(default_limit);
    let start = match q.get("after") {
        Some(after) => items
            .iter()
            .position(|v| v["id"] == *after)
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let data: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + data.len() < items.len();
    json_response(
        200,
        &json!({"object": "list", "data": data, "first_id": data.first().map(|v| v["id"].clone()), "last_id": data.last().map(|v| v["id"].clone()), "has_more": has_more}),
    )
}

/// What goes wrong with one exchange.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    None,
    /// The server answers this status (429 gets `Retry-After`); it does not act.
    Status(u16),
    /// Nothing reaches the server.
    NotSent,
    /// The server acts, then answers this status (a 5xx that hides a success).
    StatusAfterAct(u16),
    /// The server acts, the answer is lost.
    LostAfterSend,
    /// The server acts; the body is cut after this fraction.
    CutBody(f64),
    /// Something answers this instead (a proxy, a misbehaving server); the
    /// server does not act.
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// The server does not act and never answers.
    Silent,
    /// The server acts, sends the head and the first `n` bytes of the
    /// body, then nothing more.
    HeadThenSilent(usize),
    /// The server acts and answers without a `Content-Length`, with `n`
    /// bytes of junk after the body (a result file that never ends).
    Overlong(usize),
}

/// When a scripted crash happens relative to the exchange it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// The process dies just before sending the exchange.
    BeforeSend,
    /// The server acts on the exchange, then the process dies before it
    /// hears the answer.
    AfterSend,
}

/// One exchange as the simulated server saw it (or did not see it).
#[derive(Clone, Debug)]
pub struct Logged {
    /// 1-based over the harness's whole life.
    pub n: u64,
    pub at: UnixMillis,
    pub method: Method,
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The shard of an upload or create.
    pub shard: Option<u32>,
    pub fault: Fault,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    Done(JobSummary),
    Crashed,
    /// The `pause` predicate held at a `Wait`; nothing is in flight.
    Paused,
}

impl RunEnd {
    pub fn done(self) -> JobSummary {
        match self {
            RunEnd::Done(s) => s,
            other => panic!("expected Done, got {other:?}"),
        }
    }
}

/// Chooses the fault of exchange `n` (1-based over the harness's life).
pub type FaultFn<'a> = Box<dyn FnMut(u64, &Request<Outgoing>) -> Fault + 'a>;
/// Decides at a `Wait` whether to pause the run there.
pub type PauseFn<'a> = Box<dyn FnMut(&Harness) -> bool + 'a>;
/// The time the driver wakes at, given the time it asked to wake at.
pub type WakeFn<'a> = Box<dyn FnMut(UnixMillis) -> UnixMillis + 'a>;

/// The knobs of one run.
pub struct RunOpts<'a> {
    pub fault: FaultFn<'a>,
    /// Crash once this many exchanges were made in this run.
    pub crash_after: Option<u64>,
    pub crash_mode: CrashMode,
    /// Crash instead of storing the checkpoint of this run's n-th `Persist`
    /// (0-based): the process died before the checkpoint was durable.
    pub crash_at_persist: Option<u64>,
    /// Checked at every `Wait`: stop the run there (no exchange in flight).
    pub pause: Option<PauseFn<'a>>,
    /// The time the driver wakes at, given the time it was asked to wake
    /// at (early, late or skewed wake-ups).
    pub wake: Option<WakeFn<'a>>,
    /// Bound on `poll` calls over the harness's life (a livelock fails the test).
    pub max_steps: u64,
}

impl Default for RunOpts<'_> {
    fn default() -> Self {
        RunOpts {
            fault: Box::new(|_, _| Fault::None),
            crash_after: None,
            crash_mode: CrashMode::BeforeSend,
            crash_at_persist: None,
            pause: None,
            wake: None,
            max_steps: 1_000_000,
        }
    }
}

impl<'a> RunOpts<'a> {
    pub fn faults(f: impl FnMut(u64, &Request<Outgoing>) -> Fault + 'a) -> Self {
        RunOpts {
            fault: Box::new(f),
            ..Default::default()
        }
    }
}

/// Drives a job against the simulation, recording everything a test checks.
pub struct Harness {
    pub sim: SimApi,
    pub shards: Vec<Vec<u8>>,
    pub now: UnixMillis,
    /// The durable results: index → result (overwritten on redelivery).
    pub durable: BTreeMap<u64, JobResult>,
    /// Results delivered since the last persist (lost on a crash).
    pub volatile: BTreeMap<u64, JobResult>,
    pub checkpoint: Option<Checkpoint>,
    /// How many checkpoints were persisted.
    pub persists: u64,
    pub events: Vec<JobEvent>,
    pub steps: u64,
    /// Indexes delivered more than once within one uninterrupted run.
    pub duplicates_in_run: Vec<u64>,
    delivered_this_run: BTreeSet<u64>,
    pub exchanges: u64,
    /// Every exchange the job asked for, in order.
    pub log: Vec<Logged>,
    /// How many runs ended in a crash.
    pub crashes: u64,
    /// The exchanges the job aborted, with the time it did.
    pub aborted: Vec<(batch_core::job::ExchangeId, UnixMillis)>,
}

/// The simulation stopped the driver (a scripted crash).
#[derive(Debug)]
pub struct Crashed;

impl Harness {
    pub fn new(sim: SimApi, shards: Vec<Vec<u8>>, start: UnixMillis) -> Self {
        Harness {
            sim,
            shards,
            now: start,
            durable: BTreeMap::new(),
            volatile: BTreeMap::new(),
            checkpoint: None,
            persists: 0,
            events: Vec::new(),
            steps: 0,
            duplicates_in_run: Vec::new(),
            delivered_this_run: BTreeSet::new(),
            exchanges: 0,
            log: Vec::new(),
            crashes: 0,
            aborted: Vec::new(),
        }
    }

    fn deliver(&mut self, r: JobResult) {
        if !self.delivered_this_run.insert(r.index) {
            self.duplicates_in_run.push(r.index);
        }
        self.volatile.insert(r.index, r);
    }

    /// Runs until done, or until `crash_after` exchanges (then the volatile
    /// results are lost, as in a process that died).
    pub fn run(
        &mut self,
        job: &mut Job,
        fault: &mut dyn FnMut(u64, &Request<Outgoing>) -> Fault,
        crash_after: Option<u64>,
        max_steps: u64,
    ) -> Result<JobSummary, Crashed> {
        let opts = RunOpts {
            fault: Box::new(fault),
            crash_after,
            max_steps,
            ..Default::default()
        };
        match self.run_with(job, opts) {
            RunEnd::Done(s) => Ok(s),
            RunEnd::Crashed => Err(Crashed),
            RunEnd::Paused => unreachable!("no pause predicate"),
        }
    }

    /// Runs with the given knobs until done, a crash or a pause.
    pub fn run_with(&mut self, job: &mut Job, mut opts: RunOpts<'_>) -> RunEnd {
        self.delivered_this_run.clear();
        let mut exchanges_here = 0u64;
        let mut persists_here = 0u64;
        loop {
            self.steps += 1;
            assert!(
                self.steps < opts.max_steps,
                "the job did not finish within {} steps (livelock?)",
                opts.max_steps
            );
            match job.poll(self.now) {
                Step::Send { id, request } => {
                    self.check_write_ahead(&request);
                    if opts.crash_after.is_some_and(|c| exchanges_here >= c) {
                        if opts.crash_mode == CrashMode::AfterSend {
                            self.exchanges += 1;
                            self.log_exchange(&request, Fault::LostAfterSend);
                            let _ = self.sim.handle(&request, &self.shards, self.now);
                        }
                        self.volatile.clear();
                        self.crashes += 1;
                        return RunEnd::Crashed;
                    }
                    exchanges_here += 1;
                    self.exchanges += 1;
                    let f = (opts.fault)(self.exchanges, &request);
                    self.log_exchange(&request, f.clone());
                    self.exchange(job, id, &request, f);
                }
                Step::Wait { until, .. } => {
                    assert!(until >= self.now, "wait in the past");
                    if let Some(pause) = opts.pause.as_mut() {
                        if pause(self) {
                            return RunEnd::Paused;
                        }
                    }
                    self.now = match opts.wake.as_mut() {
                        Some(wake) => wake(until),
                        None => until,
                    };
                }
                Step::Persist(cp) => {
                    if opts.crash_at_persist == Some(persists_here) {
                        self.volatile.clear();
                        self.crashes += 1;
                        return RunEnd::Crashed;
                    }
                    persists_here += 1;
                    let v = std::mem::take(&mut self.volatile);
                    self.durable.extend(v);
                    self.persists += 1;
                    // Checkpoints must survive serialization.
                    let json = serde_json::to_string(&cp).unwrap();
                    let back: Checkpoint = serde_json::from_str(&json).unwrap();
                    assert_eq!(back, cp, "a checkpoint changed in a JSON round trip");
                    self.checkpoint = Some(back);
                }
                Step::Event(ev) => self.events.push(ev),
                Step::Result(r) => self.deliver(r),
                Step::Abort(id) => self.aborted.push((id, self.now)),
                Step::Done(summary) => {
                    let v = std::mem::take(&mut self.volatile);
                    self.durable.extend(v);
                    return RunEnd::Done(summary);
                }
                other => panic!("unexpected step {other:?}"),
            }
        }
    }

    /// An upload, create or cancel leaves only once the checkpoint says it
    /// may have happened (write-ahead), so a crash after sending it is
    /// never mistaken for "not sent".
    fn check_write_ahead(&self, request: &Request<Outgoing>) {
        let cp = self.checkpoint.as_ref();
        match request.body() {
            Outgoing::Multipart { shard, .. } => {
                let saved = cp.map(|cp| &cp.shards[shard.index as usize]);
                assert_eq!(
                    saved.map(|s| s.upload),
                    Some(EffectState::MaybeSent),
                    "shard {} uploaded before its checkpoint said so",
                    shard.index
                );
            }
            Outgoing::Json(body) if is_create(request) => {
                let v: Value = serde_json::from_slice(body).unwrap();
                let meta = &v["metadata"];
                let shard: usize = meta["openai_batch_shard"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let attempt: u32 = meta["openai_batch_attempt"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let saved = cp.map(|cp| &cp.shards[shard]);
                assert_eq!(
                    saved.map(|s| (s.create, s.create_attempt)),
                    Some((EffectState::MaybeSent, attempt)),
                    "shard {shard}'s create was sent before its checkpoint said so"
                );
            }
            _ if is_cancel(request) => {
                assert!(
                    cp.is_some_and(|cp| cp.cancel_requested),
                    "a cancel was sent before the checkpoint recorded the cancellation"
                );
            }
            _ => {}
        }
    }

    fn log_exchange(&mut self, request: &Request<Outgoing>, fault: Fault) {
        self.log.push(Logged {
            n: self.exchanges,
            at: self.now,
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
            range: request
                .headers()
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            shard: effect_shard(request),
            fault,
        });
    }

    fn exchange(
        &mut self,
        job: &mut Job,
        id: batch_core::job::ExchangeId,
        request: &Request<Outgoing>,
        f: Fault,
    ) {
        match f {
            Fault::NotSent => {
                job.handle_failure(
                    id,
                    TransportFailure::new(FailureKind::NotSent, "connection refused"),
                    self.now,
                )
                .unwrap();
            }
            Fault::StatusAfterAct(code) => {
                let _ = self.sim.handle(request, &self.shards, self.now);
                let r = error(code, "simulated failure after acting", Some("server_error"));
                self.feed(job, id, r, None);
            }
            Fault::Status(code) => {
                let mut r = error(
                    code,
                    "simulated failure",
                    Some(if code == 429 {
                        "rate_limit_exceeded"
                    } else {
                        "server_error"
                    }),
                );
                if code == 429 {
                    r.head
                        .headers
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("20"));
                }
                self.feed(job, id, r, None);
            }
            Fault::LostAfterSend => {
                let _ = self.sim.handle(request, &self.shards, self.now);
                job.handle_failure(
                    id,
                    TransportFailure::new(FailureKind::OutcomeUnknown, "connection reset"),
                    self.now,
                )
                .unwrap();
            }
            Fault::Reply {
                status,
                headers,
                body,
            } => {
                let mut r = response(status, body);
                for (k, v) in headers {
                    r.head.headers.insert(k, HeaderValue::from_str(&v).unwrap());
                }
                self.feed(job, id, r, None);
            }
            Fault::Silent => {}
            Fault::HeadThenSilent(n) => {
                let r = self.sim.handle(request, &self.shards, self.now);
                job.handle_head(id, r.head, self.now).unwrap();
                let n = n.min(r.body.len());
                if n > 0 {
                    let results: Vec<_> = job.handle_body(id, &r.body[..n]).unwrap().collect();
                    for res in results {
                        self.deliver(res);
                    }
                }
            }
            Fault::Overlong(n) => {
                let mut r = self.sim.handle(request, &self.shards, self.now);
                r.head.headers.remove(http::header::CONTENT_LENGTH);
                r.body
                    .extend(std::iter::repeat_n(b"{\"junk\": true}\n", n / 15 + 1).flatten());
                self.feed(job, id, r, None);
            }
            Fault::CutBody(frac) => {
                let r = self.sim.handle(request, &self.shards, self.now);
                let cut = ((r.body.len() as f64) * frac) as usize;
                self.feed(job, id, r, Some(cut));
            }
            Fault::None => {
                let r = self.sim.handle(request, &self.shards, self.now);
                self.feed(job, id, r, None);
            }
        }
    }

    fn feed(
        &mut self,
        job: &mut Job,
        id: batch_core::job::ExchangeId,
        r: SimResponse,
        cut: Option<usize>,
    ) {
        job.handle_head(id, r.head, self.now).unwrap();
        let body = match cut {
            Some(n) => &r.body[..n],
            None => &r.body[..],
        };
        // Feed in odd-sized chunks to exercise straddling lines.
        let mut results = Vec::new();
        for chunk in body.chunks(97) {
            let mut feed = job.handle_body(id, chunk).unwrap();
            while let Some(res) = feed.next_result() {
                results.push(res);
            }
        }
        for res in results {
            self.deliver(res);
        }
        if cut.is_some() {
            job.handle_failure(
                id,
                TransportFailure::new(FailureKind::BodyInterrupted, "connection closed mid-body"),
                self.now,
            )
            .unwrap();
        } else {
            job.handle_end(id, self.now).unwrap();
        }
    }

    /// (succeeded, failed, not processed) over the durable results.
    pub fn durable_counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for r in self.durable.values() {
            match &r.outcome {
                JobOutcome::Succeeded(_) => c.0 += 1,
                JobOutcome::Failed(_) => c.1 += 1,
                JobOutcome::NotProcessed(_) => c.2 += 1,
                _ => panic!("unknown outcome"),
            }
        }
        c
    }

    /// The not-processed reason of request `index`, or a panic.
    pub fn not_processed(&self, index: u64) -> &NotProcessed {
        match &self.durable[&index].outcome {
            JobOutcome::NotProcessed(np) => np,
            other => panic!("request {index}: expected not processed, got {other:?}"),
        }
    }

    /// No shard has two live batches, and no shard file was uploaded twice.
    pub fn assert_no_double_effects(&self, plan: &JobPlan) {
        for s in plan.shards() {
            assert!(
                self.sim.live_batches_for_shard(s.index) <= 1,
                "shard {} has {} live batches",
                s.index,
                self.sim.live_batches_for_shard(s.index)
            );
            let name = shard_filename(plan.job_id(), s.index);
            assert!(
                self.sim.uploads_named(&name) <= 1,
                "shard {} was uploaded {} times",
                s.index,
                self.sim.uploads_named(&name)
            );
        }
    }

    /// The summary's counts are the durable outcomes' counts.
    pub fn assert_summary_matches(&self, summary: &JobSummary) {
        let (s, f, n) = self.durable_counts();
        assert_eq!(
            (summary.succeeded, summary.failed, summary.not_processed),
            (s, f, n),
            "summary counts vs durable outcomes"
        );
    }
}

/// The shard an upload (by its part) or a create (by its metadata) is for.
pub fn effect_shard(r: &Request<Outgoing>) -> Option<u32> {
    match r.body() {
        Outgoing::Multipart { shard, .. } => Some(shard.index),
        Outgoing::Json(body) if is_create(r) => {
            let v: Value = serde_json::from_slice(body).ok()?;
            v["metadata"]["openai_batch_shard"].as_str()?.parse().ok()
        }
        _ => None,
    }
}

pub fn is_upload(r: &Request<Outgoing>) -> bool {
    r.method() == Method::POST && r.uri().path().ends_with("/files")
}

pub fn is_create(r: &Request<Outgoing>) -> bool {
    r.method() == Method::POST && r.uri().path().ends_with("/batches")
}

pub fn is_cancel(r: &Request<Outgoing>) -> bool {
    r.method() == Method::POST && r.uri().path().ends_with("/cancel")
}

pub fn is_download(r: &Request<Outgoing>) -> bool {
    r.method() == Method::GET && r.uri().path().ends_with("/content")
}

pub fn is_poll(r: &Request<Outgoing>) -> bool {
    r.method() == Method::GET && r.uri().path().contains("/batches/")
}

pub fn is_list(r: &Request<Outgoing>) -> bool {
    r.method() == Method::GET
        && (r.uri().path().ends_with("/batches") || r.uri().path().ends_with("/files"))
}

/// `n` chat requests with ids `req-0..`, where ids listed in `fail` contain "fail".
pub fn requests(n: usize, fail_every: Option<usize>) -> Vec<BatchRequest> {
    (0..n)
        .map(|i| {
            let id = if fail_every.is_some_and(|k| i % k == k - 1) { format!("req-{i}-fail") } else { format!("req-{i}") };
            let line = json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("question {i}")}]}});
            BatchRequest::parse_line("test", i as u64 + 1, line.to_string().as_bytes()).unwrap()
        })
        .collect()
}

/// A job over `reqs` split by `limits`, with its shards' bytes.
pub fn job_for(
    reqs: &[BatchRequest],
    limits: ShardLimits,
    tweak: impl FnOnce(&mut JobConfig),
) -> (Job, JobPlan, Vec<Vec<u8>>, JobConfig) {
    let opts = BatchOptions::new("gpt-4o-mini")
        .endpoint(Endpoint::ChatCompletions)
        .limits(limits);
    let handle = BatchJob::from_requests(reqs, &opts, 7).unwrap();
    let plan = handle.plan().clone();
    let shards = handle.shard_bytes().to_vec();
    let mut cfg = JobConfig::new(api());
    cfg.seed = 42;
    cfg.poll_interval = std::time::Duration::from_secs(30);
    tweak(&mut cfg);
    let job = Job::new(cfg.clone(), plan.clone(), UnixMillis(1_700_000_000_000));
    (job, plan, shards, cfg)
}

/// Checks the core invariant: every index has exactly one outcome.
pub fn assert_every_request_once(h: &Harness, plan: &JobPlan) {
    assert_eq!(
        h.durable.len() as u64,
        plan.len(),
        "every request has an outcome"
    );
    for (i, r) in &h.durable {
        assert_eq!(r.index, *i);
        assert_eq!(r.custom_id, plan.custom_id(*i));
    }
}

pub fn outcome_kind(r: &JobResult) -> &'static str {
    match &r.outcome {
        JobOutcome::Succeeded(_) => "succeeded",
        JobOutcome::Failed(_) => "failed",
        JobOutcome::NotProcessed(_) => "not_processed",
        _ => "other",
    }
}
