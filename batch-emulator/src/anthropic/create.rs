//! `POST /v1/messages/batches`
//! (<https://docs.anthropic.com/en/api/creating-message-batches>).
//!
//! The body is streamed to a temporary file (at most the configured
//! 256 MB; more is a 413 `request_too_large`), then parsed with a
//! streaming deserializer that visits `requests` one element at a time and
//! writes each as one line of the batch's JSONL snapshot: memory holds one
//! request and the set of `custom_id`s, never the whole body.
//!
//! Checked here (400 `invalid_request_error`, the message naming the
//! request's index): the body is a JSON object with a non-empty
//! `requests` array of at most the request limit (100,000), each an object
//! with a `custom_id` matching `^[a-zA-Z0-9_-]{1,64}$`, unique in the
//! batch, and a `params` object. What is inside `params` is checked per
//! request while the batch runs: a bad one gives an `errored` result.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::error::AnthError;
use super::model::{MessageBatchRecord, Processing};
use crate::error::ok_json;
use crate::lifecycle::advance_all;
use crate::server::{AppState, drain};
use crate::state::lock;

/// Removes a temporary file unless it was moved into place.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `POST /v1/messages/batches`.
pub(super) async fn create(
    State(shared): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = shared.cfg.max_batch_file_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Read the body all the same: hyper would otherwise close the
        // connection under a client that pools it.
        drain(body).await;
        return AnthError::too_large(limit).into_response();
    }
    let mut body_guard = TmpGuard(None);
    let body_path = shared.tmp_path("msgbatch-body");
    body_guard.0 = Some(body_path.clone());
    if let Err(e) = stream_to_file(body, &body_path, limit).await {
        return e.into_response();
    }
    let mut input_guard = TmpGuard(None);
    let input_path = shared.tmp_path("msgbatch-input");
    input_guard.0 = Some(input_path.clone());
    let max_requests = shared.cfg.max_requests_per_batch;
    let (src, dst) = (body_path.clone(), input_path.clone());
    let parsed = tokio::task::spawn_blocking(move || parse_body(&src, &dst, max_requests)).await;
    let total = match parsed {
        Ok(Ok(total)) => total,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => return AnthError::internal(e).into_response(),
    };
    drop(body_guard);
    advance_all(&shared).await;
    let now = shared.clock.now_ms();
    let t = shared.cfg.timings;
    let (id, seq) = lock(&shared.db).alloc_message_batch_id(shared.seed());
    let faults = lock(&shared.faults).on_batch_created();
    if let Err(e) = tokio::fs::rename(&input_path, shared.batch_input_path(&id)).await {
        return AnthError::internal(e).into_response();
    }
    input_guard.0 = None;
    let stall_ms = shared.clock.real_to_virtual_ms(faults.stall_real_ms);
    let start_ms = now + stall_ms;
    let per_request_ms = ms(t.per_request).max(1);
    let record = MessageBatchRecord {
        id: id.clone(),
        seq,
        status: Processing::InProgress,
        total,
        created_ms: now,
        expires_ms: now + ms(t.completion_window),
        start_ms,
        per_request_ms,
        finalize_ms: ms(t.finalizing),
        cancel_ms: ms(t.cancelling),
        expire_early_ms: faults
            .expire
            .then(|| start_ms + (total / 2) * per_request_ms),
        cancel_initiated_ms: None,
        processed_at_stop: None,
        ended_ms: None,
        counts: None,
        results_written: false,
    };
    if faults.expire {
        shared.count(|c| c.fault("expire"));
    }
    if stall_ms > 0 {
        shared.count(|c| c.fault("stall-validating"));
    }
    let origin = super::handlers::origin(&shared, &headers);
    let answer = ok_json(&record.to_api(now, &origin));
    lock(&shared.db).message_batches.insert(id, record);
    // Counted as soon as it exists: a client that hangs up while the state
    // is saved cancels this handler, but the batch is there all the same.
    shared.count(|c| c.batches_created += 1);
    if let Err(e) = shared.persist().await {
        return AnthError::internal(e).into_response();
    }
    answer
}

/// Streams the request body to `path`, refusing more than `limit` bytes.
async fn stream_to_file(body: Body, path: &Path, limit: u64) -> Result<(), AnthError> {
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(AnthError::internal)?;
    let mut data = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk
            .map_err(|e| AnthError::invalid(format!("The request body could not be read: {e}")))?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            drop(out);
            // Read the rest so the client gets the answer, not a reset.
            while data.next().await.is_some() {}
            return Err(AnthError::too_large(limit));
        }
        out.write_all(&chunk).await.map_err(AnthError::internal)?;
    }
    out.flush().await.map_err(AnthError::internal)?;
    Ok(())
}

/// What went wrong while parsing: a validation problem (the 400's
/// message) found by the visitors, or an IO error writing the snapshot.
#[derive(Default)]
struct Ctx {
    problem: Option<String>,
    io: Option<io::Error>,
    ids: HashMap<String, u64>,
    total: u64,
    max_requests: u64,
    saw_requests: bool,
}

/// Parses the body at `src`, writes one `{"custom_id","params"}` line per
/// request to `dst`, and returns the number of requests.
fn parse_body(src: &Path, dst: &Path, max_requests: u64) -> Result<u64, AnthError> {
    let reader = BufReader::with_capacity(64 * 1024, File::open(src).map_err(AnthError::internal)?);
    let mut out =
        BufWriter::with_capacity(64 * 1024, File::create(dst).map_err(AnthError::internal)?);
    let mut ctx = Ctx {
        max_requests,
        ..Ctx::default()
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parsed = BodySeed {
        ctx: &mut ctx,
        out: &mut out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = ctx.io.take() {
        return Err(AnthError::internal(e));
    }
    if let Some(problem) = ctx.problem.take() {
        return Err(AnthError::invalid(problem));
    }
    if let Err(e) = parsed {
        return Err(AnthError::invalid(format!(
            "The request body is not valid JSON: {e}"
        )));
    }
    if !ctx.saw_requests {
        return Err(AnthError::invalid("requests: Field required"));
    }
    if ctx.total == 0 {
        return Err(AnthError::invalid(
            "requests: List should have at least 1 item after validation, not 0",
        ));
    }
    out.flush().map_err(AnthError::internal)?;
    Ok(ctx.total)
}

/// Stops the deserializer after recording `problem`.
fn stop<E: de::Error>(ctx: &mut Ctx, problem: String) -> E {
    ctx.problem = Some(problem);
    E::custom("invalid request")
}

struct BodySeed<'a, W> {
    ctx: &'a mut Ctx,
    out: &'a mut W,
}

impl<'de, W: Write> DeserializeSeed<'de> for BodySeed<'_, W> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: Write> Visitor<'de> for BodySeed<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a `requests` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "requests" && !self.ctx.saw_requests {
                self.ctx.saw_requests = true;
                map.next_value_seed(RequestsSeed {
                    ctx: &mut *self.ctx,
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(stop(self.ctx, not_an_object()))
    }
}

fn not_an_object() -> String {
    "The request body must be a JSON object with a `requests` array.".to_owned()
}

fn not_a_list() -> String {
    "requests: Input should be a valid list".to_owned()
}

struct RequestsSeed<'a, W> {
    ctx: &'a mut Ctx,
    out: &'a mut W,
}

impl<'de, W: Write> DeserializeSeed<'de> for RequestsSeed<'_, W> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: Write> Visitor<'de> for RequestsSeed<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of requests")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(request) = seq.next_element::<Value>()? {
            if index >= self.ctx.max_requests {
                let max = self.ctx.max_requests;
                return Err(stop(
                    self.ctx,
                    format!(
                        "requests: A Message Batch may hold at most {max} requests; this one \
                         holds more."
                    ),
                ));
            }
            if let Err(problem) = check_request(&request, index, &mut self.ctx.ids) {
                return Err(stop(self.ctx, problem));
            }
            let written = serde_json::to_writer(&mut *self.out, &request)
                .map_err(io::Error::other)
                .and_then(|()| self.out.write_all(b"\n"));
            if let Err(e) = written {
                self.ctx.io = Some(e);
                return Err(de::Error::custom("write failed"));
            }
            index += 1;
        }
        self.ctx.total = index;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(stop(self.ctx, not_a_list()))
    }
}

/// Whether `id` matches `^[a-zA-Z0-9_-]{1,64}$`.
pub(crate) fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks one element of `requests`; `Err` is the 400's message.
fn check_request(
    request: &Value,
    index: u64,
    ids: &mut HashMap<String, u64>,
) -> Result<(), String> {
    let at = format!("requests.{index}");
    let Some(obj) = request.as_object() else {
        return Err(format!("{at}: Input should be a valid dictionary"));
    };
    let custom_id = match obj.get("custom_id") {
        None | Some(Value::Null) => return Err(format!("{at}.custom_id: Field required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("{at}.custom_id: Input should be a valid string")),
    };
    if !valid_custom_id(custom_id) {
        return Err(format!(
            "{at}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        ));
    }
    match obj.get("params") {
        None | Some(Value::Null) => return Err(format!("{at}.params: Field required")),
        Some(Value::Object(_)) => {}
        Some(_) => return Err(format!("{at}.params: Input should be a valid dictionary")),
    }
    if let Some(first) = ids.get(custom_id) {
        return Err(format!(
            "{at}.custom_id: Duplicate custom_id '{custom_id}' (also used by requests.{first}); \
             each custom_id must be unique within the Message Batch."
        ));
    }
    ids.insert(custom_id.clone(), index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, max: u64) -> Result<(u64, String), String> {
        let dir = tempfile::tempdir().expect("dir");
        let (src, dst) = (dir.path().join("body"), dir.path().join("out"));
        std::fs::write(&src, body).expect("write");
        parse_body(&src, &dst, max)
            .map(|n| (n, std::fs::read_to_string(&dst).expect("read")))
            .map_err(|e| e.message)
    }

    fn req(id: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","params":{{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}}}}"#
        )
    }

    #[test]
    fn writes_one_line_per_request() {
        let body = format!(
            r#"{{"extra":[1,2],"requests":[{},{}]}}"#,
            req("a"),
            req("b-2_X")
        );
        let (n, lines) = parse(&body, 10).expect("valid");
        assert_eq!(n, 2);
        let ids: Vec<String> = lines
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("json line");
                v["custom_id"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(ids, ["a", "b-2_X"]);
    }

    #[test]
    fn names_the_index_of_a_bad_request() {
        let dup = format!(r#"{{"requests":[{},{},{}]}}"#, req("a"), req("b"), req("a"));
        let e = parse(&dup, 10).expect_err("duplicate");
        assert!(
            e.starts_with("requests.2.custom_id: Duplicate custom_id 'a'"),
            "{e}"
        );
        assert!(e.contains("requests.0"), "{e}");
        let bad = format!(r#"{{"requests":[{},{}]}}"#, req("a"), req("no spaces"));
        let e = parse(&bad, 10).expect_err("pattern");
        assert!(
            e.starts_with("requests.1.custom_id: String should match pattern"),
            "{e}"
        );
        let long = "x".repeat(65);
        assert!(parse(&format!(r#"{{"requests":[{}]}}"#, req(&long)), 10).is_err());
        assert!(parse(&format!(r#"{{"requests":[{}]}}"#, req(&"x".repeat(64))), 10).is_ok());
        assert_eq!(
            parse(r#"{"requests":[{"custom_id":"a"}]}"#, 10).expect_err("params"),
            "requests.0.params: Field required"
        );
        assert_eq!(
            parse(r#"{"requests":[{"custom_id":"a","params":[]}]}"#, 10).expect_err("params"),
            "requests.0.params: Input should be a valid dictionary"
        );
        assert_eq!(
            parse(r#"{"requests":[7]}"#, 10).expect_err("item"),
            "requests.0: Input should be a valid dictionary"
        );
    }

    #[test]
    fn refuses_bad_bodies_and_too_many_requests() {
        assert_eq!(
            parse("{}", 10).expect_err("missing"),
            "requests: Field required"
        );
        assert!(
            parse(r#"{"requests":[]}"#, 10)
                .expect_err("empty")
                .contains("at least 1")
        );
        assert_eq!(
            parse(r#"{"requests":{}}"#, 10).expect_err("not a list"),
            "requests: Input should be a valid list"
        );
        assert!(parse("[1]", 10).expect_err("array").contains("JSON object"));
        assert!(
            parse("{\"requests\": [", 10)
                .expect_err("cut")
                .contains("not valid JSON")
        );
        let three = format!(r#"{{"requests":[{},{},{}]}}"#, req("a"), req("b"), req("c"));
        assert!(parse(&three, 3).is_ok());
        let e = parse(&three, 2).expect_err("over");
        assert!(e.contains("at most 2 requests"), "{e}");
    }
}
