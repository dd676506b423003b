//! The input model: items sharing a system prompt, typed requests, and raw request lines.
//!
//! There are three ways in, and all end as a [`BatchRequest`], which
//! [`ShardEncoder`](crate::jsonl::ShardEncoder) validates and writes as one
//! line of a batch input file:
//!
//! - **Items.** An [`Item`] carries a `custom_id`, the user message and the
//!   settings of that one request. A [`RequestTemplate`] holds what every item
//!   of a job shares (the endpoint, the model and the compiled
//!   [`SystemPrompt`]) and turns each item into a request body for the
//!   endpoint: chat completions, responses, completions, embeddings or
//!   moderations.
//! - **Typed requests.** [`ChatRequest`], [`ResponsesRequest`] and
//!   [`EmbeddingsRequest`] build the request line of one endpoint field by
//!   field: messages, `response_format` with a JSON Schema, tools, and
//!   `extra` for the rest.
//! - **Raw request lines.** A [`BatchRequest`] is one line of the input file
//!   for any endpoint the Batch API accepts, as the user wrote it.
//!   [`BatchRequest::parse_line`] reads one from a line of a user's JSONL file
//!   (API notes §6, `BatchRequestInput`).
//!
//! ```
//! use batch_core::Endpoint;
//! use batch_core::input::{Item, RequestTemplate, StructuredPrompt, SystemPrompt};
//! use serde_json::json;
//!
//! let prompt = SystemPrompt::from(StructuredPrompt::new().role("a careful editor").tone("plain"));
//! let template = RequestTemplate::new(Endpoint::ChatCompletions, "gpt-4o-mini", &prompt);
//! let item = Item::new("req-1", "Fix: teh cat").temperature(0.2);
//! let request = template.request("items", 1, &item)?;
//! assert_eq!(request.body["messages"][0]["content"], json!("You are a careful editor.\n\nTone: plain"));
//! assert_eq!(request.body["temperature"], json!(0.2));
//! assert!(!request.body.contains_key("max_tokens")); // only what the item sets is sent
//! # Ok::<(), batch_core::InputError>(())
//! ```

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::Endpoint;
use crate::error::{InputError, Problem};

mod typed;
pub use typed::{
    ChatRequest, EmbeddingInput, EmbeddingsRequest, EncodingFormat, FunctionTool, JsonSchema,
    Message, ResponseFormat, ResponsesRequest, Role, ToolChoice,
};

// ---------------------------------------------------------------------------
// Item

/// One request of a job built from items: a `custom_id`, the user message,
/// and the settings of this request.
///
/// Only what an item sets is sent: `temperature` and `max_tokens` are left
/// out of the body when they are `None` (reasoning models reject them).
/// `extra` fields are merged into the request body as they are, unless they
/// would override what the job sets (see [`RequestTemplate::request`]).
///
/// Serialized as `{"custom_id", "message", "temperature"?, "max_tokens"?,
/// "extra"?}`; unknown keys are rejected when deserializing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The caller's ID for this request, unique within the job; results are
    /// matched to items by it.
    pub custom_id: String,
    /// The user message.
    pub message: String,
    /// Sampling temperature, sent only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Output token limit, sent only when set (`max_tokens`, or
    /// `max_output_tokens` for `/v1/responses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Extra body fields, merged into the request body.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl Item {
    /// An item with a `custom_id` and a user message, and nothing else set.
    pub fn new(custom_id: impl Into<String>, message: impl Into<String>) -> Self {
        Item {
            custom_id: custom_id.into(),
            message: message.into(),
            temperature: None,
            max_tokens: None,
            extra: Map::new(),
        }
    }

    /// Sets the sampling temperature.
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the output token limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Adds (or replaces) an extra body field, e.g.
    /// `.extra("response_format", json!({"type": "json_object"}))`.
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

// ---------------------------------------------------------------------------
// System prompt

/// The system prompt shared by all items of a job.
///
/// Serialized as `null` ([`SystemPrompt::None`]), a string
/// ([`SystemPrompt::Text`]) or an object ([`SystemPrompt::Structured`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemPrompt {
    /// No system message.
    #[default]
    None,
    /// The system message, as written. Empty or blank text means no system
    /// message.
    Text(String),
    /// A structured prompt, compiled to text by [`StructuredPrompt::compile`].
    Structured(StructuredPrompt),
}

impl SystemPrompt {
    /// The system message text, or `None` when there is no system message
    /// (the prompt is [`SystemPrompt::None`], or its text is empty or blank).
    ///
    /// Deterministic: the same prompt always compiles to the same text.
    pub fn compile(&self) -> Option<String> {
        let text = match self {
            SystemPrompt::None => return None,
            SystemPrompt::Text(text) => text.clone(),
            SystemPrompt::Structured(prompt) => prompt.compile(),
        };
        (!text.trim().is_empty()).then_some(text)
    }
}

impl From<&str> for SystemPrompt {
    fn from(text: &str) -> Self {
        SystemPrompt::Text(text.to_owned())
    }
}

impl From<String> for SystemPrompt {
    fn from(text: String) -> Self {
        SystemPrompt::Text(text)
    }
}

impl From<StructuredPrompt> for SystemPrompt {
    fn from(prompt: StructuredPrompt) -> Self {
        SystemPrompt::Structured(prompt)
    }
}

impl Serialize for SystemPrompt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SystemPrompt::None => s.serialize_none(),
            SystemPrompt::Text(text) => s.serialize_str(text),
            SystemPrompt::Structured(prompt) => prompt.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SystemPrompt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(SystemPrompt::None),
            Value::String(text) => Ok(SystemPrompt::Text(text)),
            obj @ Value::Object(_) => StructuredPrompt::deserialize(obj)
                .map(SystemPrompt::Structured)
                .map_err(de::Error::custom),
            other => Err(de::Error::custom(format_args!(
                "a system prompt is null, a string or an object, not {}",
                kind(&other)
            ))),
        }
    }
}

/// The structured system prompt: who the model is, what it aims at, the
/// rules it keeps, its tone and the shape of its answer.
///
/// Every part is optional. [`compile`](StructuredPrompt::compile) turns the
/// parts that are set into text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredPrompt {
    /// Who the model is: "a careful copy editor".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What the answer should achieve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aim: Option<String>,
    /// Rules to keep, one per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// The tone of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
    /// The shape of the answer (e.g. "JSON with keys `label` and `reason`").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
}

impl StructuredPrompt {
    /// An empty prompt (compiles to the empty string).
    pub fn new() -> Self {
        StructuredPrompt::default()
    }

    /// Sets the role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Sets the aim.
    pub fn aim(mut self, aim: impl Into<String>) -> Self {
        self.aim = Some(aim.into());
        self
    }

    /// Adds one constraint.
    pub fn constraint(mut self, constraint: impl Into<String>) -> Self {
        self.constraints.push(constraint.into());
        self
    }

    /// Sets the tone.
    pub fn tone(mut self, tone: impl Into<String>) -> Self {
        self.tone = Some(tone.into());
        self
    }

    /// Sets the output format.
    pub fn output_format(mut self, output_format: impl Into<String>) -> Self {
        self.output_format = Some(output_format.into());
        self
    }

    /// Compiles the prompt to text, deterministically.
    ///
    /// The parts are written in this order, separated by a blank line:
    ///
    /// ```text
    /// You are {role}.
    ///
    /// Aim: {aim}
    ///
    /// Constraints:
    /// - {constraint 1}
    /// - {constraint 2}
    ///
    /// Tone: {tone}
    ///
    /// Output format: {output_format}
    /// ```
    ///
    /// Each part is trimmed of surrounding whitespace. Parts that are absent,
    /// empty or blank are left out (so are blank constraints, and the whole
    /// "Constraints:" block when none remain). No period is added after the
    /// role when it already ends with one. A prompt with no part set
    /// compiles to the empty string.
    pub fn compile(&self) -> String {
        fn part(value: &Option<String>) -> Option<&str> {
            value.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let mut blocks: Vec<String> = Vec::new();
        if let Some(role) = part(&self.role) {
            let stop = if role.ends_with('.') { "" } else { "." };
            blocks.push(format!("You are {role}{stop}"));
        }
        if let Some(aim) = part(&self.aim) {
            blocks.push(format!("Aim: {aim}"));
        }
        let constraints: Vec<&str> = self
            .constraints
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect();
        if !constraints.is_empty() {
            let mut block = String::from("Constraints:");
            for c in constraints {
                block.push_str("\n- ");
                block.push_str(c);
            }
            blocks.push(block);
        }
        if let Some(tone) = part(&self.tone) {
            blocks.push(format!("Tone: {tone}"));
        }
        if let Some(format) = part(&self.output_format) {
            blocks.push(format!("Output format: {format}"));
        }
        blocks.join("\n\n")
    }
}

// ---------------------------------------------------------------------------
// Items to requests

/// What all items of a job share: the endpoint, the model and the system
/// prompt (compiled once). Turns each [`Item`] into a [`BatchRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTemplate {
    endpoint: Endpoint,
    model: String,
    system: Option<String>,
}

/// Where an item's parts go in the body for one endpoint.
struct Shape {
    /// The key that carries the user message.
    message: &'static str,
    /// Where the system prompt goes, if the endpoint has a place for it.
    system: Option<SystemSlot>,
    /// The key for the token limit; `None` when the endpoint takes neither a
    /// temperature nor a token limit.
    max_tokens: Option<&'static str>,
}

enum SystemSlot {
    /// A leading `{"role":"system"}` message in `messages`.
    Message,
    /// A body key of its own (`instructions`).
    Key(&'static str),
}

impl Shape {
    fn of(endpoint: &Endpoint) -> Option<Shape> {
        let shape = match endpoint {
            Endpoint::ChatCompletions => Shape {
                message: "messages",
                system: Some(SystemSlot::Message),
                max_tokens: Some("max_tokens"),
            },
            Endpoint::Responses => Shape {
                message: "input",
                system: Some(SystemSlot::Key("instructions")),
                max_tokens: Some("max_output_tokens"),
            },
            Endpoint::Completions => Shape {
                message: "prompt",
                system: None,
                max_tokens: Some("max_tokens"),
            },
            Endpoint::Embeddings | Endpoint::Moderations => Shape {
                message: "input",
                system: None,
                max_tokens: None,
            },
            _ => return None,
        };
        Some(shape)
    }
}

impl RequestTemplate {
    /// A template for `endpoint` and `model`, with `system` compiled once
    /// (see [`SystemPrompt::compile`]).
    pub fn new(endpoint: Endpoint, model: impl Into<String>, system: &SystemPrompt) -> Self {
        RequestTemplate {
            endpoint,
            model: model.into(),
            system: system.compile(),
        }
    }

    /// The endpoint every request targets.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The model every request names.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The compiled system message, if there is one.
    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// Builds the request for `item`, the `item_no`-th (1-based) item of
    /// `source`.
    ///
    /// The body, by endpoint (`?` marks keys sent only when set):
    ///
    /// | endpoint | body |
    /// | --- | --- |
    /// | `/v1/chat/completions` | `model`, `messages` (`[{"role":"system",..}?, {"role":"user",..}]`), `temperature`?, `max_tokens`? |
    /// | `/v1/responses` | `model`, `instructions`? (the system prompt), `input`, `temperature`?, `max_output_tokens`? |
    /// | `/v1/completions` | `model`, `prompt`, `temperature`?, `max_tokens`? |
    /// | `/v1/embeddings`, `/v1/moderations` | `model`, `input` |
    ///
    /// then the item's `extra` fields. The model is not checked here; the
    /// encoder does that for all requests alike.
    ///
    /// # Errors
    ///
    /// An [`InputError`] naming `source`, `item_no` and the field, if:
    /// - the endpoint is not one of the above: `url`,
    ///   [`Problem::NeedsRawRequest`];
    /// - there is a system prompt and the endpoint has no place for it
    ///   (completions, embeddings, moderations): `system`,
    ///   [`Problem::NotAccepted`];
    /// - the item sets a temperature or token limit for embeddings or
    ///   moderations: `temperature` or `max_tokens`, [`Problem::NotAccepted`];
    /// - the temperature is NaN or infinite: `temperature`, [`Problem::Invalid`];
    /// - an extra field would override what the job sets (`model`, and
    ///   `messages`, `input`, `prompt` or, when there is a system prompt,
    ///   `instructions`): `extra.<key>`, [`Problem::Overrides`];
    /// - an extra field repeats the item's temperature or token limit:
    ///   `extra.<key>`, [`Problem::Conflicts`].
    pub fn request(
        &self,
        source: &str,
        item_no: u64,
        item: &Item,
    ) -> Result<BatchRequest, InputError> {
        let fail = |field: &str, problem| Err(InputError::new(source, item_no, field, problem));
        let endpoint = || self.endpoint.as_str().to_owned();
        let Some(shape) = Shape::of(&self.endpoint) else {
            return fail(
                "url",
                Problem::NeedsRawRequest {
                    endpoint: endpoint(),
                },
            );
        };
        if self.system.is_some() && shape.system.is_none() {
            return fail(
                "system",
                Problem::NotAccepted {
                    endpoint: endpoint(),
                },
            );
        }
        if shape.max_tokens.is_none() {
            let set = [
                ("temperature", item.temperature.is_some()),
                ("max_tokens", item.max_tokens.is_some()),
            ];
            if let Some((field, _)) = set.into_iter().find(|(_, is_set)| *is_set) {
                return fail(
                    field,
                    Problem::NotAccepted {
                        endpoint: endpoint(),
                    },
                );
            }
        }
        if item.temperature.is_some_and(|t| !t.is_finite()) {
            return fail(
                "temperature",
                Problem::Invalid("must be a finite number".into()),
            );
        }

        // What the job sets: an extra field of the same name would replace it.
        let mut job_keys = vec!["model", shape.message];
        if let (Some(SystemSlot::Key(key)), Some(_)) = (&shape.system, &self.system) {
            job_keys.push(key);
        }
        if let Some(key) = job_keys.into_iter().find(|k| item.extra.contains_key(*k)) {
            return fail(&format!("extra.{key}"), Problem::Overrides(key.into()));
        }
        // What the item sets itself: an extra field of the same name conflicts.
        let mut item_keys = Vec::new();
        if item.temperature.is_some() {
            item_keys.push(("temperature", "temperature"));
        }
        if let (Some(key), Some(_)) = (shape.max_tokens, item.max_tokens) {
            item_keys.push((key, "max_tokens"));
        }
        if let Some((key, setting)) = item_keys
            .into_iter()
            .find(|(k, _)| item.extra.contains_key(*k))
        {
            return fail(&format!("extra.{key}"), Problem::Conflicts(setting.into()));
        }

        let mut body = Map::new();
        body.insert("model".into(), Value::from(self.model.as_str()));
        let message = Value::from(item.message.as_str());
        match (&shape.system, &self.system) {
            (Some(SystemSlot::Message), system) => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = system {
                    messages.push(chat_message("system", Value::from(system.as_str())));
                }
                messages.push(chat_message("user", message));
                body.insert(shape.message.into(), Value::Array(messages));
            }
            (Some(SystemSlot::Key(key)), Some(system)) => {
                body.insert((*key).into(), Value::from(system.as_str()));
                body.insert(shape.message.into(), message);
            }
            _ => {
                body.insert(shape.message.into(), message);
            }
        }
        if let Some(t) = item.temperature {
            body.insert("temperature".into(), Value::from(t));
        }
        if let (Some(key), Some(n)) = (shape.max_tokens, item.max_tokens) {
            body.insert(key.into(), Value::from(n));
        }
        body.extend(item.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(BatchRequest::new(
            item.custom_id.clone(),
            self.endpoint.clone(),
            body,
        ))
    }

    /// Builds the requests for `items`, numbered from 1, as
    /// `(item_no, result)` pairs: the shape
    /// [`validate_all`](crate::jsonl::validate_all) takes.
    pub fn requests<'a>(
        &'a self,
        source: &'a str,
        items: &'a [Item],
    ) -> impl Iterator<Item = (u64, Result<BatchRequest, InputError>)> + 'a {
        (1u64..)
            .zip(items)
            .map(move |(n, item)| (n, self.request(source, n, item)))
    }
}

fn chat_message(role: &str, content: Value) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), Value::from(role));
    m.insert("content".into(), content);
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// Raw request lines

/// One request line of a batch input file, for any endpoint (API notes
/// §6, `BatchRequestInput`).
///
/// The wire shape is `{"custom_id":..,"method":"POST","url":..,"body":{..}}`,
/// in that key order. The method is always `POST`, so it is not stored: it is
/// written on serializing and checked on parsing. Body keys are serialized in
/// sorted order at every depth, whatever features `serde_json` is built with,
/// so the same request always serializes to the same bytes.
///
/// Deserializing applies the checks of [`BatchRequest::parse_line`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRequest {
    /// The caller's ID for this request, unique within the batch.
    pub custom_id: String,
    /// The endpoint the request targets; must be the batch's endpoint.
    pub url: Endpoint,
    /// The JSON request body for `url`.
    pub body: Map<String, Value>,
}

impl BatchRequest {
    /// The only method the Batch API accepts.
    pub const METHOD: &'static str = "POST";

    /// A request line.
    pub fn new(custom_id: impl Into<String>, url: Endpoint, body: Map<String, Value>) -> Self {
        BatchRequest {
            custom_id: custom_id.into(),
            url,
            body,
        }
    }

    /// The HTTP method, always `POST`.
    pub fn method(&self) -> &'static str {
        Self::METHOD
    }

    /// The body's `model`, if it is a string.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// Parses one line of a user's JSONL input file, the `line_no`-th
    /// (1-based) line of `source`.
    ///
    /// The line may end in `\n` or `\r\n`, and may start with a UTF-8 byte
    /// order mark. `method` may be left out (it is always `POST`). The `url`
    /// is kept even if it is not a known endpoint; the encoder checks it
    /// against the batch's endpoint.
    ///
    /// # Errors
    ///
    /// An [`InputError`] naming `source`, `line_no` and the field:
    /// - the line is blank, not valid JSON (the text gives serde's column),
    ///   or not a JSON object: no field, [`Problem::InvalidJson`];
    /// - a top-level key other than `custom_id`, `method`, `url`, `body`:
    ///   that key, [`Problem::UnknownField`];
    /// - a key given twice: that key, [`Problem::Invalid`];
    /// - `custom_id` missing ([`Problem::Missing`]), empty
    ///   ([`Problem::Empty`]) or not a string ([`Problem::Invalid`]);
    /// - `method` present and not the string `"POST"`: `method`,
    ///   [`Problem::Invalid`];
    /// - `url` missing, empty or not a string, or with a `.` or `..` path
    ///   segment (`/v1/../admin`, also percent-encoded): `url`;
    /// - `body` missing, or not an object: `body`.
    pub fn parse_line(source: &str, line_no: u64, line: &[u8]) -> Result<Self, InputError> {
        let fail = |field: &str, problem| InputError::new(source, line_no, field, problem);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(fail("", Problem::InvalidJson("the line is blank".into())));
        }
        let Entries(entries) = serde_json::from_slice(line).map_err(|e| {
            let text = match serde_json::from_slice::<Value>(line) {
                // Valid JSON, but not an object.
                Ok(other) => format!("the line is {}, not a JSON object", kind(&other)),
                Err(_) => json_error_text(&e),
            };
            fail("", Problem::InvalidJson(text))
        })?;
        from_entries(entries).map_err(|(field, problem)| fail(&field, problem))
    }
}

impl Serialize for BatchRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut line = s.serialize_struct("BatchRequest", 4)?;
        line.serialize_field("custom_id", &self.custom_id)?;
        line.serialize_field("method", Self::METHOD)?;
        line.serialize_field("url", &self.url)?;
        line.serialize_field("body", &SortedMap(&self.body))?;
        line.end()
    }
}

impl<'de> Deserialize<'de> for BatchRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Entries(entries) = Entries::deserialize(d)?;
        from_entries(entries).map_err(|(field, problem)| {
            de::Error::custom(format_args!("field `{field}`: {problem}"))
        })
    }
}

/// The top-level entries of a JSON object, in order, duplicates kept.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::with_capacity(4);
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// Checks the entries of a request line; errors name the field.
fn from_entries(entries: Vec<(String, Value)>) -> Result<BatchRequest, (String, Problem)> {
    let (mut custom_id, mut method, mut url, mut body) = (None, None, None, None);
    for (key, value) in entries {
        let slot = match key.as_str() {
            "custom_id" => &mut custom_id,
            "method" => &mut method,
            "url" => &mut url,
            "body" => &mut body,
            _ => return Err((key, Problem::UnknownField)),
        };
        if slot.is_some() {
            return Err((key, Problem::Invalid("appears twice in the line".into())));
        }
        *slot = Some(value);
    }
    let fail = |field: &str, problem| Err((field.to_owned(), problem));
    let not_a =
        |what: &str, v: &Value| Problem::Invalid(format!("must be {what}, not {}", kind(v)));

    let custom_id = match custom_id {
        None => return fail("custom_id", Problem::Missing),
        Some(Value::String(s)) if s.is_empty() => return fail("custom_id", Problem::Empty),
        Some(Value::String(s)) => s,
        Some(v) => return fail("custom_id", not_a("a string", &v)),
    };
    match method {
        None => {}
        Some(Value::String(m)) if m == BatchRequest::METHOD => {}
        Some(Value::String(m)) => {
            return fail(
                "method",
                Problem::Invalid(format!("must be \"POST\", not {m:?}")),
            );
        }
        Some(v) => return fail("method", not_a("the string \"POST\"", &v)),
    }
    let url = match url {
        None => return fail("url", Problem::Missing),
        Some(Value::String(s)) if s.is_empty() => return fail("url", Problem::Empty),
        Some(Value::String(s)) if has_dot_segment(&s) => {
            return fail(
                "url",
                Problem::Invalid(format!(
                    "{s:?} has a \".\" or \"..\" path segment; give the endpoint's path as is"
                )),
            );
        }
        Some(Value::String(s)) => Endpoint::parse(&s),
        Some(v) => return fail("url", not_a("a string", &v)),
    };
    let body = match body {
        None => return fail("body", Problem::Missing),
        Some(Value::Object(body)) => body,
        Some(v) => return fail("body", not_a("a JSON object", &v)),
    };
    Ok(BatchRequest {
        custom_id,
        url,
        body,
    })
}

/// Whether the path of `url` has a `.` or `..` segment, also written with
/// `%2e` (RFC 3986 section 3.3 and 6.2.2.2: a server may resolve it to another
/// path than the one checked against the batch's endpoint).
fn has_dot_segment(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or("");
    path.split(['/', '\\']).any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// serde_json's message, with the position given as a column when the input
/// was a single line (it always is for [`BatchRequest::parse_line`], but
/// a caller may pass a line with an embedded newline).
fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) if e.line() == 1 => format!("{message} at column {}", e.column()),
        _ => text,
    }
}

/// A JSON value's kind, for messages: "a string", "an array", ...
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Serializes a JSON object with its keys in sorted order at every depth.
///
/// `serde_json::Map` is sorted by default but keeps insertion order when any
/// crate in the build turns on `serde_json/preserve_order`; this keeps the
/// bytes of an encoded request independent of that.
struct SortedMap<'a>(&'a Map<String, Value>);

struct SortedValue<'a>(&'a Value);

impl Serialize for SortedMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&String, &Value)> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            map.serialize_entry(key, &SortedValue(value))?;
        }
        map.end()
    }
}

impl Serialize for SortedValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => SortedMap(map).serialize(s),
            Value::Array(items) => s.collect_seq(items.iter().map(SortedValue)),
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn chat(system: &SystemPrompt) -> RequestTemplate {
        RequestTemplate::new(Endpoint::ChatCompletions, "m", system)
    }

    fn err(source: &str, line: u64, field: &str, problem: Problem) -> InputError {
        InputError::new(source, line, field, problem)
    }

    // --- system prompt ---

    #[test]
    fn empty_or_blank_prompts_compile_to_none() {
        assert_eq!(SystemPrompt::None.compile(), None);
        assert_eq!(SystemPrompt::from("").compile(), None);
        assert_eq!(SystemPrompt::from(" \n\t").compile(), None);
        assert_eq!(SystemPrompt::from(StructuredPrompt::new()).compile(), None);
        let blank_parts = StructuredPrompt::new().role("  ").constraint("");
        assert_eq!(SystemPrompt::from(blank_parts).compile(), None);
        assert_eq!(
            SystemPrompt::from("Be brief.").compile().as_deref(),
            Some("Be brief.")
        );
    }

    #[test]
    fn structured_prompt_skips_absent_parts() {
        let p = StructuredPrompt::new()
            .aim(" classify the review ")
            .constraint("one word")
            .constraint("   ")
            .constraint("lowercase")
            .output_format("a label");
        assert_eq!(
            p.compile(),
            "Aim: classify the review\n\nConstraints:\n- one word\n- lowercase\n\nOutput format: a label"
        );
        assert_eq!(
            StructuredPrompt::new().role("an editor.").compile(),
            "You are an editor."
        );
        assert_eq!(StructuredPrompt::new().tone("warm").compile(), "Tone: warm");
    }

    #[test]
    fn system_prompt_serde_shapes() {
        let cases = [
            (SystemPrompt::None, json!(null)),
            (SystemPrompt::from("hi"), json!("hi")),
            (
                SystemPrompt::from(StructuredPrompt::new().role("r").constraint("c")),
                json!({"role": "r", "constraints": ["c"]}),
            ),
        ];
        for (prompt, wire) in cases {
            assert_eq!(serde_json::to_value(&prompt).expect("serialize"), wire);
            assert_eq!(
                serde_json::from_value::<SystemPrompt>(wire).expect("parse"),
                prompt
            );
        }
        let typo = serde_json::from_value::<SystemPrompt>(json!({"rol": "r"}));
        assert!(
            typo.expect_err("unknown key")
                .to_string()
                .contains("unknown field `rol`")
        );
        let number = serde_json::from_value::<SystemPrompt>(json!(3));
        assert!(
            number
                .expect_err("a number")
                .to_string()
                .contains("not a number")
        );
    }

    // --- items to requests ---

    #[test]
    fn chat_body_has_only_what_is_set() {
        let req = chat(&SystemPrompt::None)
            .request("items", 1, &Item::new("a", "hi"))
            .expect("valid");
        assert_eq!(req.custom_id, "a");
        assert_eq!(req.url, Endpoint::ChatCompletions);
        assert_eq!(
            req.body,
            body(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        );
    }

    #[test]
    fn chat_body_with_system_settings_and_extra() {
        let item = Item::new("a", "hi")
            .temperature(0.5)
            .max_tokens(7)
            .extra("seed", 3)
            .extra("response_format", json!({"type": "json_object"}));
        let req = chat(&SystemPrompt::from("sys"))
            .request("items", 1, &item)
            .expect("valid");
        assert_eq!(
            req.body,
            body(json!({
                "model": "m",
                "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
                "temperature": 0.5,
                "max_tokens": 7,
                "seed": 3,
                "response_format": {"type": "json_object"},
            }))
        );
    }

    #[test]
    fn responses_body_uses_instructions_and_max_output_tokens() {
        let t = RequestTemplate::new(Endpoint::Responses, "m", &SystemPrompt::from("sys"));
        let req = t
            .request("items", 1, &Item::new("a", "hi").max_tokens(9))
            .expect("valid");
        assert_eq!(
            req.body,
            body(
                json!({"model": "m", "instructions": "sys", "input": "hi", "max_output_tokens": 9})
            )
        );
        let bare = RequestTemplate::new(Endpoint::Responses, "m", &SystemPrompt::None);
        let req = bare
            .request("items", 1, &Item::new("a", "hi"))
            .expect("valid");
        assert_eq!(req.body, body(json!({"model": "m", "input": "hi"})));
    }

    #[test]
    fn responses_without_system_prompt_lets_items_bring_instructions() {
        let bare = RequestTemplate::new(Endpoint::Responses, "m", &SystemPrompt::None);
        let item = Item::new("a", "hi").extra("instructions", "own");
        let req = bare.request("items", 1, &item).expect("valid");
        assert_eq!(req.body["instructions"], json!("own"));
        let with = RequestTemplate::new(Endpoint::Responses, "m", &SystemPrompt::from("sys"));
        assert_eq!(
            with.request("items", 4, &item),
            Err(err(
                "items",
                4,
                "extra.instructions",
                Problem::Overrides("instructions".into())
            ))
        );
    }

    #[test]
    fn completions_embeddings_moderations_bodies() {
        let none = SystemPrompt::None;
        let t = RequestTemplate::new(Endpoint::Completions, "m", &none);
        let req = t
            .request(
                "items",
                1,
                &Item::new("a", "hi").temperature(0.0).max_tokens(5),
            )
            .expect("valid");
        assert_eq!(
            req.body,
            body(json!({"model": "m", "prompt": "hi", "temperature": 0.0, "max_tokens": 5}))
        );
        for endpoint in [Endpoint::Embeddings, Endpoint::Moderations] {
            let t = RequestTemplate::new(endpoint.clone(), "m", &none);
            let item = Item::new("a", "hi").extra("dimensions", 8);
            let req = t.request("items", 1, &item).expect("valid");
            assert_eq!(req.url, endpoint);
            assert_eq!(
                req.body,
                body(json!({"model": "m", "input": "hi", "dimensions": 8}))
            );
        }
    }

    #[test]
    fn other_endpoints_need_raw_requests() {
        for endpoint in [
            Endpoint::ImagesGenerations,
            Endpoint::ImagesEdits,
            Endpoint::Videos,
            Endpoint::parse("/v1/audio/speech"),
        ] {
            let t = RequestTemplate::new(endpoint.clone(), "m", &SystemPrompt::None);
            assert_eq!(
                t.request("items", 2, &Item::new("a", "hi")),
                Err(err(
                    "items",
                    2,
                    "url",
                    Problem::NeedsRawRequest {
                        endpoint: endpoint.as_str().into()
                    }
                ))
            );
        }
    }

    #[test]
    fn extra_fields_may_not_override_the_job() {
        let cases = [
            (Endpoint::ChatCompletions, "model"),
            (Endpoint::ChatCompletions, "messages"),
            (Endpoint::Responses, "input"),
            (Endpoint::Completions, "prompt"),
            (Endpoint::Embeddings, "input"),
            (Endpoint::Moderations, "model"),
        ];
        for (endpoint, key) in cases {
            let t = RequestTemplate::new(endpoint, "m", &SystemPrompt::None);
            let item = Item::new("a", "hi").extra(key, "x");
            assert_eq!(
                t.request("items", 3, &item),
                Err(err(
                    "items",
                    3,
                    &format!("extra.{key}"),
                    Problem::Overrides(key.into())
                ))
            );
        }
    }

    #[test]
    fn extra_fields_may_not_repeat_item_settings() {
        let t = chat(&SystemPrompt::None);
        let item = Item::new("a", "hi")
            .temperature(1.0)
            .extra("temperature", 0.1);
        assert_eq!(
            t.request("items", 5, &item),
            Err(err(
                "items",
                5,
                "extra.temperature",
                Problem::Conflicts("temperature".into())
            ))
        );
        let t = RequestTemplate::new(Endpoint::Responses, "m", &SystemPrompt::None);
        let item = Item::new("a", "hi")
            .max_tokens(3)
            .extra("max_output_tokens", 4);
        assert_eq!(
            t.request("items", 6, &item),
            Err(err(
                "items",
                6,
                "extra.max_output_tokens",
                Problem::Conflicts("max_tokens".into())
            ))
        );
        // Without the item setting, the extra field is simply merged.
        let item = Item::new("a", "hi").extra("max_output_tokens", 4);
        let req = t.request("items", 6, &item).expect("valid");
        assert_eq!(req.body["max_output_tokens"], json!(4));
    }

    #[test]
    fn endpoints_without_sampling_reject_item_settings() {
        let t = RequestTemplate::new(Endpoint::Embeddings, "m", &SystemPrompt::None);
        let not_accepted = Problem::NotAccepted {
            endpoint: "/v1/embeddings".into(),
        };
        assert_eq!(
            t.request("items", 1, &Item::new("a", "hi").temperature(0.1)),
            Err(err("items", 1, "temperature", not_accepted.clone()))
        );
        assert_eq!(
            t.request("items", 2, &Item::new("a", "hi").max_tokens(1)),
            Err(err("items", 2, "max_tokens", not_accepted))
        );
    }

    #[test]
    fn system_prompt_needs_a_place() {
        for endpoint in [
            Endpoint::Completions,
            Endpoint::Embeddings,
            Endpoint::Moderations,
        ] {
            let t = RequestTemplate::new(endpoint.clone(), "m", &SystemPrompt::from("sys"));
            assert_eq!(
                t.request("items", 1, &Item::new("a", "hi")),
                Err(err(
                    "items",
                    1,
                    "system",
                    Problem::NotAccepted {
                        endpoint: endpoint.as_str().into()
                    }
                ))
            );
        }
    }

    #[test]
    fn temperature_must_be_finite() {
        for t in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                chat(&SystemPrompt::None).request("items", 8, &Item::new("a", "hi").temperature(t)),
                Err(err(
                    "items",
                    8,
                    "temperature",
                    Problem::Invalid("must be a finite number".into())
                ))
            );
        }
    }

    #[test]
    fn requests_numbers_items_from_one() {
        let items = [Item::new("a", "x"), Item::new("b", "y").extra("model", "z")];
        let t = chat(&SystemPrompt::None);
        let out: Vec<_> = t.requests("items", &items).collect();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 1);
        assert!(out[0].1.is_ok());
        assert_eq!(out[1].0, 2);
        assert_eq!(
            out[1].1,
            Err(err(
                "items",
                2,
                "extra.model",
                Problem::Overrides("model".into())
            ))
        );
    }

    #[test]
    fn item_serde_shape() {
        let item = Item::new("a", "hi").max_tokens(3);
        let wire = serde_json::to_value(&item).expect("serialize");
        assert_eq!(
            wire,
            json!({"custom_id": "a", "message": "hi", "max_tokens": 3})
        );
        assert_eq!(serde_json::from_value::<Item>(wire).expect("parse"), item);
        let typo =
            serde_json::from_value::<Item>(json!({"custom_id": "a", "message": "m", "temp": 1}));
        assert!(typo.is_err());
    }

    // --- raw lines ---

    fn parse(line: &str) -> Result<BatchRequest, InputError> {
        BatchRequest::parse_line("in.jsonl", 4, line.as_bytes())
    }

    fn line_err(field: &str, problem: Problem) -> Result<BatchRequest, InputError> {
        Err(err("in.jsonl", 4, field, problem))
    }

    #[test]
    fn parses_a_request_line() {
        let req = parse(
            r#"{"custom_id":"r1","method":"POST","url":"/v1/embeddings","body":{"model":"e","input":"x"}}"#,
        )
        .expect("valid");
        assert_eq!(
            req,
            BatchRequest::new(
                "r1",
                Endpoint::Embeddings,
                body(json!({"model": "e", "input": "x"}))
            )
        );
        assert_eq!(req.method(), "POST");
        assert_eq!(req.model(), Some("e"));
    }

    #[test]
    fn method_may_be_left_out_and_line_endings_bom_are_tolerated() {
        let want = BatchRequest::new("r", Endpoint::parse("/v1/x"), Map::new());
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"/v1/x","body":{}}"#),
            Ok(want.clone())
        );
        assert_eq!(
            parse("{\"custom_id\":\"r\",\"url\":\"/v1/x\",\"body\":{}}\r\n"),
            Ok(want.clone())
        );
        assert_eq!(
            parse("\u{feff}{\"custom_id\":\"r\",\"url\":\"/v1/x\",\"body\":{}}"),
            Ok(want)
        );
    }

    #[test]
    fn invalid_json_reports_the_column() {
        assert_eq!(
            parse(r#"{"custom_id": "r", oops}"#),
            line_err(
                "",
                Problem::InvalidJson("key must be a string at column 20".into())
            )
        );
        assert_eq!(
            parse(r#"{"custom_id":"r""#),
            line_err(
                "",
                Problem::InvalidJson("EOF while parsing an object at column 16".into())
            )
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"/v1/x","body":{}} x"#),
            line_err(
                "",
                Problem::InvalidJson("trailing characters at column 43".into())
            )
        );
        assert_eq!(
            parse("   "),
            line_err("", Problem::InvalidJson("the line is blank".into()))
        );
        assert_eq!(
            parse(r#"["custom_id"]"#),
            line_err(
                "",
                Problem::InvalidJson("the line is an array, not a JSON object".into())
            )
        );
        assert_eq!(
            parse("\"text\""),
            line_err(
                "",
                Problem::InvalidJson("the line is a string, not a JSON object".into())
            )
        );
        let bad_utf8 = BatchRequest::parse_line("in.jsonl", 4, b"{\"custom_id\":\"\xff\"}");
        let e = bad_utf8.expect_err("invalid UTF-8");
        assert_eq!((e.line, e.field.as_str()), (4, ""));
        assert!(matches!(e.problem, Problem::InvalidJson(ref m) if m.contains("column")));
    }

    #[test]
    fn custom_id_errors() {
        assert_eq!(
            parse(r#"{"url":"/v1/x","body":{}}"#),
            line_err("custom_id", Problem::Missing)
        );
        assert_eq!(
            parse(r#"{"custom_id":"","url":"/v1/x","body":{}}"#),
            line_err("custom_id", Problem::Empty)
        );
        assert_eq!(
            parse(r#"{"custom_id":7,"url":"/v1/x","body":{}}"#),
            line_err(
                "custom_id",
                Problem::Invalid("must be a string, not a number".into())
            )
        );
    }

    #[test]
    fn method_errors() {
        assert_eq!(
            parse(r#"{"custom_id":"r","method":"GET","url":"/v1/x","body":{}}"#),
            line_err(
                "method",
                Problem::Invalid("must be \"POST\", not \"GET\"".into())
            )
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","method":"post","url":"/v1/x","body":{}}"#),
            line_err(
                "method",
                Problem::Invalid("must be \"POST\", not \"post\"".into())
            )
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","method":null,"url":"/v1/x","body":{}}"#),
            line_err(
                "method",
                Problem::Invalid("must be the string \"POST\", not null".into())
            )
        );
    }

    #[test]
    fn url_errors() {
        assert_eq!(
            parse(r#"{"custom_id":"r","body":{}}"#),
            line_err("url", Problem::Missing)
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"","body":{}}"#),
            line_err("url", Problem::Empty)
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","url":["/v1/x"],"body":{}}"#),
            line_err(
                "url",
                Problem::Invalid("must be a string, not an array".into())
            )
        );
    }

    #[test]
    fn urls_with_dot_segments_are_refused() {
        for url in [
            "/v1/../admin",
            "/v1/./chat/completions",
            "/v1/%2E%2e/admin",
            "/v1/chat/completions/..",
            "/v1/..\\\\admin",
            "..",
        ] {
            let line = format!(r#"{{"custom_id":"r","url":{url:?},"body":{{}}}}"#);
            let err = parse(&line).expect_err(url);
            assert_eq!(err.field, "url", "{url}");
            assert!(
                matches!(&err.problem, Problem::Invalid(m) if m.contains("path segment")),
                "{url}: {err}"
            );
        }
        for url in [
            "/v1/chat/completions",
            "/v1/x..y",
            "/v1/.well",
            "/v1/x?a=../b",
        ] {
            let line = format!(r#"{{"custom_id":"r","url":{url:?},"body":{{}}}}"#);
            assert!(parse(&line).is_ok(), "{url}");
        }
    }

    #[test]
    fn body_errors() {
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"/v1/x"}"#),
            line_err("body", Problem::Missing)
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"/v1/x","body":"{}"}"#),
            line_err(
                "body",
                Problem::Invalid("must be a JSON object, not a string".into())
            )
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","url":"/v1/x","body":null}"#),
            line_err(
                "body",
                Problem::Invalid("must be a JSON object, not null".into())
            )
        );
    }

    #[test]
    fn unknown_and_repeated_keys() {
        assert_eq!(
            parse(r#"{"custom_id":"r","metod":"POST","url":"/v1/x","body":{}}"#),
            line_err("metod", Problem::UnknownField)
        );
        assert_eq!(
            parse(r#"{"custom_id":"r","custom_id":"s","url":"/v1/x","body":{}}"#),
            line_err(
                "custom_id",
                Problem::Invalid("appears twice in the line".into())
            )
        );
    }

    #[test]
    fn serde_uses_the_wire_shape_and_the_same_checks() {
        let req = BatchRequest::new(
            "r",
            Endpoint::Responses,
            body(json!({"z": 1, "a": {"y": 2, "b": 3}})),
        );
        let text = serde_json::to_string(&req).expect("serialize");
        assert_eq!(
            text,
            r#"{"custom_id":"r","method":"POST","url":"/v1/responses","body":{"a":{"b":3,"y":2},"z":1}}"#
        );
        assert_eq!(
            serde_json::from_str::<BatchRequest>(&text).expect("parse"),
            req
        );
        let bad =
            serde_json::from_str::<BatchRequest>(r#"{"custom_id":"","url":"/v1/x","body":{}}"#);
        assert!(
            bad.expect_err("empty id")
                .to_string()
                .starts_with("field `custom_id`: is empty")
        );
    }
}
