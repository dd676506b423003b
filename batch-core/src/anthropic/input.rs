//! Requests for a Message Batch: Anthropic's own request lines, the
//! project's short items turned into Messages API `params`, and the shard
//! encoding that frames into a create body.
//!
//! A request is carried as a [`BatchRequest`] whose `url` is
//! [`messages_endpoint`] and whose `body` is the request's `params`
//! (<https://docs.anthropic.com/en/api/messages>): `model`, `max_tokens`
//! (required by Anthropic), `messages`, and optionally `system`,
//! `temperature`, `tools` and the rest.

use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};

use super::requests::CREATE_FRAMING;
use crate::api::Endpoint;
use crate::error::{InputError, Problem};
use crate::input::{BatchRequest, Item, SystemPrompt};
use crate::jsonl::{Push, ShardLimit};

/// The endpoint a Message Batch's requests are read as: `/v1/messages`.
pub fn messages_endpoint() -> Endpoint {
    Endpoint::Unknown(super::MESSAGES_PATH.to_owned())
}

/// The longest `custom_id` a Message Batch takes.
pub const MAX_CUSTOM_ID_LEN: usize = 64;

/// Checks a `custom_id` against Anthropic's pattern `^[a-zA-Z0-9_-]{1,64}$`.
///
/// # Errors
/// The [`Problem`] to report for field `custom_id`.
pub fn check_custom_id(id: &str) -> Result<(), Problem> {
    if id.is_empty() {
        return Err(Problem::Empty);
    }
    if id.len() > MAX_CUSTOM_ID_LEN {
        return Err(Problem::Invalid(format!(
            "is {} characters long; Anthropic takes at most {MAX_CUSTOM_ID_LEN}",
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Problem::Invalid(format!(
            "has {c:?}; Anthropic takes only ASCII letters, digits, `_` and `-`"
        )));
    }
    Ok(())
}

/// Parses one of Anthropic's own request lines,
/// `{"custom_id":"..","params":{..}}`, the `line_no`-th (1-based) line of
/// `source`.
///
/// # Errors
/// An [`InputError`] naming `source`, `line_no` and the field: the line
/// is not a JSON object (no field); a key other than `custom_id` and
/// `params` (that key); `custom_id` missing, not a string, or not matching
/// `^[a-zA-Z0-9_-]{1,64}$`; `params` missing or not an object; and in
/// `params`: `model` missing or not a string, `max_tokens` missing or not
/// a positive integer, `messages` missing or not a non-empty array.
pub fn parse_request_line(
    source: &str,
    line_no: u64,
    line: &[u8],
) -> Result<BatchRequest, InputError> {
    let fail = |field: &str, problem| InputError::new(source, line_no, field, problem);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let value: Value =
        serde_json::from_slice(line).map_err(|e| fail("", Problem::InvalidJson(format!("{e}"))))?;
    let Value::Object(mut obj) = value else {
        return Err(fail(
            "",
            Problem::InvalidJson("the line is not a JSON object".into()),
        ));
    };
    if let Some(key) = obj.keys().find(|k| *k != "custom_id" && *k != "params") {
        return Err(fail(key, Problem::UnknownField));
    }
    let custom_id = match obj.remove("custom_id") {
        Some(Value::String(s)) => s,
        None => return Err(fail("custom_id", Problem::Missing)),
        Some(_) => {
            return Err(fail(
                "custom_id",
                Problem::Invalid("must be a string".into()),
            ));
        }
    };
    check_custom_id(&custom_id).map_err(|p| fail("custom_id", p))?;
    let params = match obj.remove("params") {
        Some(Value::Object(p)) => p,
        None => return Err(fail("params", Problem::Missing)),
        Some(_) => return Err(fail("params", Problem::Invalid("must be an object".into()))),
    };
    check_params(&params).map_err(|(field, p)| fail(&format!("params.{field}"), p))?;
    Ok(BatchRequest::new(custom_id, messages_endpoint(), params))
}

/// The checks every request's `params` passes before it is sent.
fn check_params(params: &Map<String, Value>) -> Result<(), (&'static str, Problem)> {
    match params.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(Value::String(_)) => return Err(("model", Problem::Empty)),
        None => return Err(("model", Problem::Missing)),
        Some(_) => return Err(("model", Problem::Invalid("must be a string".into()))),
    }
    match params.get("max_tokens") {
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
        None => {
            return Err((
                "max_tokens",
                Problem::Invalid(
                    "is missing: Anthropic requires `max_tokens` on every request".into(),
                ),
            ));
        }
        Some(_) => {
            return Err((
                "max_tokens",
                Problem::Invalid("must be a positive integer".into()),
            ));
        }
    }
    match params.get("messages") {
        Some(Value::Array(list)) if !list.is_empty() => Ok(()),
        Some(Value::Array(_)) => Err(("messages", Problem::Empty)),
        None => Err(("messages", Problem::Missing)),
        Some(_) => Err((
            "messages",
            Problem::Invalid("must be an array of message objects".into()),
        )),
    }
}

/// What every short request of a Message Batch shares: the model, the
/// system prompt (compiled once) and the default `max_tokens`. Turns an
/// [`Item`] (or a list of messages) into a request whose `params` are
///
/// `model`, `max_tokens` (the item's, else the template's), `system`? (the
/// system prompt), `messages` (`[{"role":"user","content":..}]` for an
/// item), `temperature`?, then the item's `extra` fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagesTemplate {
    model: String,
    system: Option<String>,
    max_tokens: Option<u32>,
}

impl MessagesTemplate {
    /// A template for `model` and `system`, with `max_tokens` as the
    /// default for requests that set none.
    pub fn new(model: impl Into<String>, system: &SystemPrompt, max_tokens: Option<u32>) -> Self {
        MessagesTemplate {
            model: model.into(),
            system: system.compile(),
            max_tokens,
        }
    }

    /// The request for `item`, the `item_no`-th (1-based) item of `source`.
    ///
    /// # Errors
    /// As [`request_messages`](Self::request_messages).
    pub fn request(
        &self,
        source: &str,
        item_no: u64,
        item: &Item,
    ) -> Result<BatchRequest, InputError> {
        let mut user = Map::new();
        user.insert("role".into(), Value::from("user"));
        user.insert("content".into(), Value::from(item.message.as_str()));
        self.request_messages(
            source,
            item_no,
            &item.custom_id,
            vec![Value::Object(user)],
            item.temperature,
            item.max_tokens,
            &item.extra,
        )
    }

    /// The request for a line that gives its own `messages` (objects with
    /// a `role` of `user` or `assistant` and a `content`), with its own
    /// temperature, token limit and extra `params` fields.
    ///
    /// # Errors
    /// An [`InputError`] naming `source`, `line` and the field:
    /// - `custom_id` not matching `^[a-zA-Z0-9_-]{1,64}$`;
    /// - `max_tokens` set neither on the line nor on the template: Anthropic
    ///   requires it;
    /// - `messages` empty, or `messages[i]` not an object with a string
    ///   `role`, or with role `system` (Anthropic takes the system prompt
    ///   as `system`, not as a message);
    /// - `temperature` NaN or infinite;
    /// - an extra field that would override what the job sets (`model`,
    ///   `messages`, and `system` when there is a system prompt):
    ///   `extra.<key>`, [`Problem::Overrides`]; one that repeats the line's
    ///   temperature or token limit: [`Problem::Conflicts`].
    #[allow(clippy::too_many_arguments)]
    pub fn request_messages(
        &self,
        source: &str,
        line: u64,
        custom_id: &str,
        messages: Vec<Value>,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        extra: &Map<String, Value>,
    ) -> Result<BatchRequest, InputError> {
        let fail = |field: &str, problem| Err(InputError::new(source, line, field, problem));
        if let Err(p) = check_custom_id(custom_id) {
            return fail("custom_id", p);
        }
        let Some(max_tokens) = max_tokens
            .or(self.max_tokens)
            .or_else(|| {
                extra
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            })
            .filter(|n| *n > 0)
        else {
            return fail(
                "max_tokens",
                Problem::Invalid(
                    "is missing: Anthropic requires `max_tokens` (set it on the line or for the whole job)"
                        .into(),
                ),
            );
        };
        if messages.is_empty() {
            return fail("messages", Problem::Empty);
        }
        for (i, m) in messages.iter().enumerate() {
            match m.get("role").and_then(Value::as_str) {
                Some("system") => {
                    return fail(
                        &format!("messages[{i}].role"),
                        Problem::Invalid(
                            "is `system`: Anthropic takes the system prompt as `system`, not as a message"
                                .into(),
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    return fail(
                        &format!("messages[{i}]"),
                        Problem::Invalid("must be an object with a string `role`".into()),
                    );
                }
            }
        }
        if temperature.is_some_and(|t| !t.is_finite()) {
            return fail(
                "temperature",
                Problem::Invalid("must be a finite number".into()),
            );
        }
        let mut owned = vec!["model", "messages"];
        if self.system.is_some() {
            owned.push("system");
        }
        if let Some(k) = owned.into_iter().find(|k| extra.contains_key(*k)) {
            return fail(&format!("extra.{k}"), Problem::Overrides(k.into()));
        }
        if temperature.is_some() && extra.contains_key("temperature") {
            return fail(
                "extra.temperature",
                Problem::Conflicts("temperature".into()),
            );
        }
        let mut params = Map::new();
        params.insert("model".into(), Value::from(self.model.as_str()));
        params.insert("max_tokens".into(), Value::from(max_tokens));
        if let Some(system) = &self.system {
            params.insert("system".into(), Value::from(system.as_str()));
        }
        params.insert("messages".into(), Value::Array(messages));
        if let Some(t) = temperature {
            params.insert("temperature".into(), Value::from(t));
        }
        for (k, v) in extra {
            if k == "max_tokens" {
                continue;
            }
            params.insert(k.clone(), v.clone());
        }
        Ok(BatchRequest::new(custom_id, messages_endpoint(), params))
    }
}

/// Writes a Message Batch's shards: request objects
/// `{"custom_id":..,"params":{..}}`, one per line, every line after a
/// shard's first starting with `,`, so that `{"requests":[` + the shard +
/// `]}` is the create body ([`create_batch`](super::create_batch)).
///
/// A shard holds at most `max_requests` requests, and its framed body at
/// most `max_bytes` bytes (Anthropic: 100,000 requests or 256 MB).
#[derive(Debug)]
pub struct RequestEncoder {
    source: String,
    max_requests: u64,
    max_bytes: u64,
    requests: u64,
    bytes: u64,
}

impl RequestEncoder {
    /// An encoder for `source` (named in errors) with the given limits.
    pub fn new(source: impl Into<String>, max_requests: u64, max_bytes: u64) -> Self {
        RequestEncoder {
            source: source.into(),
            max_requests: max_requests.max(1),
            max_bytes,
            requests: 0,
            bytes: 0,
        }
    }

    /// Checks `req` (read from input line `line`) and, if the current shard
    /// can take it, appends its line to `out`.
    ///
    /// # Errors
    /// An [`InputError`] for a `custom_id` Anthropic does not take, `params`
    /// without `model`, `max_tokens` or `messages`, or a request too large
    /// for a batch of its own ([`Problem::TooManyBytes`]).
    pub fn try_push(
        &mut self,
        line: u64,
        req: &BatchRequest,
        out: &mut Vec<u8>,
    ) -> Result<Push, InputError> {
        let fail = |field: &str, problem| InputError::new(&self.source, line, field, problem);
        check_custom_id(&req.custom_id).map_err(|p| fail("custom_id", p))?;
        check_params(&req.body).map_err(|(field, p)| fail(&format!("params.{field}"), p))?;
        if self.requests >= self.max_requests {
            return Ok(Push::Full(ShardLimit::Requests));
        }
        let mut encoded = Vec::new();
        if self.requests > 0 {
            encoded.push(b',');
        }
        write_request(req, &mut encoded);
        let len = encoded.len() as u64;
        // Counted as if it had its comma, so a request that fits alone
        // fits whichever shard it opens.
        let alone = len + u64::from(self.requests == 0) + CREATE_FRAMING;
        if alone > self.max_bytes {
            return Err(fail(
                "",
                Problem::TooManyBytes {
                    max: self.max_bytes,
                },
            ));
        }
        if self.bytes + len + CREATE_FRAMING > self.max_bytes {
            return Ok(Push::Full(ShardLimit::Bytes));
        }
        out.extend_from_slice(&encoded);
        self.requests += 1;
        self.bytes += len;
        Ok(Push::Written { bytes: len })
    }

    /// Starts the next shard.
    pub fn finish_shard(&mut self) {
        self.requests = 0;
        self.bytes = 0;
    }
}

/// Appends `{"custom_id":..,"params":{..}}\n` for `req`.
fn write_request(req: &BatchRequest, out: &mut Vec<u8>) {
    #[derive(Serialize)]
    struct Line<'a> {
        custom_id: &'a str,
        params: &'a Map<String, Value>,
    }
    // Serializing string-keyed JSON into memory cannot fail.
    let _ = serde_json::to_writer(
        &mut *out,
        &Line {
            custom_id: &req.custom_id,
            params: &req.body,
        },
    );
    let _ = out.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_ids_follow_the_pattern() {
        assert!(check_custom_id("req_1-A").is_ok());
        assert!(check_custom_id(&"a".repeat(64)).is_ok());
        assert!(check_custom_id(&"a".repeat(65)).is_err());
        assert_eq!(check_custom_id(""), Err(Problem::Empty));
        assert!(check_custom_id("req.1").is_err());
        assert!(check_custom_id("req 1").is_err());
    }

    #[test]
    fn request_lines_are_checked_by_field() {
        let ok = br#"{"custom_id":"a","params":{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}}"#;
        let r = parse_request_line("in.jsonl", 1, ok).expect("valid");
        assert_eq!(r.custom_id, "a");
        assert_eq!(r.body["max_tokens"], json!(5));
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"custom_id":"a","params":{"model":"m","messages":[{"role":"user","content":"hi"}]}}"#,
                "in.jsonl:2: field `params.max_tokens`",
            ),
            (
                br#"{"custom_id":"a.b","params":{}}"#,
                "in.jsonl:2: field `custom_id`",
            ),
            (
                br#"{"custom_id":"a","params":{"max_tokens":1,"messages":[1]}}"#,
                "in.jsonl:2: field `params.model`",
            ),
            (br#"{"custom_id":"a"}"#, "in.jsonl:2: field `params`"),
            (
                br#"{"custom_id":"a","params":{},"url":"/v1/x"}"#,
                "in.jsonl:2: field `url`",
            ),
        ];
        for (line, want) in cases {
            let e = parse_request_line("in.jsonl", 2, line).expect_err("invalid");
            assert!(e.to_string().starts_with(want), "{e} vs {want}");
        }
    }

    #[test]
    fn items_become_params_and_max_tokens_is_required() {
        let t = MessagesTemplate::new("claude-x", &SystemPrompt::Text("be brief".into()), None);
        let item = Item::new("r1", "hello").temperature(0.5).max_tokens(64);
        let r = t.request("items", 1, &item).expect("valid");
        assert_eq!(
            serde_json::Value::Object(r.body.clone()),
            json!({"model": "claude-x", "max_tokens": 64, "system": "be brief", "messages": [{"role": "user", "content": "hello"}], "temperature": 0.5})
        );
        let e = t
            .request("items", 3, &Item::new("r2", "hi"))
            .expect_err("no max_tokens");
        assert_eq!(e.line, 3);
        assert_eq!(e.field, "max_tokens");
        let with_default = MessagesTemplate::new("claude-x", &SystemPrompt::None, Some(32));
        let r = with_default
            .request("items", 1, &Item::new("r2", "hi"))
            .expect("valid");
        assert_eq!(r.body["max_tokens"], json!(32));
        assert!(!r.body.contains_key("system"));
        let e = with_default
            .request_messages(
                "in",
                4,
                "r3",
                vec![json!({"role": "system", "content": "x"})],
                None,
                None,
                &Map::new(),
            )
            .expect_err("system message");
        assert_eq!(e.field, "messages[0].role");
    }

    #[test]
    fn shards_frame_into_one_json_document() {
        let t = MessagesTemplate::new("m", &SystemPrompt::None, Some(8));
        let reqs: Vec<BatchRequest> = (0..5)
            .map(|i| {
                t.request("items", i + 1, &Item::new(format!("r{i}"), "q"))
                    .expect("valid")
            })
            .collect();
        let one = {
            let mut v = Vec::new();
            write_request(&reqs[0], &mut v);
            v.len() as u64
        };
        // Room for two requests (the second with its comma) and the framing.
        let mut enc = RequestEncoder::new("items", 10, 2 * one + 1 + CREATE_FRAMING);
        let mut shards: Vec<Vec<u8>> = vec![Vec::new()];
        for (i, r) in reqs.iter().enumerate() {
            let mut out = Vec::new();
            match enc.try_push(i as u64 + 1, r, &mut out).expect("valid") {
                Push::Written { bytes } => assert_eq!(bytes, out.len() as u64),
                Push::Full(_) => {
                    enc.finish_shard();
                    shards.push(Vec::new());
                    assert!(matches!(
                        enc.try_push(i as u64 + 1, r, &mut out).expect("valid"),
                        Push::Written { .. }
                    ));
                }
            }
            shards.last_mut().expect("a shard").extend_from_slice(&out);
        }
        assert_eq!(shards.len(), 3);
        for shard in &shards {
            let mut body = b"{\"requests\":[".to_vec();
            body.extend_from_slice(shard);
            body.extend_from_slice(b"]}");
            assert!(body.len() as u64 <= 2 * one + 1 + CREATE_FRAMING);
            let v: Value = serde_json::from_slice(&body).expect("one JSON document");
            assert!(v["requests"][0]["params"]["max_tokens"] == json!(8));
        }
    }
}
