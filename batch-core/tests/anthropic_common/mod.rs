//! A deterministic simulation of Anthropic's Message Batches API, in
//! memory, on a virtual clock, with scripted faults and crashes, for
//! driving a `Job` whose provider is `Provider::anthropic()`.
//!
//! The simulated server follows the documented wire shapes
//! (<https://docs.anthropic.com/en/api/creating-message-batches> and its
//! siblings): it parses the streamed create body as one JSON document,
//! refuses duplicate or malformed `custom_id`s, answers batches in
//! Anthropic's shape, lists newest first with `after_id`, and serves the
//! results JSONL (in reverse order, with `Range`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

pub use batch_core::UnixMillis;
use batch_core::anthropic::{self, MessagesTemplate, format_rfc3339};
use batch_core::api::{ApiBase, ApiConfig, Outgoing};
use batch_core::http::{self, HeaderValue, Method, Request, StatusCode};
use batch_core::input::{BatchRequest, Item, SystemPrompt};
use batch_core::job::{
    Checkpoint, EffectState, FailureKind, Job, JobConfig, JobEvent, JobOutcome, JobPlan, JobResult,
    JobSummary, PlanBuilder, ShardLimits, Step, TransportFailure,
};
use serde_json::{Value, json};

pub const BASE: &str = "http://anthropic.sim.invalid";
pub const KEY: &str = "sk-ant-sim-secret";
pub const T0: u64 = 1_700_000_000_000;
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 60 * MIN;

pub fn api() -> ApiBase {
    ApiBase::new(&ApiConfig::anthropic(KEY).with_base_url(BASE)).expect("api base")
}

/// Behaviour of simulated batches.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// A batch processes all its requests over this long.
    pub run_ms: u64,
    /// A canceling batch ends this long after the cancel.
    pub cancel_ms: u64,
    /// A batch ends after this long at the latest (the real API: 24 h).
    pub expire_ms: u64,
    /// Processing stops at this fraction of requests (so the rest expire).
    pub stall_at: Option<f64>,
    /// `results_url` names this origin instead of the server's.
    pub results_origin: Option<String>,
    /// The results leave out this request's line.
    pub drop_result: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            run_ms: HOUR,
            cancel_ms: 5 * MIN,
            expire_ms: 24 * HOUR,
            stall_at: None,
            results_origin: None,
            drop_result: None,
        }
    }
}

#[derive(Clone, Debug)]
struct SimBatch {
    id: String,
    created_ms: u64,
    ids: Vec<String>,
    cancel_ms: Option<u64>,
}

/// Counters a test checks.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub creates: u64,
    pub polls: u64,
    pub lists: u64,
    pub cancels: u64,
    pub results: u64,
}

/// The simulated server.
#[derive(Debug, Default)]
pub struct SimApi {
    pub cfg: SimConfig,
    batches: Vec<SimBatch>,
    next: u64,
    pub counters: Counters,
    /// Every request's URL, in order.
    pub urls: Vec<String>,
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

pub fn error(status: u16, kind: &str, message: &str) -> SimResponse {
    json_response(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// The JSON a request body holds: the head, the shard's bytes and the tail.
pub fn body_bytes(req: &Request<Outgoing>, shards: &[Vec<u8>]) -> Vec<u8> {
    match req.body() {
        Outgoing::Multipart {
            head, shard, tail, ..
        } => {
            let mut b = head.to_vec();
            b.extend_from_slice(&shards[shard.index as usize]);
            b.extend_from_slice(tail);
            b
        }
        Outgoing::Json(b) | Outgoing::Bytes(b) => b.to_vec(),
        _ => Vec::new(),
    }
}

impl SimApi {
    pub fn new(cfg: SimConfig) -> Self {
        SimApi {
            cfg,
            ..Default::default()
        }
    }

    /// Adds a batch someone else created at `at_ms` holding `ids`.
    pub fn add_foreign_batch(&mut self, ids: Vec<String>, at_ms: u64) -> String {
        let id = self.id();
        self.batches.push(SimBatch {
            id: id.clone(),
            created_ms: at_ms,
            ids,
            cancel_ms: None,
        });
        id
    }

    /// How many batches hold request `custom_id`.
    pub fn batches_holding(&self, custom_id: &str) -> usize {
        self.batches
            .iter()
            .filter(|b| b.ids.iter().any(|i| i == custom_id))
            .count()
    }

    /// Whether batch `id` holds request `custom_id`.
    pub fn batch_holds(&self, id: &str, custom_id: &str) -> bool {
        self.batches
            .iter()
            .any(|b| b.id == id && b.ids.iter().any(|i| i == custom_id))
    }

    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    fn id(&mut self) -> String {
        self.next += 1;
        format!("msgbatch_{:06}", self.next)
    }

    /// Answers one request at virtual time `now`.
    pub fn handle(
        &mut self,
        req: &Request<Outgoing>,
        shards: &[Vec<u8>],
        now: UnixMillis,
    ) -> SimResponse {
        let now = now.as_millis();
        self.urls.push(req.uri().to_string());
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        if h("x-api-key") != KEY {
            return error(401, "authentication_error", "invalid x-api-key");
        }
        if h("anthropic-version") != "2023-06-01" {
            return error(400, "invalid_request_error", "anthropic-version missing");
        }
        if req.uri().host() != Some("anthropic.sim.invalid") {
            return error(404, "not_found_error", "another host");
        }
        let path = req.uri().path().to_owned();
        let q: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method().clone(), segs.as_slice()) {
            (Method::POST, ["v1", "messages", "batches"]) => self.create(req, shards, now),
            (Method::GET, ["v1", "messages", "batches"]) => {
                self.counters.lists += 1;
                let mut items: Vec<Value> = Vec::new();
                let ids: Vec<String> = self.batches.iter().rev().map(|b| b.id.clone()).collect();
                for id in &ids {
                    items.push(self.batch_json(id, now));
                }
                let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
                let start = q.get("after_id").map_or(0, |a| {
                    items
                        .iter()
                        .position(|v| v["id"] == *a)
                        .map_or(items.len(), |p| p + 1)
                });
                let data: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
                let has_more = start + data.len() < items.len();
                json_response(
                    200,
                    &json!({"data": data, "has_more": has_more, "first_id": data.first().map(|v| v["id"].clone()), "last_id": data.last().map(|v| v["id"].clone())}),
                )
            }
            (Method::GET, ["v1", "messages", "batches", id]) => {
                self.counters.polls += 1;
                if !self.batches.iter().any(|b| b.id == *id) {
                    return error(404, "not_found_error", "no such batch");
                }
                json_response(200, &self.batch_json(id, now))
            }
            (Method::POST, ["v1", "messages", "batches", id, "cancel"]) => {
                self.counters.cancels += 1;
                let Some(i) = self.batches.iter().position(|b| b.id == *id) else {
                    return error(404, "not_found_error", "no such batch");
                };
                if self.state(i, now).0 != "ended" && self.batches[i].cancel_ms.is_none() {
                    self.batches[i].cancel_ms = Some(now);
                }
                let id = id.to_string();
                json_response(200, &self.batch_json(&id, now))
            }
            (Method::GET, ["v1", "messages", "batches", id, "results"]) => {
                self.counters.results += 1;
                let Some(i) = self.batches.iter().position(|b| b.id == *id) else {
                    return error(404, "not_found_error", "no such batch");
                };
                if self.state(i, now).0 != "ended" {
                    return error(400, "invalid_request_error", "not ended");
                }
                let bytes = self.results(i, now);
                let start: usize = req
                    .headers()
                    .get(http::header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                if start > 0 {
                    if start >= bytes.len() {
                        return response(416, Vec::new());
                    }
                    let mut r = response(206, bytes[start..].to_vec());
                    let v = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
                    r.head.headers.insert(
                        http::header::CONTENT_RANGE,
                        HeaderValue::from_str(&v).unwrap(),
                    );
                    r
                } else {
                    response(200, bytes)
                }
            }
            _ => error(404, "not_found_error", "unknown route"),
        }
    }

    fn create(&mut self, req: &Request<Outgoing>, shards: &[Vec<u8>], now: u64) -> SimResponse {
        let body = body_bytes(req, shards);
        if req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            != Some(body.len().to_string().as_str())
        {
            return error(400, "invalid_request_error", "content-length mismatch");
        }
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return error(400, "invalid_request_error", "the body is not JSON");
        };
        let Some(list) = v["requests"].as_array() else {
            return error(400, "invalid_request_error", "requests: field required");
        };
        let mut ids = Vec::new();
        let mut seen = BTreeSet::new();
        for (k, r) in list.iter().enumerate() {
            let Some(id) = r["custom_id"].as_str() else {
                return error(
                    400,
                    "invalid_request_error",
                    &format!("requests.{k}.custom_id"),
                );
            };
            if anthropic::check_custom_id(id).is_err() || !seen.insert(id.to_owned()) {
                return error(
                    400,
                    "invalid_request_error",
                    &format!("requests.{k}.custom_id"),
                );
            }
            if !r["params"].is_object() {
                return error(
                    400,
                    "invalid_request_error",
                    &format!("requests.{k}.params"),
                );
            }
            ids.push(id.to_owned());
        }
        self.counters.creates += 1;
        let id = self.id();
        self.batches.push(SimBatch {
            id: id.clone(),
            created_ms: now,
            ids,
            cancel_ms: None,
        });
        json_response(200, &self.batch_json(&id, now))
    }

    /// (processing_status, processed, ended_at) of batch `i` at `now`.
    fn state(&self, i: usize, now: u64) -> (&'static str, u64, Option<u64>) {
        let b = &self.batches[i];
        let c = &self.cfg;
        let n = b.ids.len() as u64;
        let processed_at = |t: u64| -> u64 {
            let t = t.saturating_sub(b.created_ms);
            let p = (n * t.min(c.run_ms)).checked_div(c.run_ms).unwrap_or(n);
            match c.stall_at {
                Some(f) => p.min((n as f64 * f) as u64),
                None => p,
            }
        };
        if let Some(cm) = b.cancel_ms {
            let p = processed_at(cm);
            return if now >= cm + c.cancel_ms {
                ("ended", p, Some(cm + c.cancel_ms))
            } else {
                ("canceling", p, None)
            };
        }
        let p = processed_at(now);
        if p >= n {
            let done = b.created_ms + c.run_ms;
            return ("ended", n, Some(done));
        }
        if now >= b.created_ms + c.expire_ms {
            return (
                "ended",
                processed_at(b.created_ms + c.expire_ms),
                Some(b.created_ms + c.expire_ms),
            );
        }
        ("in_progress", p, None)
    }

    fn batch_json(&self, id: &str, now: u64) -> Value {
        let i = self.batches.iter().position(|b| b.id == id).unwrap();
        let b = &self.batches[i];
        let (status, processed, ended) = self.state(i, now);
        let n = b.ids.len() as u64;
        let errored = b.ids[..processed as usize]
            .iter()
            .filter(|id| id.contains("fail"))
            .count() as u64;
        let (processing, canceled, expired) = match (status, b.cancel_ms) {
            ("ended", Some(_)) => (0, n - processed, 0),
            ("ended", None) => (0, 0, n - processed),
            _ => (n - processed, 0, 0),
        };
        let origin = self
            .cfg
            .results_origin
            .clone()
            .unwrap_or_else(|| BASE.to_owned());
        let secs = |ms: u64| format_rfc3339((ms / 1000) as i64);
        json!({
            "id": b.id, "type": "message_batch", "processing_status": status,
            "request_counts": {"processing": processing, "succeeded": processed - errored, "errored": errored, "canceled": canceled, "expired": expired},
            "ended_at": ended.map(secs), "created_at": secs(b.created_ms), "expires_at": secs(b.created_ms + 24 * HOUR),
            "cancel_initiated_at": b.cancel_ms.map(secs), "archived_at": null,
            "results_url": (status == "ended").then(|| format!("{origin}/v1/messages/batches/{}/results", b.id)),
        })
    }

    fn results(&self, i: usize, now: u64) -> Vec<u8> {
        let b = &self.batches[i];
        let (_, processed, _) = self.state(i, now);
        let mut out = String::new();
        for (k, id) in b.ids.iter().enumerate().rev() {
            if self.cfg.drop_result.as_ref() == Some(id) {
                continue;
            }
            let result = if (k as u64) >= processed {
                if b.cancel_ms.is_some() {
                    json!({"type": "canceled"})
                } else {
                    json!({"type": "expired"})
                }
            } else if id.contains("fail") {
                json!({"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "messages: too long"}}})
            } else {
                json!({"type": "succeeded", "message": {"id": format!("msg_{k}"), "type": "message", "role": "assistant", "model": "claude-sim", "content": [{"type": "text", "text": format!("answer to {id}")}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3}}})
            };
            out.push_str(&json!({"custom_id": id, "result": result}).to_string());
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// What goes wrong with one exchange.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    None,
    /// The server answers this status without acting (429 gets `retry-after`).
    Status(u16),
    /// The server acts, then answers this status.
    StatusAfterAct(u16),
    /// The server acts; the answer is lost.
    LostAfterSend,
    /// The server acts; the body is cut after this fraction.
    CutBody(f64),
    /// Nothing reaches the server.
    NotSent,
    /// The server acts and never answers (the job must cut the exchange).
    SilentAfterAct,
}

/// Chooses the fault of exchange `n` (1-based over the harness's life).
pub type FaultFn<'a> = Box<dyn FnMut(u64, &Request<Outgoing>) -> Fault + 'a>;
/// Says whether the process dies once the server acted on this exchange.
pub type CrashFn<'a> = Box<dyn FnMut(&Request<Outgoing>) -> bool + 'a>;

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    Done(JobSummary),
    Crashed,
}

impl RunEnd {
    pub fn done(self) -> JobSummary {
        match self {
            RunEnd::Done(s) => s,
            RunEnd::Crashed => panic!("expected Done, got a crash"),
        }
    }
}

/// Drives a job against the simulation.
pub struct Harness {
    pub sim: SimApi,
    pub shards: Vec<Vec<u8>>,
    pub now: UnixMillis,
    pub durable: BTreeMap<u64, JobResult>,
    pub volatile: BTreeMap<u64, JobResult>,
    pub checkpoint: Option<Checkpoint>,
    pub events: Vec<JobEvent>,
    pub exchanges: u64,
    /// Every exchange: (method, path).
    pub log: Vec<(Method, String)>,
    /// Indexes delivered twice in one run.
    pub duplicates_in_run: Vec<u64>,
    delivered: BTreeSet<u64>,
    /// The exchanges the job cut, and when.
    pub aborted: Vec<(batch_core::job::ExchangeId, UnixMillis)>,
}

impl Harness {
    pub fn new(sim: SimApi, shards: Vec<Vec<u8>>) -> Self {
        Harness {
            sim,
            shards,
            now: UnixMillis(T0),
            durable: BTreeMap::new(),
            volatile: BTreeMap::new(),
            checkpoint: None,
            events: Vec::new(),
            exchanges: 0,
            log: Vec::new(),
            duplicates_in_run: Vec::new(),
            delivered: BTreeSet::new(),
            aborted: Vec::new(),
        }
    }

    pub fn run(&mut self, job: &mut Job) -> JobSummary {
        self.run_with(job, Box::new(|_, _| Fault::None), None, |_, _| false)
            .done()
    }

    /// Runs until done; crashes (losing undurable results) before sending
    /// the exchange that `crash_before` says yes to, or after the server
    /// acted on one `crash_after` says yes to.
    pub fn run_with(
        &mut self,
        job: &mut Job,
        mut fault: FaultFn<'_>,
        mut crash_after: Option<CrashFn<'_>>,
        mut at_wait: impl FnMut(&mut Job, UnixMillis) -> bool,
    ) -> RunEnd {
        self.delivered.clear();
        for _ in 0..1_000_000 {
            match job.poll(self.now) {
                Step::Send { id, request } => {
                    self.check_write_ahead(&request);
                    self.exchanges += 1;
                    self.log
                        .push((request.method().clone(), request.uri().path().to_owned()));
                    if crash_after.as_mut().is_some_and(|c| c(&request)) {
                        let _ = self.sim.handle(&request, &self.shards, self.now);
                        self.volatile.clear();
                        return RunEnd::Crashed;
                    }
                    let f = fault(self.exchanges, &request);
                    self.exchange(job, id, &request, f);
                }
                Step::Wait { until, .. } => {
                    assert!(until >= self.now, "wait in the past");
                    if at_wait(job, self.now) {
                        continue;
                    }
                    self.now = until;
                }
                Step::Persist(cp) => {
                    let v = std::mem::take(&mut self.volatile);
                    self.durable.extend(v);
                    let json = serde_json::to_string(&cp).unwrap();
                    assert!(!json.contains(KEY), "the key is in a checkpoint");
                    let back: Checkpoint = serde_json::from_str(&json).unwrap();
                    assert_eq!(back, cp, "a checkpoint changed in a JSON round trip");
                    self.checkpoint = Some(back);
                }
                Step::Event(ev) => self.events.push(ev),
                Step::Result(r) => {
                    if !self.delivered.insert(r.index) {
                        self.duplicates_in_run.push(r.index);
                    }
                    self.volatile.insert(r.index, r);
                }
                Step::Abort(id) => self.aborted.push((id, self.now)),
                Step::Done(summary) => {
                    let v = std::mem::take(&mut self.volatile);
                    self.durable.extend(v);
                    return RunEnd::Done(summary);
                }
                other => panic!("unexpected step {other:?}"),
            }
        }
        panic!("the job did not finish (livelock?)");
    }

    /// A create leaves only once the checkpoint says it may have happened.
    fn check_write_ahead(&self, request: &Request<Outgoing>) {
        if let Outgoing::Multipart { shard, .. } = request.body() {
            let saved = self
                .checkpoint
                .as_ref()
                .map(|cp| &cp.shards[shard.index as usize]);
            assert_eq!(
                saved.map(|s| s.create),
                Some(EffectState::MaybeSent),
                "shard {}'s create was sent before its checkpoint said so",
                shard.index
            );
            assert!(saved.is_some_and(|s| s.create_armed_at.is_some()));
        }
    }

    fn exchange(
        &mut self,
        job: &mut Job,
        id: batch_core::job::ExchangeId,
        request: &Request<Outgoing>,
        f: Fault,
    ) {
        match f {
            Fault::NotSent => job
                .handle_failure(
                    id,
                    TransportFailure::new(FailureKind::NotSent, "connection refused"),
                    self.now,
                )
                .unwrap(),
            Fault::Status(code) => {
                let kind = match code {
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                let mut r = error(code, kind, "simulated failure");
                if code == 429 {
                    r.head
                        .headers
                        .insert("retry-after", HeaderValue::from_static("20"));
                }
                self.feed(job, id, r, None);
            }
            Fault::StatusAfterAct(code) => {
                let _ = self.sim.handle(request, &self.shards, self.now);
                let r = error(code, "api_error", "simulated failure after acting");
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
            Fault::SilentAfterAct => {
                let _ = self.sim.handle(request, &self.shards, self.now);
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
        let mut results = Vec::new();
        for chunk in body.chunks(97) {
            let mut feed = job.handle_body(id, chunk).unwrap();
            while let Some(res) = feed.next_result() {
                results.push(res);
            }
        }
        for res in results {
            if !self.delivered.insert(res.index) {
                self.duplicates_in_run.push(res.index);
            }
            self.volatile.insert(res.index, res);
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
    pub fn counts(&self) -> (u64, u64, u64) {
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

    pub fn creates_logged(&self) -> usize {
        self.log
            .iter()
            .filter(|(m, p)| *m == Method::POST && p == "/v1/messages/batches")
            .count()
    }

    pub fn warnings(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                JobEvent::Warning { message, .. } => Some(message.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// `n` short items `req-0..` (every `fail_every`-th has "fail" in its id),
/// planned as Message Batches of at most `per_shard` requests.
pub fn plan(n: usize, fail_every: Option<usize>, per_shard: u64) -> (JobPlan, Vec<Vec<u8>>) {
    let template = MessagesTemplate::new(
        "claude-sim",
        &SystemPrompt::Text("be brief".into()),
        Some(64),
    );
    let reqs: Vec<BatchRequest> = (0..n)
        .map(|i| {
            let id = if fail_every.is_some_and(|k| i % k == k - 1) {
                format!("req-{i}-fail")
            } else {
                format!("req-{i}")
            };
            template
                .request(
                    "items",
                    i as u64 + 1,
                    &Item::new(id, format!("question {i}")),
                )
                .unwrap()
        })
        .collect();
    plan_of(&reqs, per_shard)
}

pub fn plan_of(reqs: &[BatchRequest], per_shard: u64) -> (JobPlan, Vec<Vec<u8>>) {
    let mut b = PlanBuilder::anthropic(
        "job-anth",
        ShardLimits::new(per_shard, anthropic::MAX_BODY_BYTES),
        "items",
    );
    let mut shards: Vec<Vec<u8>> = Vec::new();
    let mut line = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let p = b.push(i as u64 + 1, r, &mut line).unwrap();
        if p.new_shard {
            shards.push(Vec::new());
        }
        shards.last_mut().unwrap().extend_from_slice(&line);
    }
    (b.finish().unwrap(), shards)
}

pub fn config() -> JobConfig {
    let mut cfg = JobConfig::new(api());
    cfg.seed = 42;
    cfg.poll_interval = std::time::Duration::from_secs(60);
    cfg
}

/// Every request has exactly one durable outcome, named by its own id.
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
    assert!(
        h.duplicates_in_run.is_empty(),
        "delivered twice: {:?}",
        h.duplicates_in_run
    );
}
