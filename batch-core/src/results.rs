//! Result lines: one line of a batch output or error file, parsed into an
//! outcome for its `custom_id` (API notes §6, `BatchRequestOutput`).
//!
//! The wire shape of a line is
//! `{"id":"batch_req_..","custom_id":"..","response":{"status_code":200,"request_id":"..","body":{..}}|null,"error":{"code":"..","message":".."}|null}`.
//!
//! - [`parse_result_line`] turns one line into a [`ResultRecord`] or a
//!   [`BadLine`]. It never panics, whatever the bytes.
//! - [`ResultStream`] glues the [`LineDecoder`] to the parser: feed it the
//!   chunks of a downloaded output or error file and drain
//!   [`ResultEvent`]s, in memory bounded by the longest line.
//!
//! # How a line is judged
//!
//! | `response` | `error` | outcome |
//! | --- | --- | --- |
//! | object, `status_code` 2xx | null or absent | [`Outcome::Succeeded`] |
//! | object, `status_code` 2xx | present | [`Outcome::Failed`]: the error wins (a request the server flagged is not trusted as a success, even if a body came with it; the body is kept in [`Failure::body`]) |
//! | object, other status | any | [`Outcome::Failed`] with the status and the error from `response.body.error` (or from the line's `error`, if present) |
//! | object without `status_code` | null or absent | failed if `body.error` is an object, else succeeded |
//! | null or absent | present | [`Outcome::Failed`] from the line's `error` (`batch_expired`, `batch_cancelled`, ...) |
//! | null or absent | null or absent | [`Outcome::Failed`] with no details |
//!
//! A line that is not UTF-8, not JSON, not an object, has no string
//! `custom_id`, or has a `response` or `error` of the wrong type, is a
//! [`BadLine`]: a per-line problem with its line number and whatever
//! `custom_id` could be salvaged. It never stops the lines after it.
//!
//! # How a line is read
//!
//! A line is read once, by a scanner that finds where each value lies
//! without building it: the ids, the status, the request id, the body's
//! `usage` and `error`, and the line's `error` are taken from their text;
//! the rest of the body is skipped (checked exactly as `serde_json` checks
//! a value it skips, eight bytes at a time through digits and plain string
//! bytes), and a success's body is parsed only when first asked for. A line
//! the scanner does not take as it is (a repeated key, a key with escapes,
//! a field of the wrong type, bad JSON) is read whole into a
//! `serde_json::Value`, which decides the outcome or says what is wrong.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::jsonl::{LineDecoder, LineEvent, Lines};

mod scan;

// ---------------------------------------------------------------------------
// Records and outcomes

/// One parsed line of an output or error file.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResultRecord {
    /// The 1-based physical line number in the file.
    pub line: u64,
    /// The line's `id` (`batch_req_...`), if it had a string one.
    pub id: Option<String>,
    /// The `custom_id` copied from the input line.
    pub custom_id: String,
    /// What happened to the request.
    pub outcome: Outcome,
    /// The exact line, without its line terminator. Shared with the
    /// record's [`Success`], which reads its body from it when asked.
    pub raw: Arc<str>,
    /// Where `response` and the error lie in `raw`, when the parse noted it.
    pub(crate) spans: RawSpans,
}

impl PartialEq for ResultRecord {
    /// Equal when the line number, ids, outcome and line are (however the
    /// line was read).
    fn eq(&self, other: &Self) -> bool {
        self.line == other.line
            && self.id == other.id
            && self.custom_id == other.custom_id
            && self.outcome == other.outcome
            && self.raw == other.raw
    }
}

impl ResultRecord {
    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, Outcome::Succeeded(_))
    }

    /// The success, if the request succeeded.
    pub fn success(&self) -> Option<&Success> {
        match &self.outcome {
            Outcome::Succeeded(s) => Some(s),
            Outcome::Failed(_) => None,
        }
    }

    /// The failure, if the request failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(f) => Some(f),
            Outcome::Succeeded(_) => None,
        }
    }

    /// The generated text, for a success that has one (see [`Success::content`]).
    pub fn content(&self) -> Option<&str> {
        self.success()?.content()
    }

    /// The generated text parsed as JSON (see [`Success::json`]).
    pub fn json(&self) -> Option<&Value> {
        self.success()?.json()
    }

    /// The body as a chat completion (see [`Success::chat_completion`]).
    pub fn chat_completion(&self) -> Option<ChatCompletion> {
        self.success()?.chat_completion()
    }

    /// The body as a Responses API response (see [`Success::responses_body`]).
    pub fn responses_body(&self) -> Option<ResponsesBody> {
        self.success()?.responses_body()
    }

    /// The body as an embeddings list (see [`Success::embeddings`]).
    pub fn embeddings(&self) -> Option<Embeddings> {
        self.success()?.embeddings()
    }

    /// The body as a legacy text completion (see [`Success::completion`]).
    pub fn completion(&self) -> Option<TextCompletion> {
        self.success()?.completion()
    }

    /// The line's `response` and error objects as the server wrote them:
    /// slices of [`raw`](Self::raw), byte for byte, nothing rebuilt. The
    /// parse notes where they lie as it reads the line, so this is cheap;
    /// only a line of an unusual shape is read again.
    pub fn raw_parts(&self) -> RawParts<'_> {
        let text: &str = &self.raw;
        if self.spans.known {
            let slice = |span: Option<(usize, usize)>| span.and_then(|(a, b)| text.get(a..b));
            return RawParts {
                response: slice(self.spans.response),
                error: slice(self.spans.error),
                message: None,
            };
        }
        reparse_raw_parts(text)
    }
}

/// [`ResultRecord::raw_parts`] by reading the line again.
fn reparse_raw_parts(text: &str) -> RawParts<'_> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow, default)]
        response: Option<&'a RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
    }
    /// A Message Batch's `result`: `message`, or `error.error`.
    #[derive(Deserialize)]
    struct MessageResult<'a> {
        #[serde(borrow, default)]
        message: Option<&'a RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow, default)]
        body: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
    }
    fn present(v: Option<&RawValue>) -> Option<&RawValue> {
        v.filter(|v| v.get() != "null")
    }
    let Ok(line) = serde_json::from_str::<Line<'_>>(text) else {
        return RawParts::default();
    };
    if let Some(result) = present(line.result) {
        let Ok(r) = serde_json::from_str::<MessageResult<'_>>(result.get()) else {
            return RawParts::default();
        };
        let error = present(r.error).map(|e| {
            serde_json::from_str::<Body<'_>>(e.get())
                .ok()
                .and_then(|b| present(b.error))
                .unwrap_or(e)
        });
        return RawParts {
            response: None,
            error: error.map(RawValue::get),
            message: present(r.message).map(RawValue::get),
        };
    }
    let response = present(line.response);
    // The same precedence as the outcome: the line's own error first,
    // then the error in the response body.
    let error = present(line.error).or_else(|| {
        let body = serde_json::from_str::<Response<'_>>(response?.get())
            .ok()?
            .body?;
        present(serde_json::from_str::<Body<'_>>(body.get()).ok()?.error)
    });
    RawParts {
        response: response.map(RawValue::get),
        error: error.map(RawValue::get),
        message: None,
    }
}

/// The server's own objects in a result line, as raw JSON text (see
/// [`ResultRecord::raw_parts`]). A field is `None` when the line has no such
/// object (or it is `null`).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct RawParts<'a> {
    /// The line's `response`: `{"status_code":..,"request_id":..,"body":{..}}`.
    pub response: Option<&'a str>,
    /// The error the outcome was judged by: the line's own `error` when it
    /// has one, else `response.body.error`. For a failure, this is the
    /// server's error object with all its keys (`code`, `message`, and
    /// whatever else it sent), in the server's key order. It is the value as
    /// sent, so it may be a string rather than an object. For a Message
    /// Batch's line, the error inside `result.error`
    /// (`{"type":..,"message":..}`).
    pub error: Option<&'a str>,
    /// A Message Batch's line only: `result.message`, the Messages API
    /// response of a succeeded request (`response` is `None` for these
    /// lines).
    pub message: Option<&'a str>,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The request ran and the server answered 2xx.
    Succeeded(Success),
    /// The request failed, or was never run.
    Failed(Failure),
}

/// A successful request: its status, request id and token usage, read as
/// the line is parsed, and the body, read only when asked for.
///
/// Parsing a line reads only what every result needs; the body stays the
/// raw JSON text of the line until [`body`](Self::body), [`content`](Self::content)
/// or another body accessor is first called. The first such call parses
/// the body once (a `serde_json::Value` tree) and keeps what it read, so
/// later calls are cheap. The exact line is in [`ResultRecord::raw`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Success {
    /// `response.status_code` (a 2xx; `None` if the line had none).
    pub status_code: Option<u16>,
    /// `response.request_id`.
    pub request_id: Option<String>,
    /// Token usage, normalised across endpoints.
    pub usage: Option<Usage>,
    /// The whole line the body is read from.
    line: Arc<str>,
    /// Where the body lies in `line`, when the one-pass read found it.
    body_span: Option<(usize, usize)>,
    /// What was read from the body, once asked for.
    derived: OnceLock<Box<Derived>>,
}

/// What a body accessor reads from a success's body, once.
#[derive(Clone, Debug)]
struct Derived {
    body: Value,
    kind: BodyKind,
    model: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    json: Option<Value>,
    finish_reason: Option<FinishReason>,
}

impl Derived {
    /// Reads the derived fields of a parsed body.
    fn of(body: Value) -> Derived {
        let kind = BodyKind::of(&body);
        let model = str_at(&body, "/model");
        let (content, refusal) = match kind {
            BodyKind::ChatCompletion => {
                let msg = body.pointer("/choices/0/message");
                (
                    msg.and_then(|m| m.get("content")).and_then(text_of),
                    msg.and_then(|m| m.get("refusal")).and_then(text_of),
                )
            }
            BodyKind::Responses => responses_text(&body),
            BodyKind::Completion => (str_at(&body, "/choices/0/text"), None),
            BodyKind::Message => (message_text(&body), None),
            BodyKind::Embeddings | BodyKind::Other => (None, None),
        };
        let json = content
            .as_deref()
            .and_then(|c| serde_json::from_str(strip_fences(c)).ok());
        let finish_reason = finish_reason(kind, &body);
        Derived {
            body,
            kind,
            model,
            content,
            refusal,
            json,
            finish_reason,
        }
    }
}

impl PartialEq for Success {
    /// Equal when the status, request id, usage and body are (whether or
    /// not either body has been read yet).
    fn eq(&self, other: &Self) -> bool {
        self.status_code == other.status_code
            && self.request_id == other.request_id
            && self.usage == other.usage
            && self.body() == other.body()
    }
}

impl Success {
    /// A success whose body is read from `line` when first asked for.
    fn lazy(
        status_code: Option<u16>,
        request_id: Option<String>,
        usage: Option<Usage>,
        line: Arc<str>,
        body_span: Option<(usize, usize)>,
    ) -> Success {
        Success {
            status_code,
            request_id,
            usage,
            line,
            body_span,
            derived: OnceLock::new(),
        }
    }

    /// A success whose body was already parsed.
    pub(crate) fn from_body(
        status_code: Option<u16>,
        request_id: Option<String>,
        body: Value,
        line: Arc<str>,
    ) -> Success {
        let usage = body.get("usage").and_then(Usage::from_value);
        let derived = OnceLock::new();
        let _ = derived.set(Box::new(Derived::of(body)));
        Success {
            status_code,
            request_id,
            usage,
            line,
            body_span: None,
            derived,
        }
    }

    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            // The body alone where the scan found it (a body nested too
            // deep for a tree is read as the line reading reads it).
            let body = self
                .body_span
                .and_then(|(a, b)| serde_json::from_str(self.line.get(a..b)?).ok())
                .unwrap_or_else(|| body_of_line(&self.line));
            Box::new(Derived::of(body))
        })
    }

    /// `response.body`, parsed (`Null` if absent). Keys are sorted by
    /// `serde_json`; for the bytes as sent, see [`ResultRecord::raw`] and
    /// [`ResultRecord::raw_parts`]. The first call parses the body.
    pub fn body(&self) -> &Value {
        &self.derived().body
    }

    /// What kind of body this is, judged by its `object` field (or shape).
    pub fn kind(&self) -> BodyKind {
        self.derived().kind
    }

    /// The body's `model`.
    pub fn model(&self) -> Option<&str> {
        self.derived().model.as_deref()
    }

    /// The generated text: `choices[0].message.content` for chat
    /// completions, the concatenated `output_text` parts of `output[*].content[*]`
    /// for the Responses API, `choices[0].text` for completions. `None` for
    /// embeddings and when the model produced no text (a refusal, or only
    /// tool calls).
    pub fn content(&self) -> Option<&str> {
        self.derived().content.as_deref()
    }

    /// The model's refusal text, if it refused (chat `message.refusal`, or
    /// Responses API `refusal` parts).
    pub fn refusal(&self) -> Option<&str> {
        self.derived().refusal.as_deref()
    }

    /// [`content`](Self::content) with markdown fences stripped, parsed as
    /// JSON, when it is JSON (any JSON value, so `42` or `true` count).
    pub fn json(&self) -> Option<&Value> {
        self.derived().json.as_ref()
    }

    /// Why generation stopped, for the kinds that say.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.derived().finish_reason.as_ref()
    }

    /// [`content`](Self::content) with a surrounding markdown fence removed
    /// (see [`strip_fences`]).
    pub fn content_unfenced(&self) -> Option<&str> {
        self.content().map(strip_fences)
    }

    /// The body as a chat completion, if it is one ([`BodyKind::ChatCompletion`])
    /// and has the expected field types.
    pub fn chat_completion(&self) -> Option<ChatCompletion> {
        self.typed(BodyKind::ChatCompletion)
    }

    /// The body as a Responses API response, if it is one.
    pub fn responses_body(&self) -> Option<ResponsesBody> {
        self.typed(BodyKind::Responses)
    }

    /// The body as an embeddings list, if it is one.
    pub fn embeddings(&self) -> Option<Embeddings> {
        self.typed(BodyKind::Embeddings)
    }

    /// The body as a legacy text completion, if it is one.
    pub fn completion(&self) -> Option<TextCompletion> {
        self.typed(BodyKind::Completion)
    }

    fn typed<'a, T: Deserialize<'a>>(&'a self, kind: BodyKind) -> Option<T> {
        let d = self.derived();
        if d.kind != kind {
            return None;
        }
        T::deserialize(&d.body).ok()
    }
}

/// `response.body` of a line that already parsed as a success (`Null` if
/// it has none).
fn body_of_line(line: &str) -> Value {
    #[derive(Deserialize)]
    struct Line {
        #[serde(default)]
        response: Option<Response>,
    }
    #[derive(Deserialize)]
    struct Response {
        #[serde(default)]
        body: Option<Value>,
    }
    match serde_json::from_str::<Line>(line) {
        Ok(l) => l.response.and_then(|r| r.body).unwrap_or(Value::Null),
        // Duplicate keys or the like: read it the way the full parse does,
        // where the last of a repeated key wins.
        Err(_) => serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|mut v| v.get_mut("response")?.get_mut("body").map(Value::take))
            .unwrap_or(Value::Null),
    }
}

/// A failed request, with what the server said about it.
///
/// The fields come from `response.body.error` when the server answered with
/// an error status, or from the line's own `error` object when there was no
/// response (`batch_expired`, `batch_cancelled`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Failure {
    /// `response.status_code`, or `None` when the request got no response.
    pub status_code: Option<u16>,
    /// `response.request_id`.
    pub request_id: Option<String>,
    /// The error's `type`, e.g. `invalid_request_error`.
    pub error_type: Option<String>,
    /// The error's `code`, e.g. `batch_expired` or `model_not_found`.
    pub code: Option<String>,
    /// The error's `message`, as the server wrote it.
    pub message: Option<String>,
    /// The error's `param`, the request field at fault.
    pub param: Option<String>,
    /// `response.body`, when there was a response.
    pub body: Option<Value>,
}

impl Failure {
    /// Whether the request was never run because the batch ended first
    /// (`batch_expired` or `batch_cancelled`): report it as "not processed",
    /// not as an error of the request itself.
    pub fn is_not_processed(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("batch_expired" | "batch_cancelled")
        )
    }

    /// Fills the error fields from an error value (object or bare string).
    fn with_error(mut self, err: &Value) -> Failure {
        match err {
            Value::Object(_) => {
                self.error_type = scalar_at(err, "type");
                self.code = scalar_at(err, "code");
                self.message = scalar_at(err, "message");
                self.param = scalar_at(err, "param");
            }
            Value::String(s) => self.message = Some(s.clone()),
            _ => {}
        }
        self
    }
}

impl fmt::Display for Failure {
    /// For example `status 400, invalid_request_error, code model_not_found: The model ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = self.status_code {
            parts.push(format!("status {s}"));
        }
        if let Some(t) = &self.error_type {
            parts.push(t.clone());
        }
        if let Some(c) = &self.code {
            parts.push(format!("code {c}"));
        }
        match (parts.is_empty(), &self.message) {
            (true, None) => f.write_str("failed without a response or an error"),
            (true, Some(m)) => f.write_str(m),
            (false, None) => f.write_str(&parts.join(", ")),
            (false, Some(m)) => write!(f, "{}: {m}", parts.join(", ")),
        }
    }
}

/// What kind of body a success carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyKind {
    /// `/v1/chat/completions` (`object: "chat.completion"`).
    ChatCompletion,
    /// `/v1/responses` (`object: "response"`).
    Responses,
    /// `/v1/completions` (`object: "text_completion"`).
    Completion,
    /// `/v1/embeddings` (`object: "list"` of `embedding`s).
    Embeddings,
    /// An Anthropic Messages API message (`type: "message"`), the body of a
    /// succeeded Message Batches result: its text is the `text` content
    /// blocks joined, its tool calls the `tool_use` blocks, its finish
    /// reason the `stop_reason`.
    Message,
    /// Anything else (moderations, images, ...); only the raw body is kept.
    Other,
}

impl BodyKind {
    /// Judges a body by its `object` field, or by its shape when that is
    /// missing or unfamiliar.
    pub fn of(body: &Value) -> BodyKind {
        let is_embeddings = || {
            body.get("data")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().all(|e| e.get("embedding").is_some()))
        };
        match body.get("object").and_then(Value::as_str) {
            Some("chat.completion") => return BodyKind::ChatCompletion,
            Some("response") => return BodyKind::Responses,
            Some("text_completion") => return BodyKind::Completion,
            Some("list") if is_embeddings() => return BodyKind::Embeddings,
            _ => {}
        }
        if body.get("type").and_then(Value::as_str) == Some("message")
            && body.get("content").is_some_and(Value::is_array)
        {
            return BodyKind::Message;
        }
        if let Some(first) = body.pointer("/choices/0") {
            if first.get("message").is_some() {
                return BodyKind::ChatCompletion;
            }
            if first.get("text").is_some() {
                return BodyKind::Completion;
            }
        }
        if body.get("output").is_some_and(Value::is_array) {
            return BodyKind::Responses;
        }
        if body.pointer("/data/0/embedding").is_some() && is_embeddings() {
            return BodyKind::Embeddings;
        }
        BodyKind::Other
    }
}

/// Why the model stopped generating.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinishReason {
    /// It finished naturally (`stop`; Responses API `status: completed`).
    Stop,
    /// It hit the token limit (`length`; Responses API `incomplete` for
    /// `max_output_tokens`). The content is cut off.
    Length,
    /// It called tools (`tool_calls`, or `stop` with tool calls, which the
    /// API reports when `tool_choice` forces a function; Responses API
    /// `function_call` output items).
    ToolCalls(Vec<ToolCall>),
    /// Content was withheld by the content filter.
    ContentFilter,
    /// It called a function through the deprecated `function_call`.
    FunctionCall(Option<ToolCall>),
    /// Any other reason, as sent (or the Responses API `status` or
    /// `incomplete_details.reason`).
    Other(String),
}

/// One tool call the model made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolCall {
    /// The call's ID, to answer it with (chat `id`; Responses API `call_id`).
    pub id: Option<String>,
    /// The function (or custom tool) name.
    pub name: String,
    /// The arguments, as the JSON text the model wrote (or a custom tool's
    /// free-form input).
    pub arguments: String,
}

impl ToolCall {
    /// A tool call with the given ID, name and arguments text.
    pub fn new(id: Option<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        ToolCall {
            id,
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// Token usage, normalised across endpoints.
///
/// Chat and completions report `prompt_tokens`/`completion_tokens`, the
/// Responses API `input_tokens`/`output_tokens`; both land here. A field is
/// `None` when the body did not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Usage {
    /// `input_tokens` or `prompt_tokens`.
    pub input_tokens: Option<u64>,
    /// `output_tokens` or `completion_tokens`.
    pub output_tokens: Option<u64>,
    /// `total_tokens`.
    pub total_tokens: Option<u64>,
    /// `input_tokens_details.cached_tokens` or `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: Option<u64>,
    /// `output_tokens_details.reasoning_tokens` or `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: Option<u64>,
    /// Anthropic's `cache_creation_input_tokens`: input tokens written to
    /// the prompt cache (Anthropic's `cache_read_input_tokens` are in
    /// [`cached_tokens`](Self::cached_tokens)).
    pub cache_creation_tokens: Option<u64>,
}

impl Usage {
    /// Reads a `usage` object in either naming. `None` if it is not an object.
    pub fn from_value(usage: &Value) -> Option<Usage> {
        usage.as_object()?;
        let first = |paths: &[&str]| paths.iter().find_map(|p| usage.pointer(p)?.as_u64());
        Some(Usage {
            input_tokens: first(&["/input_tokens", "/prompt_tokens"]),
            output_tokens: first(&["/output_tokens", "/completion_tokens"]),
            total_tokens: first(&["/total_tokens"]),
            cached_tokens: first(&[
                "/input_tokens_details/cached_tokens",
                "/prompt_tokens_details/cached_tokens",
                "/cache_read_input_tokens",
            ]),
            reasoning_tokens: first(&[
                "/output_tokens_details/reasoning_tokens",
                "/completion_tokens_details/reasoning_tokens",
            ]),
            cache_creation_tokens: first(&["/cache_creation_input_tokens"]),
        })
    }
}

/// The members of a `usage` object the one pass reads, in the order of
/// the fields [`usage_of`] takes.
const USAGE_KEYS: [&str; 11] = [
    "input_tokens",
    "prompt_tokens",
    "output_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens_details",
    "prompt_tokens_details",
    "output_tokens_details",
    "completion_tokens_details",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
];

/// A details object's fields (`*_tokens_details`), borrowed as JSON text.
struct RawDetails<'a> {
    cached_tokens: Option<&'a str>,
    reasoning_tokens: Option<&'a str>,
}

/// The usage, as [`Usage::from_value`] reads it; `None` where only the
/// tree reading can tell (a details object that repeats a key).
fn usage_of(fields: [Option<&str>; 11]) -> Option<Usage> {
    let [
        input_tokens,
        prompt_tokens,
        output_tokens,
        completion_tokens,
        total_tokens,
        input_tokens_details,
        prompt_tokens_details,
        output_tokens_details,
        completion_tokens_details,
        cache_read_input_tokens,
        cache_creation_input_tokens,
    ] = fields;
    /// A non-negative integer, as `Value::as_u64` reads one.
    fn count(v: Option<&str>) -> Option<u64> {
        let t = v?;
        if t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok()
        } else {
            // `-0` and the like: rare, read as the tree reads them.
            serde_json::from_str::<Value>(t).ok()?.as_u64()
        }
    }
    /// The details object, `Some(None)` if it is not an object.
    fn details(v: Option<&str>) -> Option<Option<RawDetails<'_>>> {
        match v {
            Some(v) if v.starts_with('{') => read_details(v).map(Some),
            _ => Some(None),
        }
    }
    let input = details(input_tokens_details)?;
    let prompt = details(prompt_tokens_details)?;
    let output = details(output_tokens_details)?;
    let completion = details(completion_tokens_details)?;
    Some(Usage {
        input_tokens: count(input_tokens).or_else(|| count(prompt_tokens)),
        output_tokens: count(output_tokens).or_else(|| count(completion_tokens)),
        total_tokens: count(total_tokens),
        cached_tokens: count(input.as_ref().and_then(|d| d.cached_tokens))
            .or_else(|| count(prompt.as_ref().and_then(|d| d.cached_tokens)))
            .or_else(|| count(cache_read_input_tokens)),
        reasoning_tokens: count(output.as_ref().and_then(|d| d.reasoning_tokens))
            .or_else(|| count(completion.as_ref().and_then(|d| d.reasoning_tokens))),
        cache_creation_tokens: count(cache_creation_input_tokens),
    })
}

/// Reads a `usage` value's text as the one pass does: `Some(None)` for
/// `null`; `None` (leaving the line to the tree reading) for anything else
/// that is not an object, an object that repeats a key it reads, and a key
/// with escapes.
fn read_usage(text: &str) -> Option<Option<Usage>> {
    if text == "null" {
        return Some(None);
    }
    usage_of(read_fields(text, USAGE_KEYS)?).map(Some)
}

/// Reads a details object's text; `None` if it repeats a key it reads or
/// has a key with escapes.
fn read_details(text: &str) -> Option<RawDetails<'_>> {
    let [cached_tokens, reasoning_tokens] =
        read_fields(text, ["cached_tokens", "reasoning_tokens"])?;
    Some(RawDetails {
        cached_tokens,
        reasoning_tokens,
    })
}

/// Reads `text`, one JSON object, taking the text of the members named
/// `keys`, in their order (the rest skipped). `None` if the text is not one
/// object, a named key repeats (the tree reading, where the last one wins,
/// decides then), or a key has escapes.
fn read_fields<'a, const N: usize>(text: &'a str, keys: [&str; N]) -> Option<[Option<&'a str>; N]> {
    let mut cur = scan::Cursor::new(text);
    if !cur.eat(b'{') {
        return None;
    }
    let mut fields = [None; N];
    let mut first = true;
    while let Some(key) = cur.next_key(std::mem::take(&mut first))? {
        let v = cur.value()?;
        if let Some(k) = keys.iter().position(|&k| k == key) {
            if fields[k].is_some() {
                return None;
            }
            fields[k] = Some(cur.slice(v));
        }
    }
    cur.at_end().then_some(fields)
}

impl Usage {
    /// [`Usage::from_value`] on a raw `usage` value, read as the one pass
    /// reads it; the same answer, whatever the value.
    #[cfg(test)]
    fn from_raw(raw: &RawValue) -> Option<Usage> {
        match read_usage(raw.get()) {
            Some(usage) => usage,
            // Repeated keys and the like: the tree reading decides.
            None => Usage::from_value(&serde_json::from_str(raw.get()).ok()?),
        }
    }
}

impl<'de> Deserialize<'de> for Usage {
    /// Never fails on an object; a non-object gives an empty `Usage`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Usage::from_value(&v).unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------
// Bad lines

/// A line that could not be read as a result: a per-line problem, never a
/// reason to stop reading the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadLine {
    /// The 1-based physical line number.
    pub line: u64,
    /// The `custom_id`, when it could be salvaged from the line.
    pub custom_id: Option<String>,
    /// What kind of problem it is.
    pub kind: BadLineKind,
    /// What is wrong, in words.
    pub error: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.custom_id {
            Some(id) => write!(f, "line {} (custom_id {id:?}): {}", self.line, self.error),
            None => write!(f, "line {}: {}", self.line, self.error),
        }
    }
}

impl std::error::Error for BadLine {}

/// The kinds of [`BadLine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BadLineKind {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The line is not valid JSON.
    NotJson,
    /// The line is JSON but not an object.
    NotAnObject,
    /// The object has no string `custom_id`.
    NoCustomId,
    /// `response`, `response.status_code` or `error` has the wrong type.
    BadField,
}

// ---------------------------------------------------------------------------
// Parsing

/// Parses one line of an output or error file (without its line terminator).
///
/// `line` is the 1-based line number, carried into the result.
///
/// # Errors
///
/// Fails with a [`BadLine`] if the bytes are not UTF-8, not JSON, not an
/// object, have no string `custom_id`, or if `response` is neither an object
/// nor null, `response.status_code` is not an integer in `0..=65535`, or
/// `error` is neither an object, a string nor null. Never panics.
pub fn parse_result_line(line: u64, bytes: &[u8]) -> Result<ResultRecord, BadLine> {
    let salvaged = |kind, error: String| BadLine {
        line,
        custom_id: salvage_custom_id(bytes),
        kind,
        error,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to() + 1;
        salvaged(
            BadLineKind::NotUtf8,
            format!("not valid UTF-8 (at byte {at})"),
        )
    })?;
    if let Some(record) = fast_parse(line, text) {
        return Ok(record);
    }
    parse_full(line, bytes, text)
}

/// Reads a line whole into a `Value` tree and judges it: the reference
/// reading, and the one that says what is wrong with a bad line.
fn parse_full(line: u64, bytes: &[u8], text: &str) -> Result<ResultRecord, BadLine> {
    let salvaged = |kind, error: String| BadLine {
        line,
        custom_id: salvage_custom_id(bytes),
        kind,
        error,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| salvaged(BadLineKind::NotJson, json_error(&e)))?;
    let mut obj = match value {
        Value::Object(obj) => obj,
        other => {
            return Err(BadLine {
                line,
                custom_id: None,
                kind: BadLineKind::NotAnObject,
                error: format!("expected a JSON object, found {}", describe(&other)),
            });
        }
    };
    let custom_id = match obj.remove("custom_id") {
        Some(Value::String(s)) => s,
        other => {
            let error = match other {
                None => "the line has no `custom_id`".to_owned(),
                Some(v) => format!("`custom_id` is {}, not a string", describe(&v)),
            };
            return Err(BadLine {
                line,
                custom_id: None,
                kind: BadLineKind::NoCustomId,
                error,
            });
        }
    };
    let bad_field = |error: String| BadLine {
        line,
        custom_id: Some(custom_id.clone()),
        kind: BadLineKind::BadField,
        error,
    };
    let response = match obj.remove("response") {
        None | Some(Value::Null) => None,
        Some(Value::Object(r)) => Some(r),
        Some(v) => {
            let what = describe(&v);
            return Err(bad_field(format!(
                "`response` is {what}, not an object or null"
            )));
        }
    };
    let error = match obj.remove("error") {
        None | Some(Value::Null) => None,
        Some(e @ (Value::Object(_) | Value::String(_))) => Some(e),
        Some(v) => {
            let what = describe(&v);
            return Err(bad_field(format!(
                "`error` is {what}, not an object or null"
            )));
        }
    };
    let raw: Arc<str> = Arc::from(text);
    let outcome = match response {
        Some(mut resp) => {
            let status_code = match resp.get("status_code") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
                    Some(s) => Some(s),
                    None => {
                        let what = describe(v);
                        return Err(bad_field(format!(
                            "`response.status_code` is {what}, not an HTTP status"
                        )));
                    }
                },
            };
            judge_response(status_code, &mut resp, error.as_ref(), &raw)
        }
        None => match &error {
            Some(err) => Outcome::Failed(Failure::default().with_error(err)),
            None => Outcome::Failed(Failure::default()),
        },
    };
    let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    Ok(ResultRecord {
        line,
        id,
        custom_id,
        outcome,
        raw,
        spans: RawSpans::default(),
    })
}

/// A line read in one pass by a [`scan::Cursor`]: the `id`, `custom_id`,
/// `response.status_code`, `response.request_id`, the body's `usage` and
/// `error`, and the line's `error`. The rest of the body is skipped unbuilt
/// (checked as `serde_json` checks a value it skips), and where `response`
/// and the error lie in the line is noted (see
/// [`ResultRecord::raw_parts`]).
///
/// A success keeps its body unread. A failure reads its body once more,
/// alone, for [`Failure::body`] (failure bodies are small).
///
/// `None` for anything the full parse must judge (a body that is not an
/// object, a repeated key, a key with escapes, a field of the wrong type,
/// bad JSON): the full parse then reads the line and says what is wrong
/// with it.
fn fast_parse(line: u64, text: &str) -> Option<ResultRecord> {
    let mut cur = scan::Cursor::new(text);
    let head = read_line_head(&mut cur)?;
    let custom_id = raw_str(cur.slice(head.custom_id?))?;
    let line_error = head.error.map(|s| cur.slice(s));
    if line_error.is_some_and(|e| !e.starts_with(['{', '"'])) {
        return None;
    }
    let mut spans = RawSpans {
        known: true,
        response: None,
        error: head.error,
    };
    let raw: Arc<str> = Arc::from(text);
    let outcome = match head.response {
        Some(resp) => {
            let status_code = match resp.status_code {
                None => None,
                Some(s) => Some(status(cur.slice(s))?),
            };
            let body_span = resp.body.as_ref().map(|b| b.span);
            let body = resp.body.unwrap_or_default();
            let body_error = body.error.map(|s| cur.slice(s));
            spans.response = Some(resp.span);
            if line_error.is_none() {
                spans.error = body.error;
            }
            let ok = match status_code {
                Some(s) => (200..300).contains(&s),
                None => !body_error.is_some_and(|e| e.starts_with('{')),
            };
            let request_id = resp.request_id.and_then(|s| raw_string(cur.slice(s)));
            if ok && line_error.is_none() {
                Outcome::Succeeded(Success::lazy(
                    status_code,
                    request_id,
                    body.usage,
                    Arc::clone(&raw),
                    body_span,
                ))
            } else {
                let body_value = match body_span {
                    Some(span) => serde_json::from_str(cur.slice(span)).ok()?,
                    None => Value::Null,
                };
                let failure = Failure {
                    status_code,
                    request_id,
                    ..Failure::default()
                };
                let failure = match line_error.or(body_error) {
                    Some(e) => failure.with_error(&serde_json::from_str(e).ok()?),
                    // No error object: a bare string body is the best message there is.
                    None => Failure {
                        message: body_value.as_str().map(str::to_owned),
                        ..failure
                    },
                };
                Outcome::Failed(Failure {
                    body: Some(body_value),
                    ..failure
                })
            }
        }
        None => Outcome::Failed(match line_error {
            Some(e) => Failure::default().with_error(&serde_json::from_str(e).ok()?),
            None => Failure::default(),
        }),
    };
    Some(ResultRecord {
        line,
        id: head.id.and_then(|s| raw_string(cur.slice(s))),
        custom_id: custom_id.into_owned(),
        outcome,
        raw,
        spans,
    })
}

/// An HTTP status from a JSON number: an integer in `0..=65535`.
fn status(t: &str) -> Option<u16> {
    if (1..=5).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    u16::try_from(serde_json::from_str::<u64>(t).ok()?).ok()
}

/// The string a JSON value holds, if it is a string.
fn raw_string(t: &str) -> Option<String> {
    raw_str(t).map(Cow::into_owned)
}

/// The string a JSON value holds, borrowed when it has no escapes.
fn raw_str(t: &str) -> Option<Cow<'_, str>> {
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(t).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Where the server's own objects lie in a record's line, as the one-pass
/// read found them (byte ranges of [`ResultRecord::raw`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawSpans {
    /// Whether the ranges were found; if not, [`ResultRecord::raw_parts`]
    /// reads the line again.
    known: bool,
    /// The line's `response` object.
    response: Option<scan::Span>,
    /// The line's own `error`, else `response.body.error` (not `null`).
    error: Option<scan::Span>,
}

/// What the one-pass read keeps of a line: where its values lie.
#[derive(Default)]
struct LineHead {
    id: Option<scan::Span>,
    custom_id: Option<scan::Span>,
    response: Option<ResponseHead>,
    /// The line's `error`, unless `null`.
    error: Option<scan::Span>,
}

/// What the one-pass read keeps of a `response` object.
#[derive(Default)]
struct ResponseHead {
    /// The whole object.
    span: scan::Span,
    /// Unless `null`.
    status_code: Option<scan::Span>,
    request_id: Option<scan::Span>,
    body: Option<BodyHead>,
}

/// What the one-pass read keeps of a body: its `usage`, read, and where
/// its `error` lies.
#[derive(Default)]
struct BodyHead {
    /// The whole object.
    span: scan::Span,
    usage: Option<Usage>,
    /// The body's `error`, unless `null`.
    error: Option<scan::Span>,
}

/// Reads a line object; the whole text must be that one object. `None`
/// (sending the line to the full parse) when a key repeats.
fn read_line_head(cur: &mut scan::Cursor<'_>) -> Option<LineHead> {
    if !cur.eat(b'{') {
        return None;
    }
    let mut head = LineHead::default();
    let mut seen = [false; 4];
    let mut first = true;
    while let Some(key) = cur.next_key(std::mem::take(&mut first))? {
        let slot = match key {
            "id" => 0,
            "custom_id" => 1,
            "response" => 2,
            "error" => 3,
            _ => {
                cur.value()?;
                continue;
            }
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match slot {
            0 => head.id = Some(cur.value()?),
            1 => head.custom_id = Some(cur.value()?),
            2 => head.response = read_response(cur)?,
            _ => {
                let v = cur.value()?;
                head.error = (cur.slice(v) != "null").then_some(v);
            }
        }
    }
    cur.at_end().then_some(head)
}

/// At a value that must be an object or `null`: `Some(None)` for `null`
/// (taken), `Some(Some(start))` once the object's `{` is taken, `start`
/// being where it lies; `None` for anything else.
fn object_or_null(cur: &mut scan::Cursor<'_>) -> Option<Option<usize>> {
    if cur.peek()? != b'{' {
        let v = cur.value()?;
        return (cur.slice(v) == "null").then_some(None);
    }
    let start = cur.value_start();
    cur.eat(b'{');
    Some(Some(start))
}

/// Reads `response`: `Some(None)` for `null`; `None` (sending the line to
/// the full parse) when it is neither an object nor null, or repeats a key.
fn read_response(cur: &mut scan::Cursor<'_>) -> Option<Option<ResponseHead>> {
    let Some(start) = object_or_null(cur)? else {
        return Some(None);
    };
    let mut head = ResponseHead::default();
    let (mut status, mut rid, mut body) = (false, false, false);
    let mut first = true;
    while let Some(key) = cur.next_key(std::mem::take(&mut first))? {
        let seen = match key {
            "status_code" => &mut status,
            "request_id" => &mut rid,
            "body" => &mut body,
            _ => {
                cur.value()?;
                continue;
            }
        };
        if std::mem::replace(seen, true) {
            return None;
        }
        match key {
            "status_code" => {
                let v = cur.value()?;
                head.status_code = (cur.slice(v) != "null").then_some(v);
            }
            "request_id" => head.request_id = Some(cur.value()?),
            _ => head.body = read_body(cur)?,
        }
    }
    head.span = (start, cur.pos());
    Some(Some(head))
}

/// Reads a body: `Some(None)` for `null`; `None` (sending the line to the
/// full parse) when the body is neither an object nor null, or repeats
/// `usage` or `error`.
fn read_body(cur: &mut scan::Cursor<'_>) -> Option<Option<BodyHead>> {
    let Some(start) = object_or_null(cur)? else {
        return Some(None);
    };
    let mut head = BodyHead::default();
    let mut usage = false;
    let mut first = true;
    while let Some(key) = cur.next_key(std::mem::take(&mut first))? {
        match key {
            "usage" if !usage => {
                usage = true;
                let v = cur.value()?;
                head.usage = read_usage(cur.slice(v))?;
            }
            // `null` counts as no error, as in the full parse.
            "error" if head.error.is_none() => {
                let v = cur.value()?;
                head.error = (cur.slice(v) != "null").then_some(v);
            }
            "usage" | "error" => return None,
            _ => {
                cur.value()?;
            }
        }
    }
    head.span = (start, cur.pos());
    Some(Some(head))
}

/// Decides the outcome of a line that carries a response.
fn judge_response(
    status_code: Option<u16>,
    resp: &mut Map<String, Value>,
    line_error: Option<&Value>,
    line: &Arc<str>,
) -> Outcome {
    let request_id = resp
        .get("request_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = resp.remove("body").unwrap_or(Value::Null);
    let body_error = body.get("error").filter(|e| !e.is_null());
    let ok = match status_code {
        Some(s) => (200..300).contains(&s),
        None => !body_error.is_some_and(Value::is_object),
    };
    if ok && line_error.is_none() {
        return Outcome::Succeeded(Success::from_body(
            status_code,
            request_id,
            body,
            Arc::clone(line),
        ));
    }
    let failure = Failure {
        status_code,
        request_id,
        ..Failure::default()
    };
    let failure = match (line_error, body_error) {
        (Some(err), _) | (None, Some(err)) => failure.with_error(err),
        // No error object: a bare string body is the best message there is.
        (None, None) => Failure {
            message: body.as_str().map(str::to_owned),
            ..failure
        },
    };
    Outcome::Failed(Failure {
        body: Some(body),
        ..failure
    })
}

/// Recovers the `custom_id` from a line that could not be parsed as a whole:
/// the first `"custom_id"`, optional whitespace, `:`, whitespace and a
/// complete JSON string, unescaped. `None` if there is no such thing or the
/// string is not valid (bad escape, control character, not UTF-8).
pub fn salvage_custom_id(bytes: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"custom_id\"";
    memchr::memmem::find_iter(bytes, KEY).find_map(|at| {
        let mut i = skip_ws(bytes, at + KEY.len());
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        json_string(bytes, i + 1)
    })
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Reads a JSON string body starting just after its opening quote.
fn json_string(bytes: &[u8], mut i: usize) -> Option<String> {
    let mut out = Vec::new();
    loop {
        let b = *bytes.get(i)?;
        i += 1;
        match b {
            b'"' => return String::from_utf8(out).ok(),
            b'\\' => {
                let e = *bytes.get(i)?;
                i += 1;
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = hex4(bytes, i)?;
                        i += 4;
                        let code = if (0xD800..0xDC00).contains(&hi) {
                            if bytes.get(i..i + 2)? != b"\\u" {
                                return None;
                            }
                            let lo = hex4(bytes, i + 2)?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return None;
                            }
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            hi
                        };
                        char::from_u32(code)?
                    }
                    _ => return None,
                };
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            0x00..=0x1f => return None,
            _ => out.push(b),
        }
    }
}

fn hex4(bytes: &[u8], i: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(i..i + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Removes a markdown code fence around `text`, if the whole text is one:
/// `` ```json\n{..}\n``` `` or `` ```\n..\n``` `` becomes what is inside,
/// trimmed. Leading and trailing whitespace and any language tag are
/// tolerated, and so is a missing closing fence (output cut off by the token
/// limit). Text that does not start with a fence is returned trimmed.
pub fn strip_fences(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let is_tag = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+.#".contains(c))
    };
    let inner = match rest.split_once('\n') {
        // ```lang\n ... : the first line is only the (optional) tag.
        Some((first, after)) if is_tag(first.trim()) => after,
        // ```lang {...}``` on one line, or ``` followed by content.
        _ => {
            let r = rest.trim_start_matches([' ', '\t']);
            match r.split_once([' ', '\t', '\n']) {
                Some((tag, after)) if !tag.is_empty() && is_tag(tag) => after,
                _ => r,
            }
        }
    };
    let inner = inner.trim_end();
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// A `serde_json` error without its "at line 1 column N" suffix, which would
/// be confused with the file's line number.
fn json_error(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let msg = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i]);
    format!("invalid JSON at column {}: {msg}", e.column())
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string at a JSON pointer.
fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)?.as_str().map(str::to_owned)
}

/// A string, number or boolean field, as text (error codes are sometimes numbers).
fn scalar_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        n @ (Value::Number(_) | Value::Bool(_)) => Some(n.to_string()),
        _ => None,
    }
}

/// Message content: a string, or an array of parts whose `text`s are joined.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "text")
                })
                .filter_map(|p| p.get("text")?.as_str())
                .collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        _ => None,
    }
}

/// The Responses API text and refusal: all `output_text` (and `refusal`)
/// parts of `output[*].content[*]`, concatenated as the official SDKs do.
fn responses_text(body: &Value) -> (Option<String>, Option<String>) {
    let parts = body
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("content")?.as_array())
        .flatten();
    let (mut text, mut refusal) = (None::<String>, None::<String>);
    for part in parts {
        let (slot, key) = match part.get("type").and_then(Value::as_str) {
            Some("output_text") => (&mut text, "text"),
            Some("refusal") => (&mut refusal, "refusal"),
            _ => continue,
        };
        if let Some(s) = part.get(key).and_then(Value::as_str) {
            slot.get_or_insert_with(String::new).push_str(s);
        }
    }
    (text, refusal)
}

fn finish_reason(kind: BodyKind, body: &Value) -> Option<FinishReason> {
    match kind {
        BodyKind::ChatCompletion | BodyKind::Completion => {
            let choice = body.pointer("/choices/0")?;
            let reason = choice.get("finish_reason")?.as_str()?;
            let msg = choice.get("message");
            let calls = msg.map(chat_tool_calls).unwrap_or_default();
            Some(match reason {
                "stop" if !calls.is_empty() => FinishReason::ToolCalls(calls),
                "stop" => FinishReason::Stop,
                "length" => FinishReason::Length,
                "tool_calls" => FinishReason::ToolCalls(calls),
                "content_filter" => FinishReason::ContentFilter,
                "function_call" => FinishReason::FunctionCall(
                    msg.and_then(|m| m.get("function_call"))
                        .map(|f| tool_call(None, f, "arguments")),
                ),
                other => FinishReason::Other(other.to_owned()),
            })
        }
        BodyKind::Responses => {
            let status = body.get("status")?.as_str()?;
            Some(match status {
                "completed" => {
                    let calls = responses_tool_calls(body);
                    if calls.is_empty() {
                        FinishReason::Stop
                    } else {
                        FinishReason::ToolCalls(calls)
                    }
                }
                "incomplete" => match body
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                {
                    Some("max_output_tokens") => FinishReason::Length,
                    Some("content_filter") => FinishReason::ContentFilter,
                    Some(other) => FinishReason::Other(other.to_owned()),
                    None => FinishReason::Other("incomplete".to_owned()),
                },
                other => FinishReason::Other(other.to_owned()),
            })
        }
        BodyKind::Message => {
            let reason = body.get("stop_reason")?.as_str()?;
            Some(match reason {
                "end_turn" | "stop_sequence" => FinishReason::Stop,
                "max_tokens" => FinishReason::Length,
                "tool_use" => FinishReason::ToolCalls(message_tool_calls(body)),
                "refusal" => FinishReason::ContentFilter,
                other => FinishReason::Other(other.to_owned()),
            })
        }
        BodyKind::Embeddings | BodyKind::Other => None,
    }
}

/// The `text` blocks of an Anthropic message's `content`, joined; `None`
/// when it has none.
fn message_text(body: &Value) -> Option<String> {
    let blocks = body.get("content")?.as_array()?;
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

/// The `tool_use` blocks of an Anthropic message: id, name, and the
/// `input` object as JSON text.
fn message_tool_calls(body: &Value) -> Vec<ToolCall> {
    body.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| ToolCall {
            id: str_at(b, "/id"),
            name: str_at(b, "/name").unwrap_or_default(),
            arguments: b.get("input").map(Value::to_string).unwrap_or_default(),
        })
        .collect()
}

/// A tool call from an object with `name` and an arguments field.
fn tool_call(id: Option<String>, f: &Value, args_key: &str) -> ToolCall {
    let arguments = match f.get(args_key) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        // Not what the API sends, but keep it rather than lose it.
        Some(other) => other.to_string(),
    };
    ToolCall {
        id,
        name: str_at(f, "/name").unwrap_or_default(),
        arguments,
    }
}

/// `message.tool_calls`: function calls and custom tool calls.
fn chat_tool_calls(msg: &Value) -> Vec<ToolCall> {
    let calls = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    calls
        .filter_map(|c| {
            let id = str_at(c, "/id");
            if let Some(f) = c.get("function").filter(|f| f.is_object()) {
                Some(tool_call(id, f, "arguments"))
            } else {
                c.get("custom")
                    .filter(|f| f.is_object())
                    .map(|f| tool_call(id, f, "input"))
            }
        })
        .collect()
}

/// Responses API `function_call` and `custom_tool_call` output items.
fn responses_tool_calls(body: &Value) -> Vec<ToolCall> {
    let items = body
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    items
        .filter_map(|item| {
            let args_key = match item.get("type").and_then(Value::as_str)? {
                "function_call" => "arguments",
                "custom_tool_call" => "input",
                _ => return None,
            };
            let id = str_at(item, "/call_id").or_else(|| str_at(item, "/id"));
            Some(tool_call(id, item, args_key))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Typed bodies

/// `null` or missing becomes the default (an empty list, ...).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Content that is a string, or an array of text parts (joined).
fn content_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text_of(&Value::deserialize(d)?))
}

/// A `/v1/chat/completions` response body. Unknown fields are ignored and
/// most fields are optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: Option<String>,
    /// `chat.completion`.
    pub object: Option<String>,
    /// Unix seconds.
    pub created: Option<i64>,
    /// The model that answered.
    pub model: Option<String>,
    /// The choices (one unless `n` was set).
    #[serde(deserialize_with = "null_as_default")]
    pub choices: Vec<ChatChoice>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// The backend configuration fingerprint.
    pub system_fingerprint: Option<String>,
    /// The service tier used.
    pub service_tier: Option<String>,
}

impl ChatCompletion {
    /// The first choice's message.
    pub fn first_message(&self) -> Option<&ChatMessage> {
        self.choices.first()?.message.as_ref()
    }
}

/// One choice of a chat completion.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChatChoice {
    /// The choice's index.
    pub index: Option<u32>,
    /// The generated message.
    pub message: Option<ChatMessage>,
    /// `stop`, `length`, `tool_calls`, `content_filter`, `function_call`.
    pub finish_reason: Option<String>,
    /// Log probabilities, if requested, as sent.
    pub logprobs: Option<Value>,
}

/// A generated chat message.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChatMessage {
    /// `assistant`.
    pub role: Option<String>,
    /// The text (an array of text parts is joined).
    #[serde(deserialize_with = "content_text")]
    pub content: Option<String>,
    /// The refusal text, if the model refused.
    pub refusal: Option<String>,
    /// Tool calls the model made.
    #[serde(deserialize_with = "null_as_default")]
    pub tool_calls: Vec<ChatToolCall>,
    /// The deprecated single function call.
    pub function_call: Option<FunctionCall>,
}

/// One entry of `message.tool_calls`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ChatToolCall {
    /// The call's ID.
    pub id: Option<String>,
    /// `function` or `custom`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Set for `function` calls.
    pub function: Option<FunctionCall>,
    /// Set for `custom` tool calls.
    pub custom: Option<CustomToolCall>,
}

/// A function call: name and JSON arguments text.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FunctionCall {
    /// The function's name.
    pub name: Option<String>,
    /// The arguments as JSON text.
    pub arguments: Option<String>,
}

/// A custom tool call: name and free-form input.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CustomToolCall {
    /// The tool's name.
    pub name: Option<String>,
    /// The input the model wrote.
    pub input: Option<String>,
}

/// A `/v1/responses` response body. Unknown fields are ignored and most
/// fields are optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ResponsesBody {
    /// `resp_...`.
    pub id: Option<String>,
    /// `response`.
    pub object: Option<String>,
    /// Unix seconds.
    pub created_at: Option<f64>,
    /// `completed`, `incomplete`, `failed`, ...
    pub status: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The output items: messages, reasoning, tool calls.
    #[serde(deserialize_with = "null_as_default")]
    pub output: Vec<OutputItem>,
    /// Why the response is incomplete, when `status` is `incomplete`.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The error, when `status` is `failed`, as sent.
    pub error: Option<Value>,
    /// Token usage.
    pub usage: Option<Usage>,
}

impl ResponsesBody {
    /// The concatenated `output_text` parts of all output items, as the
    /// official SDKs' `output_text` gives it; `None` if there are none.
    pub fn output_text(&self) -> Option<String> {
        let texts: Vec<&str> = self
            .output
            .iter()
            .flat_map(|item| &item.content)
            .filter(|c| c.kind.as_deref() == Some("output_text"))
            .filter_map(|c| c.text.as_deref())
            .collect();
        (!texts.is_empty()).then(|| texts.concat())
    }
}

/// One item of a Responses API `output`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OutputItem {
    /// `message`, `reasoning`, `function_call`, `custom_tool_call`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The item's ID.
    pub id: Option<String>,
    /// `assistant`, for messages.
    pub role: Option<String>,
    /// The item's status.
    pub status: Option<String>,
    /// Content parts, for messages.
    #[serde(deserialize_with = "null_as_default")]
    pub content: Vec<OutputContent>,
    /// The call ID, for tool calls.
    pub call_id: Option<String>,
    /// The function or tool name, for tool calls.
    pub name: Option<String>,
    /// The arguments as JSON text, for function calls.
    pub arguments: Option<String>,
}

/// One content part of a Responses API output message.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OutputContent {
    /// `output_text` or `refusal`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The text, for `output_text`.
    pub text: Option<String>,
    /// The refusal, for `refusal`.
    pub refusal: Option<String>,
}

/// `incomplete_details` of a Responses API response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: Option<String>,
}

/// A `/v1/embeddings` response body.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Embeddings {
    /// `list`.
    pub object: Option<String>,
    /// One embedding per input.
    #[serde(deserialize_with = "null_as_default")]
    pub data: Vec<Embedding>,
    /// The model that answered.
    pub model: Option<String>,
    /// Token usage.
    pub usage: Option<Usage>,
}

impl Embeddings {
    /// Every vector in input order (by `index` where given), or `None` if
    /// any is missing or undecodable.
    pub fn vectors(&self) -> Option<Vec<Vec<f32>>> {
        let mut data: Vec<&Embedding> = self.data.iter().collect();
        data.sort_by_key(|e| e.index);
        data.iter()
            .map(|e| e.embedding.as_ref()?.to_f32())
            .collect()
    }
}

/// One embedding.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Embedding {
    /// The input's position.
    pub index: Option<u32>,
    /// The vector, as floats or base64.
    pub embedding: Option<EmbeddingVector>,
}

/// An embedding vector as sent: a float array (`encoding_format: float`, the
/// default) or base64 of little-endian `f32`s (`encoding_format: base64`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum EmbeddingVector {
    /// A JSON array of numbers.
    Floats(Vec<f32>),
    /// Base64 of little-endian `f32`s.
    Base64(String),
}

impl EmbeddingVector {
    /// The vector as floats; `None` if the base64 is malformed.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self {
            EmbeddingVector::Floats(v) => Some(v.clone()),
            EmbeddingVector::Base64(s) => {
                let bytes = base64_decode(s)?;
                if bytes.len() % 4 != 0 {
                    return None;
                }
                let floats = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                Some(floats.collect())
            }
        }
    }
}

/// Standard base64 with optional padding.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A legacy `/v1/completions` response body.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TextCompletion {
    /// `cmpl-...`.
    pub id: Option<String>,
    /// `text_completion`.
    pub object: Option<String>,
    /// Unix seconds.
    pub created: Option<i64>,
    /// The model that answered.
    pub model: Option<String>,
    /// The choices.
    #[serde(deserialize_with = "null_as_default")]
    pub choices: Vec<TextChoice>,
    /// Token usage.
    pub usage: Option<Usage>,
}

/// One choice of a text completion.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TextChoice {
    /// The choice's index.
    pub index: Option<u32>,
    /// The generated text.
    pub text: Option<String>,
    /// `stop`, `length`, `content_filter`.
    pub finish_reason: Option<String>,
}

// ---------------------------------------------------------------------------
// Streaming

/// One thing found in a result file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
// `Record` is both the large and the common variant; boxing it would add an
// allocation per line to save a few hundred bytes on the rare ones.
#[allow(clippy::large_enum_variant)]
pub enum ResultEvent {
    /// A parsed line.
    Record(ResultRecord),
    /// A line that could not be read (see [`BadLine`]).
    BadLine(BadLine),
    /// A line longer than the decoder's cap, skipped unbuffered.
    TooLong {
        /// The 1-based line number.
        line: u64,
        /// Its length in bytes.
        len: u64,
        /// The `custom_id` salvaged from its first bytes, if there.
        custom_id: Option<String>,
    },
    /// The file ended in the middle of a line: it was cut off. The decoder
    /// is rewound to [`LineDecoder::complete_bytes`], from where the rest
    /// can be fetched and fed.
    Truncated {
        /// The number the line would have had.
        line: u64,
        /// How many bytes of it arrived.
        len: u64,
        /// The `custom_id` salvaged from what arrived, if there.
        custom_id: Option<String>,
    },
}

impl ResultEvent {
    /// The 1-based line number the event is about.
    pub fn line(&self) -> u64 {
        match self {
            ResultEvent::Record(r) => r.line,
            ResultEvent::BadLine(b) => b.line,
            ResultEvent::TooLong { line, .. } | ResultEvent::Truncated { line, .. } => *line,
        }
    }
}

/// Decodes and parses a result file chunk by chunk: a strict
/// [`LineDecoder`] feeding [`parse_result_line`].
///
/// ```
/// use batch_core::results::{ResultEvent, ResultStream};
///
/// let file = b"{\"id\":\"r1\",\"custom_id\":\"a\",\"response\":{\"status_code\":200,\"body\":{}},\"error\":null}\n{\"id\"";
/// let mut stream = ResultStream::new(1 << 20);
/// let mut events = Vec::new();
/// for chunk in file.chunks(7) {
///     events.extend(stream.feed(chunk));
/// }
/// events.extend(stream.finish());
/// assert!(matches!(&events[0], ResultEvent::Record(r) if r.custom_id == "a"));
/// assert!(matches!(events[1], ResultEvent::Truncated { line: 2, .. }));
/// ```
#[derive(Clone, Debug)]
pub struct ResultStream {
    decoder: LineDecoder,
}

impl ResultStream {
    /// A stream over a strict decoder capping lines at `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        ResultStream {
            decoder: LineDecoder::new(max_line_bytes),
        }
    }

    /// A stream over the given decoder (for example one from
    /// [`LineDecoder::resume_at`]).
    pub fn with_decoder(decoder: LineDecoder) -> Self {
        ResultStream { decoder }
    }

    /// Takes the next chunk. Drain the returned [`ResultEvents`] before the
    /// next call; if it is dropped early, the rest comes first next time.
    pub fn feed<'a>(&'a mut self, chunk: &'a [u8]) -> ResultEvents<'a> {
        ResultEvents {
            lines: self.decoder.feed(chunk),
        }
    }

    /// Signals end of input: yields what is left, then
    /// [`ResultEvent::Truncated`] if the file did not end with a newline.
    pub fn finish(&mut self) -> ResultEvents<'_> {
        ResultEvents {
            lines: self.decoder.finish(),
        }
    }

    /// The decoder, for its offsets and counters
    /// ([`LineDecoder::complete_bytes`], [`LineDecoder::buffered_len`], ...).
    pub fn decoder(&self) -> &LineDecoder {
        &self.decoder
    }

    /// See [`LineDecoder::rewind_to_line_boundary`].
    pub fn rewind_to_line_boundary(&mut self) -> u64 {
        self.decoder.rewind_to_line_boundary()
    }
}

/// The events of one chunk, one at a time. An [`Iterator`] of owned
/// [`ResultEvent`]s that borrows the stream until it is dropped.
#[must_use = "drain the events before feeding the next chunk"]
#[derive(Debug)]
pub struct ResultEvents<'a> {
    lines: Lines<'a>,
}

impl Iterator for ResultEvents<'_> {
    type Item = ResultEvent;

    fn next(&mut self) -> Option<ResultEvent> {
        Some(match self.lines.next_line()? {
            LineEvent::Line { line, bytes } => match parse_result_line(line, bytes) {
                Ok(record) => ResultEvent::Record(record),
                Err(bad) => ResultEvent::BadLine(bad),
            },
            LineEvent::TooLong { line, len, prefix } => ResultEvent::TooLong {
                line,
                len,
                custom_id: salvage_custom_id(prefix),
            },
            LineEvent::Truncated { line, len, prefix } => ResultEvent::Truncated {
                line,
                len,
                custom_id: salvage_custom_id(prefix),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The one-pass reading gives the same record as the full one, on
    /// successes, failures, odd shapes and repeated keys alike.
    #[test]
    fn one_pass_agrees_with_the_full_parse() {
        let lines = [
            r#"{"id":"r1","custom_id":"a","response":{"status_code":200,"request_id":"q","body":{"object":"chat.completion","model":"m","choices":[{"message":{"content":"```json\n{\"k\": [1, 2]}\n```"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}},"error":null}"#,
            r#"{"custom_id":"b\u00e9","response":{"status_code":200,"body":{"object":"list","data":[{"embedding":[0.1,-2e-3,3]}],"usage":{"prompt_tokens":9}}}}"#,
            r#"{"id":7,"custom_id":"c","response":{"body":{"error":"a string error","usage":null}},"error":null}"#,
            r#"{"custom_id":"d","response":{"body":{"error":{"code":"x"}}}}"#,
            r#"{"custom_id":"e","response":{"status_code":201,"request_id":5,"body":null}}"#,
            r#"{"custom_id":"f","response":{"status_code":200,"body":"text"}}"#,
            r#"{"custom_id":"g","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}}}"#,
            r#"{"custom_id":"h","response":{"status_code":200,"status_code":500,"body":{}}}"#,
            r#"{"custom_id":"i","custom_id":"j","response":{"status_code":200,"body":{}}}"#,
            r#"{"custom_id":"k","response":{"status_code":200.0,"body":{}}}"#,
            r#"{"custom_id":"l","response":{"status_code":70000,"body":{}}}"#,
            r#"{"custom_id":"m","response":{"status_code":200,"body":{}},"error":{"code":"late"}}"#,
            r#"{"custom_id":"n","response":{"status_code":404,"body":{"error":{"message":"no"}}}}"#,
            r#"{"custom_id":"o","response":{"status_code":200,"body":{"error":null,"error":{"code":"x"}}}}"#,
            r#"{"custom_id":"p","response":[200]}"#,
            r#"["q"]"#,
            r#" {"custom_id":"r","response":{"status_code":200,"body":{"object":"response","output":[]}}} "#,
            r#"{"custom_id":"s","response":{"status_code":500,"request_id":"q","body":"overloaded"},"error":null}"#,
            r#"{"custom_id":"t","response":{"status_code":400,"body":{"error":7}}}"#,
            r#"{"custom_id":"u","response":null,"error":"a bare string"}"#,
            r#"{"custom_id":"v","response":null,"error":{"code":429,"message":"slow down","param":null,"type":true}}"#,
            r#"{"custom_id":"w"}"#,
            r#"{"custom_id":"x","error":[1]}"#,
            r#"{"custom_id":"y","response":{"status_code":409,"body":{"error":{"code":"a"}}},"error":{"message":"b"}}"#,
            r#"{"custom_id":"z","response":{},"error":null}"#,
            r#"{"custom_id":"\u0041\"q","response":{"status_code":200,"body":{}}}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            let n = i as u64 + 1;
            let fast = parse_result_line(n, l.as_bytes());
            // A repeated body `error` (`o`): reading again gives up on the
            // error, where the one pass takes the last, as the outcome does.
            if let Some(rec) = fast.as_ref().ok().filter(|r| r.custom_id != "o") {
                assert_eq!(
                    (rec.raw_parts().response, rec.raw_parts().error),
                    {
                        let again = reparse_raw_parts(&rec.raw);
                        (again.response, again.error)
                    },
                    "line {l}"
                );
            }
            let full = parse_full(n, l.as_bytes(), l);
            assert_eq!(fast, full, "line {l}");
            if let (Ok(a), Ok(b)) = (&fast, &full) {
                assert_eq!(
                    (a.content(), a.json(), a.success().map(Success::kind)),
                    (b.content(), b.json(), b.success().map(Success::kind)),
                    "line {l}"
                );
                assert_eq!(
                    a.success().map(|s| s.usage),
                    b.success().map(|s| s.usage),
                    "line {l}"
                );
            }
        }
        // The common line takes the one pass and leaves its body unread.
        let rec = parse_result_line(1, lines[1].as_bytes()).expect("parses");
        let s = rec.success().expect("success");
        assert!(s.derived.get().is_none(), "the body was read eagerly");
        assert_eq!(s.kind(), BodyKind::Embeddings);
        assert_eq!(s.usage.and_then(|u| u.input_tokens), Some(9));
    }

    /// Lines the one pass must hand to the full parse, or read as it does:
    /// escaped keys, deep bodies, bad numbers and strings deep in a body.
    #[test]
    fn one_pass_agrees_on_lines_it_must_skip_or_refuse() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let lines = [
            r#"{"custom_id":"a","response":{"status_code":200,"body":{"us\u0061ge":{"prompt_tokens":3}}}}"#.to_owned(),
            r#"{"cust\u006fm_id":"b","response":{"status_code":200,"body":{}}}"#.to_owned(),
            r#"{"custom_id":"d","response":{"status_code":200,"body":{"x":01}}}"#.to_owned(),
            r#"{"custom_id":"e","response":{"status_code":200,"body":{"x":[1,]}}}"#.to_owned(),
            "{\"custom_id\":\"f\",\"response\":{\"status_code\":200,\"body\":{\"x\":\"a\u{1}b\"}}}".to_owned(),
            r#"{"custom_id":"g","response":{"status_code":200,"body":{"x":"\q"}}}"#.to_owned(),
            r#"{"custom_id":"h","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}}}}"#.to_owned(),
            r#"{"custom_id":"i","response":{"status_code":200,"body":{"usage":5}}}"#.to_owned(),
            r#"{"custom_id":"j","response":{"status_code":200,"body":{"usage":{"total_tokens":-0}}}}"#.to_owned(),
            r#"{"custom_id":"k","response":{"status_code":200,"body":{}}} x"#.to_owned(),
            r#"{"custom_id":"l","response":{"status_code":200,"body":{}},}"#.to_owned(),
            "\t{ \"custom_id\" :\"m\" ,\r\n\"response\": { \"status_code\" : 200 , \"body\" : { \"data\" : [ 1.5e3 , -0.25 ] } } }\n".to_owned(),
            r#"{"custom_id":"n","response":{"status_code":200,"body":{"data":[1e5,2E+7,-0,0.0]},"body":{}}}"#.to_owned(),
        ];
        for (i, l) in lines.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!(
                parse_result_line(n, l.as_bytes()),
                parse_full(n, l.as_bytes(), l),
                "line {l}"
            );
        }
        // A number beyond f64's range is valid JSON: the one pass takes
        // the line and keeps its bytes, where the tree reading cannot.
        let l = r#"{"custom_id":"o","response":{"status_code":200,"body":{"x":-8702053370943651e+300}}}"#;
        let rec = parse_result_line(1, l.as_bytes()).expect("valid JSON");
        assert!(rec.is_success());
        assert!(parse_full(1, l.as_bytes(), l).is_err());
        assert_eq!(
            rec.raw_parts().response,
            Some(r#"{"status_code":200,"body":{"x":-8702053370943651e+300}}"#)
        );
        // A body nested deeper than the tree reading goes (128 levels) is
        // still valid JSON: the one pass takes it, as serde's skipping
        // does, and copies it through whole.
        let l = format!(
            r#"{{"custom_id":"c","response":{{"status_code":200,"body":{{"deep":{deep}}}}}}}"#
        );
        let rec = parse_result_line(1, l.as_bytes()).expect("a deep body is valid JSON");
        assert!(rec.is_success());
        assert_eq!(
            rec.raw_parts().response,
            Some(format!(r#"{{"status_code":200,"body":{{"deep":{deep}}}}}"#).as_str())
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// On result lines with any body, whitespace and key order, and on
        /// the same lines with a byte cut out, the one pass gives what the
        /// full parse gives.
        #[test]
        fn one_pass_agrees_on_any_line(
            body in prop_body(),
            status in proptest::prelude::prop_oneof![proptest::prelude::Just(200u64), proptest::prelude::Just(400), 0u64..70_000],
            pretty in proptest::prelude::any::<bool>(),
            error_first in proptest::prelude::any::<bool>(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut line = serde_json::Map::new();
            if error_first {
                line.insert("error".into(), Value::Null);
            }
            line.insert("id".into(), json!("batch_req_1"));
            line.insert("custom_id".into(), json!("c-1"));
            line.insert("response".into(), json!({"status_code": status, "request_id": "req", "body": body}));
            line.insert("error".into(), Value::Null);
            let v = Value::Object(line);
            let text = if pretty {
                serde_json::to_string_pretty(&v).expect("json").replace('\n', " ")
            } else {
                v.to_string()
            };
            agree_with_full(&text)?;
            let at = cut.index(text.len());
            let mut cut_text = text.into_bytes();
            cut_text.remove(at);
            if let Ok(t) = std::str::from_utf8(&cut_text) {
                agree_with_full(t)?;
            }
        }
    }

    /// The one pass gives what the full parse gives, but for one
    /// difference by design: a number beyond `f64`'s range (valid JSON,
    /// which a cut in `1.5e300` can make) is skipped by the one pass, as
    /// serde skips it, where the tree reading refuses the line.
    fn agree_with_full(t: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let fast = parse_result_line(1, t.as_bytes());
        let full = parse_full(1, t.as_bytes(), t);
        if let (Ok(_), Err(bad)) = (&fast, &full)
            && bad.error.contains("number out of range")
        {
            return Ok(());
        }
        proptest::prop_assert_eq!(fast, full, "{}", t);
        Ok(())
    }

    /// A response body: any JSON, with `usage` and `error` often present.
    fn prop_body() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z \"\\\\\u{e9}\n]{0,20}".prop_map(Value::String),
        ];
        let any_json = leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let usage = prop_oneof![
            Just(Value::Null),
            Just(json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})),
            Just(
                json!({"input_tokens": 2, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 1}})
            ),
            any_json.clone(),
        ];
        let error = prop_oneof![
            Just(Value::Null),
            Just(json!({"message": "no", "code": "bad"})),
            Just(json!("a string")),
            any_json.clone(),
        ];
        (
            any_json,
            proptest::option::of(usage),
            proptest::option::of(error),
        )
            .prop_map(|(body, usage, error)| {
                let mut body = match body {
                    Value::Object(m) => m,
                    other => return other,
                };
                if let Some(u) = usage {
                    body.insert("usage".into(), u);
                }
                if let Some(e) = error {
                    body.insert("error".into(), e);
                }
                Value::Object(body)
            })
    }

    /// Usage read from raw text matches usage read from a tree.
    #[test]
    fn raw_usage_agrees_with_the_tree() {
        for u in [
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#,
            r#"{"input_tokens":"x","prompt_tokens":5,"output_tokens":-1,"completion_tokens":2.0,"total_tokens":-0}"#,
            r#"{"input_tokens_details":{"cached_tokens":2},"prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":{"reasoning_tokens":4}}"#,
            r#"{"input_tokens_details":7,"prompt_tokens_details":{"cached_tokens":9},"output_tokens_details":null}"#,
            r#"{"total_tokens":1,"total_tokens":2}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":3}}"#,
            r#"{"total_tokens":18446744073709551616}"#,
            r#"{}"#,
            r#"[1]"#,
            r#"null"#,
        ] {
            let raw: Box<RawValue> = serde_json::from_str(u).expect("json");
            let tree: Value = serde_json::from_str(u).expect("json");
            assert_eq!(Usage::from_raw(&raw), Usage::from_value(&tree), "{u}");
        }
    }

    /// Where the one pass found `response` and the error agrees with a
    /// second reading, whatever the whitespace and key order.
    #[test]
    fn noted_ranges_agree_with_reading_again() {
        let lines = [
            json!({"id": "r", "custom_id": "a", "response": {"status_code": 200, "request_id": "q",
                "body": {"object": "chat.completion", "choices": [{"message": {"content": "}\"{"}}],
                "usage": {"prompt_tokens": 1}}}, "error": null}),
            json!({"error": null, "response": {"body": {"data": [{"embedding": [0.5, -1]}]}, "status_code": 200}, "custom_id": "b"}),
            json!({"custom_id": "c", "response": {"status_code": 400, "body": {"error": {"message": "no", "code": null}}}, "error": null}),
            json!({"custom_id": "d", "response": null, "error": {"code": "batch_expired", "message": "late"}}),
            json!({"custom_id": "e", "response": {"status_code": 200, "body": {"z": {}, "a": []}, "x": {"y": "}"}}}),
            json!({"custom_id": "f", "response": {"body": {"error": {"code": "x"}}}}),
        ];
        for v in lines {
            let compact = v.to_string();
            let pretty = serde_json::to_string_pretty(&v).expect("json");
            let spaced = compact.replace(':', " : ").replace(',', " ,\t");
            for text in [compact, pretty, spaced] {
                let rec = parse_result_line(1, text.as_bytes()).expect("parses");
                assert!(rec.spans.known, "{text}");
                let again = reparse_raw_parts(&text);
                let parts = rec.raw_parts();
                assert_eq!(
                    (parts.response, parts.error),
                    (again.response, again.error),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn raw_parts_are_the_servers_bytes() {
        let line = r#"{"id":"batch_req_7","custom_id":"c","response":{"status_code":400,"request_id":"r","body":{"error":{"type":"invalid_request_error","message":"no such model","param":"model","code":"model_not_found","extra":{"hint":1.50}}}},"error":null}"#;
        let rec = parse_result_line(1, line.as_bytes()).expect("parses");
        assert_eq!(rec.id.as_deref(), Some("batch_req_7"));
        let parts = rec.raw_parts();
        assert_eq!(
            parts.response,
            Some(
                r#"{"status_code":400,"request_id":"r","body":{"error":{"type":"invalid_request_error","message":"no such model","param":"model","code":"model_not_found","extra":{"hint":1.50}}}}"#
            )
        );
        assert_eq!(
            parts.error,
            Some(
                r#"{"type":"invalid_request_error","message":"no such model","param":"model","code":"model_not_found","extra":{"hint":1.50}}"#
            )
        );
    }

    #[test]
    fn raw_error_prefers_the_lines_own_error() {
        let line = r#"{"id":"batch_req_8","custom_id":"c","response":null,"error":{"message":"expired","code":"batch_expired","line":3}}"#;
        let rec = parse_result_line(1, line.as_bytes()).expect("parses");
        let parts = rec.raw_parts();
        assert!(parts.response.is_none());
        assert_eq!(
            parts.error,
            Some(r#"{"message":"expired","code":"batch_expired","line":3}"#)
        );
        let both = r#"{"custom_id":"c","response":{"status_code":200,"body":{"error":{"code":"inner"}}},"error":{"code":"outer"}}"#;
        let rec = parse_result_line(1, both.as_bytes()).expect("parses");
        assert!(!rec.is_success());
        assert_eq!(rec.raw_parts().error, Some(r#"{"code":"outer"}"#));
        let ok = r#"{"custom_id":"c","response":{"status_code":200,"body":{}},"error":null}"#;
        let rec = parse_result_line(1, ok.as_bytes()).expect("parses");
        assert!(rec.raw_parts().error.is_none());
        assert_eq!(rec.id, None);
    }

    fn parse(v: Value) -> ResultRecord {
        parse_result_line(1, v.to_string().as_bytes()).expect("parses")
    }

    fn ok_line(body: Value) -> Value {
        json!({"id": "batch_req_1", "custom_id": "c1",
               "response": {"status_code": 200, "request_id": "req_1", "body": body}, "error": null})
    }

    #[test]
    fn chat_success_extracts_content_model_usage_and_finish() {
        let r = parse(ok_line(json!({
            "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "```json\n{\"a\": 1}\n```"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                      "prompt_tokens_details": {"cached_tokens": 2},
                      "completion_tokens_details": {"reasoning_tokens": 0}}
        })));
        let s = r.success().expect("success");
        assert_eq!(r.id.as_deref(), Some("batch_req_1"));
        assert_eq!(s.status_code, Some(200));
        assert_eq!(s.request_id.as_deref(), Some("req_1"));
        assert_eq!(s.kind(), BodyKind::ChatCompletion);
        assert_eq!(s.model(), Some("gpt-4o-mini"));
        assert_eq!(s.content_unfenced(), Some("{\"a\": 1}"));
        assert_eq!(s.json(), Some(&json!({"a": 1})));
        assert_eq!(s.finish_reason(), Some(&FinishReason::Stop));
        let u = s.usage.expect("usage");
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.total_tokens,
                u.cached_tokens,
                u.reasoning_tokens
            ),
            (Some(10), Some(5), Some(15), Some(2), Some(0))
        );
        let chat = r.chat_completion().expect("typed");
        assert_eq!(
            chat.first_message().and_then(|m| m.role.as_deref()),
            Some("assistant")
        );
        assert!(r.responses_body().is_none());
    }

    #[test]
    fn stop_with_tool_calls_counts_as_tool_calls() {
        let r = parse(ok_line(json!({
            "object": "chat.completion",
            "choices": [{"message": {"content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_2", "type": "custom", "custom": {"name": "g", "input": "raw"}}]},
                "finish_reason": "stop"}]
        })));
        let s = r.success().expect("success");
        assert_eq!(s.content(), None);
        let Some(FinishReason::ToolCalls(calls)) = s.finish_reason() else {
            panic!("{s:?}")
        };
        assert_eq!(
            calls[0],
            ToolCall {
                id: Some("call_1".into()),
                name: "f".into(),
                arguments: "{}".into()
            }
        );
        assert_eq!(
            calls[1],
            ToolCall {
                id: Some("call_2".into()),
                name: "g".into(),
                arguments: "raw".into()
            }
        );
    }

    #[test]
    fn legacy_function_call_and_unknown_reasons() {
        let r = parse(ok_line(json!({
            "object": "chat.completion",
            "choices": [{"message": {"function_call": {"name": "f", "arguments": "{\"x\":1}"}},
                         "finish_reason": "function_call"}]
        })));
        assert_eq!(
            r.success().and_then(|s| s.finish_reason().cloned()),
            Some(FinishReason::FunctionCall(Some(ToolCall {
                id: None,
                name: "f".into(),
                arguments: "{\"x\":1}".into()
            })))
        );
        let r = parse(ok_line(json!({"object": "chat.completion",
            "choices": [{"message": {"content": "x"}, "finish_reason": "something_new"}]})));
        assert_eq!(
            r.success().and_then(|s| s.finish_reason().cloned()),
            Some(FinishReason::Other("something_new".into()))
        );
    }

    #[test]
    fn responses_api_text_usage_and_incomplete_reasons() {
        let body = |status: &str, reason: Value| {
            json!({
                "object": "response", "status": status, "model": "gpt-5",
                "incomplete_details": reason,
                "output": [
                    {"type": "reasoning", "summary": []},
                    {"type": "message", "content": [
                        {"type": "output_text", "text": "Hello, "},
                        {"type": "output_text", "text": "world"}]}],
                "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7,
                          "input_tokens_details": {"cached_tokens": 1},
                          "output_tokens_details": {"reasoning_tokens": 2}}
            })
        };
        let r = parse(ok_line(body("completed", Value::Null)));
        let s = r.success().expect("success");
        assert_eq!(s.kind(), BodyKind::Responses);
        assert_eq!(s.content(), Some("Hello, world"));
        assert_eq!(s.finish_reason(), Some(&FinishReason::Stop));
        assert_eq!(s.usage.and_then(|u| u.reasoning_tokens), Some(2));
        assert_eq!(s.usage.and_then(|u| u.cached_tokens), Some(1));
        assert_eq!(
            r.responses_body().and_then(|b| b.output_text()).as_deref(),
            Some("Hello, world")
        );
        let finish = |status, reason| {
            parse(ok_line(body(status, reason)))
                .success()
                .and_then(|s| s.finish_reason().cloned())
        };
        assert_eq!(
            finish("incomplete", json!({"reason": "max_output_tokens"})),
            Some(FinishReason::Length)
        );
        assert_eq!(
            finish("incomplete", json!({"reason": "content_filter"})),
            Some(FinishReason::ContentFilter)
        );
        assert_eq!(
            finish("incomplete", Value::Null),
            Some(FinishReason::Other("incomplete".into()))
        );
        assert_eq!(
            finish("failed", Value::Null),
            Some(FinishReason::Other("failed".into()))
        );
    }

    #[test]
    fn responses_function_calls_are_tool_calls() {
        let r = parse(ok_line(
            json!({"object": "response", "status": "completed", "output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "lookup", "arguments": "{\"q\":\"x\"}"}]}),
        ));
        assert_eq!(
            r.success().and_then(|s| s.finish_reason().cloned()),
            Some(FinishReason::ToolCalls(vec![ToolCall {
                id: Some("call_9".into()),
                name: "lookup".into(),
                arguments: "{\"q\":\"x\"}".into()
            }]))
        );
        assert_eq!(r.content(), None);
    }

    #[test]
    fn embeddings_floats_and_base64() {
        let b64 = "AACAPwAAAMA="; // [1.0, -2.0] as little-endian f32
        let r = parse(ok_line(
            json!({"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 1, "embedding": b64},
                     {"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}}),
        ));
        let s = r.success().expect("success");
        assert_eq!(s.kind(), BodyKind::Embeddings);
        assert_eq!((s.content(), s.finish_reason()), (None, None));
        assert_eq!(
            s.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((Some(4), None))
        );
        let e = r.embeddings().expect("typed");
        assert_eq!(e.vectors(), Some(vec![vec![0.5, 0.25], vec![1.0, -2.0]]));
    }

    #[test]
    fn completions_text() {
        let r = parse(ok_line(json!({"object": "text_completion",
            "choices": [{"text": " 42", "finish_reason": "length"}]})));
        assert_eq!(r.content(), Some(" 42"));
        assert_eq!(r.json(), Some(&json!(42)));
        assert_eq!(
            r.success().and_then(|s| s.finish_reason().cloned()),
            Some(FinishReason::Length)
        );
        assert_eq!(r.completion().map(|c| c.choices.len()), Some(1));
    }

    #[test]
    fn error_status_takes_the_servers_error() {
        let r = parse(json!({"id": "batch_req_2", "custom_id": "c2",
            "response": {"status_code": 400, "request_id": "req_2", "body": {"error": {
                "message": "Invalid model", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}},
            "error": null}));
        let f = r.failure().expect("failure");
        assert_eq!(f.status_code, Some(400));
        assert_eq!(f.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(f.code.as_deref(), Some("model_not_found"));
        assert_eq!(f.param.as_deref(), Some("model"));
        assert_eq!(f.request_id.as_deref(), Some("req_2"));
        assert!(!f.is_not_processed());
        assert_eq!(
            f.to_string(),
            "status 400, invalid_request_error, code model_not_found: Invalid model"
        );
    }

    #[test]
    fn null_response_with_batch_errors_is_not_processed() {
        for code in ["batch_expired", "batch_cancelled"] {
            let r = parse(
                json!({"id": "batch_req_3", "custom_id": "c3", "response": null,
                "error": {"code": code, "message": "This request could not be executed."}}),
            );
            let f = r.failure().expect("failure");
            assert!(f.is_not_processed(), "{code}");
            assert_eq!(f.status_code, None);
            assert_eq!(f.body, None);
            assert_eq!(
                f.to_string(),
                format!("code {code}: This request could not be executed.")
            );
        }
        let r = parse(
            json!({"custom_id": "c4", "response": null, "error": {"code": "server_error", "message": "m"}}),
        );
        assert!(!r.failure().expect("failure").is_not_processed());
    }

    #[test]
    fn neither_response_nor_error_is_a_failure() {
        let r = parse(json!({"custom_id": "c5"}));
        let f = r.failure().expect("failure");
        assert_eq!(f, &Failure::default());
        assert_eq!(f.to_string(), "failed without a response or an error");
    }

    #[test]
    fn error_wins_over_a_2xx_response() {
        let r = parse(json!({"custom_id": "c6",
            "response": {"status_code": 200, "body": {"object": "chat.completion", "choices": []}},
            "error": {"code": "weird", "message": "flagged"}}));
        let f = r.failure().expect("failure");
        assert_eq!(
            (f.status_code, f.code.as_deref()),
            (Some(200), Some("weird"))
        );
        assert_eq!(
            f.body.as_ref().and_then(|b| b.get("object")),
            Some(&json!("chat.completion"))
        );
    }

    #[test]
    fn error_status_without_error_object_keeps_what_there_is() {
        let r = parse(
            json!({"custom_id": "c", "response": {"status_code": 502, "body": "Bad gateway"}}),
        );
        let f = r.failure().expect("failure");
        assert_eq!(f.message.as_deref(), Some("Bad gateway"));
        assert_eq!(f.to_string(), "status 502: Bad gateway");
        let r = parse(json!({"custom_id": "c", "response": {"status_code": 500, "body": {}}}));
        assert_eq!(r.failure().expect("failure").to_string(), "status 500");
    }

    #[test]
    fn missing_status_code_is_judged_by_the_body() {
        let r =
            parse(json!({"custom_id": "c", "response": {"body": {"error": {"message": "no"}}}}));
        assert_eq!(r.failure().and_then(|f| f.message.as_deref()), Some("no"));
        let r =
            parse(json!({"custom_id": "c", "response": {"body": {"object": "chat.completion"}}}));
        assert_eq!(r.success().map(|s| s.status_code), Some(None));
    }

    #[test]
    fn numeric_error_codes_become_text() {
        let r = parse(json!({"custom_id": "c", "error": {"code": 429, "message": "slow down"}}));
        assert_eq!(r.failure().and_then(|f| f.code.as_deref()), Some("429"));
    }

    #[test]
    fn raw_is_the_exact_line() {
        let line = br#"{"custom_id":"x",  "response":{"status_code":200,"body":{"z":1.50,"a":2}}}"#;
        let r = parse_result_line(7, line).expect("parses");
        assert_eq!(r.raw.as_bytes(), line);
        assert_eq!(r.line, 7);
        assert_eq!(r.success().map(Success::kind), Some(BodyKind::Other));
    }

    #[test]
    fn bad_lines_say_why_and_salvage_the_custom_id() {
        let cases: &[(&[u8], BadLineKind, Option<&str>)] = &[
            (
                br#"{"id":"r","custom_id":"abc","response":{"#,
                BadLineKind::NotJson,
                Some("abc"),
            ),
            (b"{\"custom_id\":\"u\xff\"}", BadLineKind::NotUtf8, None),
            (
                b"{\"custom_id\":\"ok\",\"x\":\"\xff\"}",
                BadLineKind::NotUtf8,
                Some("ok"),
            ),
            (b"[1,2]", BadLineKind::NotAnObject, None),
            (br#"{"custom_id":12}"#, BadLineKind::NoCustomId, None),
            (
                br#"{"id":"x","body":{"custom_id":"nested"}}"#,
                BadLineKind::NoCustomId,
                None,
            ),
            (
                br#"{"custom_id":"c","response":[]}"#,
                BadLineKind::BadField,
                Some("c"),
            ),
            (
                br#"{"custom_id":"c","response":{"status_code":"200"}}"#,
                BadLineKind::BadField,
                Some("c"),
            ),
            (
                br#"{"custom_id":"c","response":{"status_code":70000}}"#,
                BadLineKind::BadField,
                Some("c"),
            ),
            (
                br#"{"custom_id":"c","error":5}"#,
                BadLineKind::BadField,
                Some("c"),
            ),
        ];
        for &(bytes, kind, id) in cases {
            let bad = parse_result_line(3, bytes).expect_err("bad line");
            assert_eq!(
                (bad.kind, bad.custom_id.as_deref(), bad.line),
                (kind, id, 3),
                "{bad}"
            );
        }
        let bad = parse_result_line(9, b"{\"custom_id\": \"x\", oops}").expect_err("bad");
        assert_eq!(
            bad.to_string(),
            "line 9 (custom_id \"x\"): invalid JSON at column 20: key must be a string"
        );
    }

    #[test]
    fn salvage_unescapes_and_rejects_broken_strings() {
        assert_eq!(
            salvage_custom_id(br#"{"custom_id" : "a\"b\\c\u00e9\ud83d\ude00\n""#).as_deref(),
            Some("a\"b\\c\u{e9}\u{1f600}\n")
        );
        assert_eq!(salvage_custom_id(br#"{"custom_id":"unterminated"#), None);
        assert_eq!(salvage_custom_id(br#"{"custom_id":"bad\q"}"#), None);
        assert_eq!(salvage_custom_id(br#"{"custom_id":"\ud83d"}"#), None);
        assert_eq!(salvage_custom_id(br#"{"custom_id":"\u12"}"#), None);
        assert_eq!(salvage_custom_id(b"{\"custom_id\":\"a\tb\"}"), None);
        // The first well-formed occurrence wins.
        assert_eq!(
            salvage_custom_id(br#"{"custom_id":1,"x":{"custom_id":"second"}}"#).as_deref(),
            Some("second")
        );
        assert_eq!(salvage_custom_id(b""), None);
    }

    #[test]
    fn fences_are_stripped_only_around_the_whole_text() {
        let cases = [
            ("```json\n{\"a\":1}\n```", "{\"a\":1}"),
            ("  \n```JSON  \r\n[1]\r\n```  \n", "[1]"),
            ("```\nplain\n```", "plain"),
            ("```json {\"a\":1}```", "{\"a\":1}"),
            ("```{\"a\":1}```", "{\"a\":1}"),
            ("```json\n{\"cut\": tr", "{\"cut\": tr"),
            ("no fence  ", "no fence"),
            ("text then ```json\n{}\n```", "text then ```json\n{}\n```"),
            ("```", ""),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(strip_fences(input), want, "{input:?}");
        }
    }

    #[test]
    fn content_json_is_none_for_prose() {
        let r = parse(ok_line(json!({"object": "chat.completion",
            "choices": [{"message": {"content": "Sure! Here it is."}, "finish_reason": "stop"}]})));
        assert_eq!(r.json(), None);
        assert_eq!(r.content(), Some("Sure! Here it is."));
    }

    #[test]
    fn refusals_are_kept() {
        let r = parse(ok_line(json!({"object": "chat.completion",
            "choices": [{"message": {"content": null, "refusal": "I can't."}, "finish_reason": "stop"}]})));
        assert_eq!(r.success().and_then(|s| s.refusal()), Some("I can't."));
        let r = parse(ok_line(json!({"object": "response", "status": "completed",
            "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]})));
        assert_eq!(r.success().and_then(|s| s.refusal()), Some("No."));
        assert_eq!(r.content(), None);
    }

    #[test]
    fn kind_falls_back_to_shape() {
        assert_eq!(
            BodyKind::of(&json!({"choices": [{"message": {}}]})),
            BodyKind::ChatCompletion
        );
        assert_eq!(
            BodyKind::of(&json!({"choices": [{"text": ""}]})),
            BodyKind::Completion
        );
        assert_eq!(BodyKind::of(&json!({"output": []})), BodyKind::Responses);
        assert_eq!(
            BodyKind::of(&json!({"data": [{"embedding": []}]})),
            BodyKind::Embeddings
        );
        assert_eq!(
            BodyKind::of(&json!({"object": "list", "data": [{"id": "x"}]})),
            BodyKind::Other
        );
        assert_eq!(BodyKind::of(&json!({"results": []})), BodyKind::Other);
        assert_eq!(BodyKind::of(&Value::Null), BodyKind::Other);
    }

    #[test]
    fn typed_views_tolerate_nulls_and_content_parts() {
        let r = parse(ok_line(
            json!({"object": "chat.completion", "extra": {"new": true},
            "choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                                     "tool_calls": null}, "finish_reason": "stop"}],
            "usage": null}),
        ));
        let chat = r.chat_completion().expect("typed");
        let msg = chat.first_message().expect("message");
        assert_eq!(msg.content.as_deref(), Some("ab"));
        assert!(msg.tool_calls.is_empty());
        assert_eq!(r.content(), Some("ab"));
        assert_eq!(chat.usage, None);
    }

    #[test]
    fn base64_decoding() {
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64_decode(""), Some(vec![]));
        assert_eq!(base64_decode("a!"), None);
        assert_eq!(EmbeddingVector::Base64("AAA=".into()).to_f32(), None);
    }

    #[test]
    fn stream_yields_records_bad_lines_too_long_and_truncation() {
        let long = r#"{"custom_id":"long","response":{"status_code":200,"body":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}}"#;
        let cut = r#"{"custom_id":"cut","resp"#;
        let file = [
            r#"{"custom_id":"a","response":{"status_code":200,"body":{}}}"#,
            "garbage",
            long,
            cut,
        ]
        .join("\n");
        let mut stream = ResultStream::new(90);
        let mut events: Vec<ResultEvent> = stream.feed(file.as_bytes()).collect();
        events.extend(stream.finish());
        assert_eq!(events.len(), 4, "{events:#?}");
        assert!(matches!(&events[0], ResultEvent::Record(r) if r.custom_id == "a" && r.line == 1));
        assert!(
            matches!(&events[1], ResultEvent::BadLine(b) if b.line == 2 && b.kind == BadLineKind::NotJson)
        );
        assert_eq!(
            events[2],
            ResultEvent::TooLong {
                line: 3,
                len: long.len() as u64,
                custom_id: Some("long".into())
            }
        );
        assert_eq!(
            events[3],
            ResultEvent::Truncated {
                line: 4,
                len: cut.len() as u64,
                custom_id: Some("cut".into())
            }
        );
        assert_eq!(
            events.iter().map(ResultEvent::line).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            stream.decoder().complete_bytes(),
            (file.len() - cut.len()) as u64
        );
    }
}
