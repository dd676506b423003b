//! Typed builders for the requests batch users send most: chat completions
//! ([`ChatRequest`]), the Responses API ([`ResponsesRequest`]) and
//! embeddings ([`EmbeddingsRequest`]). Each builds a [`BatchRequest`] for its
//! endpoint, ready for `submit_requests` (with
//! [`BatchOptions::endpoint`](crate::job::BatchOptions::endpoint) set to the
//! same endpoint).
//!
//! The field names are those of OpenAI's API reference:
//! [chat completions](https://platform.openai.com/docs/api-reference/chat/create),
//! [responses](https://platform.openai.com/docs/api-reference/responses/create),
//! [embeddings](https://platform.openai.com/docs/api-reference/embeddings/create).
//! Only what a builder sets is sent. Anything else goes in with `extra`,
//! merged into the body as it is; an `extra` key the builder already sets is
//! refused rather than silently replacing it.
//!
//! A builder is `Clone`: set what every request shares once, then clone it
//! per request and set the `custom_id` and the message.
//!
//! ```
//! use batch_core::input::{ChatRequest, JsonSchema, ResponseFormat};
//! use serde_json::json;
//!
//! let schema = json!({
//!     "type": "object",
//!     "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
//!     "required": ["label", "score"],
//!     "additionalProperties": false
//! });
//! let base = ChatRequest::new("", "gpt-4o-mini")
//!     .system("Label the message as spam or ham.")
//!     .temperature(0.0)
//!     .response_format(ResponseFormat::json_schema(JsonSchema::new("verdict", schema).strict(true)));
//! let requests = ["Win a prize!", "Lunch at noon?"]
//!     .iter()
//!     .enumerate()
//!     .map(|(i, text)| base.clone().custom_id(format!("msg-{i}")).user(*text).build())
//!     .collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(requests[1].body["messages"][1], json!({"role": "user", "content": "Lunch at noon?"}));
//! assert_eq!(requests[1].body["response_format"]["json_schema"]["name"], json!("verdict"));
//! # Ok::<(), batch_core::InputError>(())
//! ```

use serde_json::{Map, Value};

use crate::api::Endpoint;
use crate::error::{InputError, Problem};
use crate::input::{BatchRequest, SystemPrompt};

// ---------------------------------------------------------------------------
// Shared parts

/// The author of a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// `system`: instructions to the model.
    System,
    /// `developer`: instructions to the model; reasoning models take these
    /// in place of `system`.
    Developer,
    /// `user`: the end user's input.
    User,
    /// `assistant`: an earlier reply of the model.
    Assistant,
    /// `tool`: the result of a tool call (chat completions only).
    Tool,
}

impl Role {
    /// The wire string, e.g. `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation: a role and its content.
///
/// The content is usually text; [`Message::new`] also takes an array of
/// content parts (text and images) as JSON, sent as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    role: Role,
    content: Value,
    name: Option<String>,
    tool_call_id: Option<String>,
}

impl Message {
    /// A message of `role` with `content`: a string, or an array of content
    /// parts as the API defines them.
    pub fn new(role: Role, content: impl Into<Value>) -> Self {
        Message {
            role,
            content: content.into(),
            name: None,
            tool_call_id: None,
        }
    }

    /// A `system` message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::new(Role::System, text.into())
    }

    /// A `developer` message.
    pub fn developer(text: impl Into<String>) -> Self {
        Message::new(Role::Developer, text.into())
    }

    /// A `user` message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::new(Role::User, text.into())
    }

    /// An `assistant` message (an earlier reply, for few-shot examples).
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::new(Role::Assistant, text.into())
    }

    /// A `tool` message: the result of the tool call `tool_call_id`
    /// (chat completions only).
    pub fn tool(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            tool_call_id: Some(tool_call_id.into()),
            ..Message::new(Role::Tool, text.into())
        }
    }

    /// Sets the participant's `name` (chat completions only).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The message's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// `{"role", "content", "name"?, "tool_call_id"?}`.
    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), self.role.as_str().into());
        m.insert("content".into(), self.content.clone());
        if let Some(name) = &self.name {
            m.insert("name".into(), name.as_str().into());
        }
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), id.as_str().into());
        }
        Value::Object(m)
    }
}

/// A JSON Schema the reply must follow (Structured Outputs): a name, the
/// schema itself as the user wrote it, and whether adherence is strict.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchema {
    name: String,
    schema: Value,
    description: Option<String>,
    strict: Option<bool>,
}

impl JsonSchema {
    /// A schema named `name` (a-z, A-Z, 0-9, `_` and `-`, at most 64
    /// characters). `schema` is sent as it is.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        JsonSchema {
            name: name.into(),
            schema,
            description: None,
            strict: None,
        }
    }

    /// What the format is for, to guide the model.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Whether the model must follow the schema exactly (`strict`; the API's
    /// default is `false`). Strict schemas accept a subset of JSON Schema:
    /// every property required and `additionalProperties: false`.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// `name`, `schema`, `description`?, `strict`? into `m`.
    fn fill(&self, m: &mut Map<String, Value>) {
        m.insert("name".into(), self.name.as_str().into());
        m.insert("schema".into(), self.schema.clone());
        if let Some(d) = &self.description {
            m.insert("description".into(), d.as_str().into());
        }
        if let Some(s) = self.strict {
            m.insert("strict".into(), s.into());
        }
    }
}

/// The format of the reply: chat's `response_format`, or the Responses
/// API's `text.format`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Plain text (`{"type":"text"}`, the default).
    Text,
    /// Any valid JSON object (`{"type":"json_object"}`, JSON mode). The
    /// prompt must ask for JSON.
    JsonObject,
    /// JSON following a schema (`{"type":"json_schema", ...}`, Structured
    /// Outputs). Read the reply with `JobResult::parse`.
    JsonSchema(JsonSchema),
}

impl ResponseFormat {
    /// [`ResponseFormat::JsonSchema`] with `schema`.
    pub fn json_schema(schema: JsonSchema) -> Self {
        ResponseFormat::JsonSchema(schema)
    }

    fn type_only(&self) -> Map<String, Value> {
        let kind = match self {
            ResponseFormat::Text => "text",
            ResponseFormat::JsonObject => "json_object",
            ResponseFormat::JsonSchema(_) => "json_schema",
        };
        let mut m = Map::new();
        m.insert("type".into(), kind.into());
        m
    }

    /// Chat completions: `{"type":"json_schema","json_schema":{"name",..}}`.
    fn chat_value(&self) -> Value {
        let mut m = self.type_only();
        if let ResponseFormat::JsonSchema(s) = self {
            let mut inner = Map::new();
            s.fill(&mut inner);
            m.insert("json_schema".into(), Value::Object(inner));
        }
        Value::Object(m)
    }

    /// Responses API `text.format`: `{"type":"json_schema","name",..}`.
    fn responses_value(&self) -> Value {
        let mut m = self.type_only();
        if let ResponseFormat::JsonSchema(s) = self {
            s.fill(&mut m);
        }
        Value::Object(m)
    }
}

/// A function the model may call: its name, what it does, and its
/// parameters as a JSON Schema.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionTool {
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
}

impl FunctionTool {
    /// A function named `name` (a-z, A-Z, 0-9, `_` and `-`, at most 64
    /// characters).
    pub fn new(name: impl Into<String>) -> Self {
        FunctionTool {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
        }
    }

    /// What the function does, so the model knows when to call it.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Its parameters, as a JSON Schema object (sent as it is).
    #[must_use]
    pub fn parameters(mut self, schema: Value) -> Self {
        self.parameters = Some(schema);
        self
    }

    /// Whether the arguments must follow the schema exactly. Unset, chat
    /// completions leave it out (the API's default is `false`), and the
    /// Responses API, where the field is required, gets `true` (its default).
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }

    /// Chat completions: `{"type":"function","function":{"name",..}}`.
    fn chat_value(&self) -> Value {
        let mut f = Map::new();
        f.insert("name".into(), self.name.as_str().into());
        if let Some(d) = &self.description {
            f.insert("description".into(), d.as_str().into());
        }
        if let Some(p) = &self.parameters {
            f.insert("parameters".into(), p.clone());
        }
        if let Some(s) = self.strict {
            f.insert("strict".into(), s.into());
        }
        let mut m = Map::new();
        m.insert("type".into(), "function".into());
        m.insert("function".into(), Value::Object(f));
        Value::Object(m)
    }

    /// Responses API: `{"type":"function","name","parameters","strict",..}`
    /// (`parameters` and `strict` are required there: `null` and `true`
    /// when unset).
    fn responses_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), "function".into());
        m.insert("name".into(), self.name.as_str().into());
        if let Some(d) = &self.description {
            m.insert("description".into(), d.as_str().into());
        }
        m.insert(
            "parameters".into(),
            self.parameters.clone().unwrap_or(Value::Null),
        );
        m.insert("strict".into(), self.strict.unwrap_or(true).into());
        Value::Object(m)
    }
}

/// Which tool the model calls (`tool_choice`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// `none`: it calls no tool and writes a message.
    None,
    /// `auto`: it chooses (the default when tools are given).
    Auto,
    /// `required`: it calls one or more tools.
    Required,
    /// It calls this function.
    Function(String),
}

impl ToolChoice {
    fn mode(&self) -> Option<&'static str> {
        match self {
            ToolChoice::None => Some("none"),
            ToolChoice::Auto => Some("auto"),
            ToolChoice::Required => Some("required"),
            ToolChoice::Function(_) => None,
        }
    }

    /// Chat completions: a mode string, or `{"type":"function","function":{"name"}}`.
    fn chat_value(&self) -> Value {
        match (self.mode(), self) {
            (Some(mode), _) => mode.into(),
            (None, ToolChoice::Function(name)) => {
                let mut f = Map::new();
                f.insert("name".into(), name.as_str().into());
                let mut m = Map::new();
                m.insert("type".into(), "function".into());
                m.insert("function".into(), Value::Object(f));
                Value::Object(m)
            }
            (None, _) => Value::Null,
        }
    }

    /// Responses API: a mode string, or `{"type":"function","name"}`.
    fn responses_value(&self) -> Value {
        match (self.mode(), self) {
            (Some(mode), _) => mode.into(),
            (None, ToolChoice::Function(name)) => {
                let mut m = Map::new();
                m.insert("type".into(), "function".into());
                m.insert("name".into(), name.as_str().into());
                Value::Object(m)
            }
            (None, _) => Value::Null,
        }
    }
}

/// Checks shared by the builders, and the body's assembly.
struct Body<'a> {
    kind: &'static str,
    custom_id: &'a str,
    map: Map<String, Value>,
}

impl<'a> Body<'a> {
    fn new(kind: &'static str, custom_id: &'a str, model: &str) -> Self {
        let mut map = Map::new();
        map.insert("model".into(), model.into());
        Body {
            kind,
            custom_id,
            map,
        }
    }

    fn error(&self, field: &str, problem: Problem) -> InputError {
        InputError::new(
            format!("{} {:?}", self.kind, self.custom_id),
            0,
            field,
            problem,
        )
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.map.insert(key.into(), value.into());
    }

    fn temperature(&mut self, t: Option<f64>) -> Result<(), InputError> {
        if let Some(t) = t {
            if !t.is_finite() {
                return Err(self.error(
                    "temperature",
                    Problem::Invalid("must be a finite number".into()),
                ));
            }
            self.set("temperature", t);
        }
        Ok(())
    }

    /// Merges `extra`, refusing a key the builder set.
    fn finish(
        mut self,
        endpoint: Endpoint,
        extra: &Map<String, Value>,
    ) -> Result<BatchRequest, InputError> {
        if let Some(key) = extra.keys().find(|k| self.map.contains_key(*k)) {
            return Err(self.error(
                &format!("extra.{key}"),
                Problem::Invalid(format!(
                    "`{key}` is set by the builder; set it there, not in extra"
                )),
            ));
        }
        self.map
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(BatchRequest::new(self.custom_id, endpoint, self.map))
    }
}

// ---------------------------------------------------------------------------
// Chat completions

/// A `/v1/chat/completions` request.
///
/// The body has `model` and `messages` (the system prompt first, if set),
/// then only what is set: `temperature`, `max_tokens`,
/// `max_completion_tokens`, `response_format`, `tools`, `tool_choice`, and
/// the `extra` fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    custom_id: String,
    model: String,
    system: Option<String>,
    messages: Vec<Message>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    response_format: Option<ResponseFormat>,
    tools: Vec<FunctionTool>,
    tool_choice: Option<ToolChoice>,
    extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request `custom_id` for `model`, with no messages yet.
    pub fn new(custom_id: impl Into<String>, model: impl Into<String>) -> Self {
        ChatRequest {
            custom_id: custom_id.into(),
            model: model.into(),
            system: None,
            messages: Vec::new(),
            temperature: None,
            max_tokens: None,
            max_completion_tokens: None,
            response_format: None,
            tools: Vec::new(),
            tool_choice: None,
            extra: Map::new(),
        }
    }

    /// Sets the `custom_id` (unique within the batch; results carry it).
    #[must_use]
    pub fn custom_id(mut self, custom_id: impl Into<String>) -> Self {
        self.custom_id = custom_id.into();
        self
    }

    /// The system prompt, sent as a leading `system` message: text, or a
    /// [`StructuredPrompt`](crate::input::StructuredPrompt) compiled to text.
    /// [`SystemPrompt::None`] removes it.
    #[must_use]
    pub fn system(mut self, prompt: impl Into<SystemPrompt>) -> Self {
        self.system = prompt.into().compile();
        self
    }

    /// Appends a `user` message.
    #[must_use]
    pub fn user(self, text: impl Into<String>) -> Self {
        self.message(Message::user(text))
    }

    /// Appends a message.
    #[must_use]
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Appends messages.
    #[must_use]
    pub fn messages(mut self, messages: impl IntoIterator<Item = Message>) -> Self {
        self.messages.extend(messages);
        self
    }

    /// Sampling temperature, 0 to 2 (reasoning models refuse it).
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// `max_tokens`: the most tokens to generate (older models; reasoning
    /// models refuse it and take `max_completion_tokens`).
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// `max_completion_tokens`: the most tokens to generate, reasoning
    /// tokens included.
    #[must_use]
    pub fn max_completion_tokens(mut self, max: u32) -> Self {
        self.max_completion_tokens = Some(max);
        self
    }

    /// `response_format`: text, JSON mode, or a JSON Schema.
    #[must_use]
    pub fn response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Adds a function the model may call (`tools`).
    #[must_use]
    pub fn tool(mut self, tool: FunctionTool) -> Self {
        self.tools.push(tool);
        self
    }

    /// `tool_choice`: whether and which tool the model calls.
    #[must_use]
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Any other body field (`seed`, `top_p`, `reasoning_effort`, ...),
    /// sent as it is. A conversation with parts [`Message`] cannot express
    /// (an assistant turn with `tool_calls`) can be given whole as
    /// `extra("messages", ..)` when no message or system prompt is set.
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The request line.
    ///
    /// # Errors
    /// An [`InputError`] for `chat "<custom_id>"` naming the field: no
    /// message and no system prompt, and no `extra("messages", ..)` either
    /// (`messages`, [`Problem::Missing`]); a
    /// temperature that is NaN or infinite (`temperature`); an `extra` key
    /// the builder sets itself (`extra.<key>`).
    pub fn build(&self) -> Result<BatchRequest, InputError> {
        let mut body = Body::new("chat", &self.custom_id, &self.model);
        let system = self.system.as_deref().map(Message::system);
        let messages: Vec<Value> = system
            .iter()
            .chain(&self.messages)
            .map(Message::to_value)
            .collect();
        match (messages.is_empty(), self.extra.contains_key("messages")) {
            (true, false) => return Err(body.error("messages", Problem::Missing)),
            // The caller writes the whole conversation as JSON.
            (true, true) => {}
            (false, _) => body.set("messages", messages),
        }
        body.temperature(self.temperature)?;
        if let Some(n) = self.max_tokens {
            body.set("max_tokens", n);
        }
        if let Some(n) = self.max_completion_tokens {
            body.set("max_completion_tokens", n);
        }
        if let Some(f) = &self.response_format {
            body.set("response_format", f.chat_value());
        }
        if !self.tools.is_empty() {
            let tools: Vec<Value> = self.tools.iter().map(FunctionTool::chat_value).collect();
            body.set("tools", tools);
        }
        if let Some(c) = &self.tool_choice {
            body.set("tool_choice", c.chat_value());
        }
        body.finish(Endpoint::ChatCompletions, &self.extra)
    }
}

// ---------------------------------------------------------------------------
// Responses

/// A `/v1/responses` request.
///
/// The body has `model` and `input` (a string, or an array of messages),
/// then only what is set: `instructions` (the system prompt),
/// `temperature`, `max_output_tokens`, `text.format`, `tools`,
/// `tool_choice`, and the `extra` fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponsesRequest {
    custom_id: String,
    model: String,
    instructions: Option<String>,
    input: Option<String>,
    messages: Vec<Message>,
    temperature: Option<f64>,
    max_output_tokens: Option<u32>,
    format: Option<ResponseFormat>,
    tools: Vec<FunctionTool>,
    tool_choice: Option<ToolChoice>,
    extra: Map<String, Value>,
}

impl ResponsesRequest {
    /// A request `custom_id` for `model`, with no input yet.
    pub fn new(custom_id: impl Into<String>, model: impl Into<String>) -> Self {
        ResponsesRequest {
            custom_id: custom_id.into(),
            model: model.into(),
            instructions: None,
            input: None,
            messages: Vec::new(),
            temperature: None,
            max_output_tokens: None,
            format: None,
            tools: Vec::new(),
            tool_choice: None,
            extra: Map::new(),
        }
    }

    /// Sets the `custom_id` (unique within the batch; results carry it).
    #[must_use]
    pub fn custom_id(mut self, custom_id: impl Into<String>) -> Self {
        self.custom_id = custom_id.into();
        self
    }

    /// `instructions`: the system prompt, text or a compiled
    /// [`StructuredPrompt`](crate::input::StructuredPrompt).
    #[must_use]
    pub fn instructions(mut self, prompt: impl Into<SystemPrompt>) -> Self {
        self.instructions = prompt.into().compile();
        self
    }

    /// `input` as one string. With messages added too, it is sent as a
    /// `user` message before them.
    #[must_use]
    pub fn input(mut self, text: impl Into<String>) -> Self {
        self.input = Some(text.into());
        self
    }

    /// Appends a message to `input`, which is then an array of messages
    /// (roles `system`, `developer`, `user`, `assistant`; tool output and
    /// other input items go in with [`extra`](Self::extra) as a whole
    /// `input`).
    #[must_use]
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Sampling temperature, 0 to 2 (reasoning models refuse it).
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// `max_output_tokens`: the most tokens to generate, reasoning tokens
    /// included.
    #[must_use]
    pub fn max_output_tokens(mut self, max: u32) -> Self {
        self.max_output_tokens = Some(max);
        self
    }

    /// `text.format`: text, JSON mode, or a JSON Schema.
    #[must_use]
    pub fn text_format(mut self, format: ResponseFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Adds a function the model may call (`tools`).
    #[must_use]
    pub fn tool(mut self, tool: FunctionTool) -> Self {
        self.tools.push(tool);
        self
    }

    /// `tool_choice`: whether and which tool the model calls.
    #[must_use]
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Any other body field (`reasoning`, `store`, `top_p`, built-in tools
    /// in place of `tools`, ...), sent as it is.
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The request line.
    ///
    /// # Errors
    /// An [`InputError`] for `responses "<custom_id>"` naming the field: no
    /// input, and no `extra("input", ..)` either (`input`,
    /// [`Problem::Missing`]); a `tool` message or a message
    /// with a `name`, which only chat takes (`input[n]`,
    /// [`Problem::NotAccepted`]); a temperature that is NaN or
    /// infinite (`temperature`); an `extra` key the builder sets itself
    /// (`extra.<key>`).
    pub fn build(&self) -> Result<BatchRequest, InputError> {
        let mut body = Body::new("responses", &self.custom_id, &self.model);
        if let Some(i) = &self.instructions {
            body.set("instructions", i.as_str());
        }
        match (&self.input, self.messages.is_empty()) {
            (None, true) if !self.extra.contains_key("input") => {
                return Err(body.error("input", Problem::Missing));
            }
            // The caller writes the input items as JSON.
            (None, true) => {}
            (Some(text), true) => body.set("input", text.as_str()),
            (text, false) => {
                let odd = self
                    .messages
                    .iter()
                    .position(|m| m.role == Role::Tool || m.name.is_some());
                if let Some(n) = odd {
                    // `tool` messages and participant names are chat's; the
                    // Responses API has other input items for tool output.
                    let n = n + usize::from(text.is_some());
                    return Err(body.error(
                        &format!("input[{n}]"),
                        Problem::NotAccepted {
                            endpoint: Endpoint::Responses.as_str().into(),
                        },
                    ));
                }
                let first = text.as_deref().map(Message::user);
                let items: Vec<Value> = first
                    .iter()
                    .chain(&self.messages)
                    .map(Message::to_value)
                    .collect();
                body.set("input", items);
            }
        }
        body.temperature(self.temperature)?;
        if let Some(n) = self.max_output_tokens {
            body.set("max_output_tokens", n);
        }
        if let Some(f) = &self.format {
            let mut text = Map::new();
            text.insert("format".into(), f.responses_value());
            body.set("text", text);
        }
        if !self.tools.is_empty() {
            let tools: Vec<Value> = self
                .tools
                .iter()
                .map(FunctionTool::responses_value)
                .collect();
            body.set("tools", tools);
        }
        if let Some(c) = &self.tool_choice {
            body.set("tool_choice", c.responses_value());
        }
        body.finish(Endpoint::Responses, &self.extra)
    }
}

// ---------------------------------------------------------------------------
// Embeddings

/// What to embed: one text, several, or token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts: one embedding each, in order.
    Texts(Vec<String>),
    /// One input as token ids.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenArrays(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// How many embeddings it asks for.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::TokenArrays(t) => t.len(),
        }
    }

    /// Whether it holds nothing to embed (an empty text, array, or token
    /// array), which the API refuses.
    pub fn is_empty(&self) -> bool {
        match self {
            EmbeddingInput::Text(t) => t.is_empty(),
            EmbeddingInput::Tokens(t) => t.is_empty(),
            EmbeddingInput::Texts(t) => t.is_empty() || t.iter().any(String::is_empty),
            EmbeddingInput::TokenArrays(t) => t.is_empty() || t.iter().any(Vec::is_empty),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            EmbeddingInput::Text(t) => t.as_str().into(),
            EmbeddingInput::Texts(t) => t.clone().into(),
            EmbeddingInput::Tokens(t) => t.clone().into(),
            EmbeddingInput::TokenArrays(t) => t.clone().into(),
        }
    }
}

impl From<&str> for EmbeddingInput {
    fn from(s: &str) -> Self {
        EmbeddingInput::Text(s.to_owned())
    }
}

impl From<String> for EmbeddingInput {
    fn from(s: String) -> Self {
        EmbeddingInput::Text(s)
    }
}

impl From<Vec<String>> for EmbeddingInput {
    fn from(v: Vec<String>) -> Self {
        EmbeddingInput::Texts(v)
    }
}

impl From<Vec<&str>> for EmbeddingInput {
    fn from(v: Vec<&str>) -> Self {
        EmbeddingInput::Texts(v.into_iter().map(str::to_owned).collect())
    }
}

impl From<&[&str]> for EmbeddingInput {
    fn from(v: &[&str]) -> Self {
        EmbeddingInput::Texts(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// How vectors come back (`encoding_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodingFormat {
    /// JSON arrays of numbers (the default).
    Float,
    /// Base64 of little-endian `f32`s: about a quarter of the size in the
    /// output file. `JobResult::embeddings` decodes both.
    Base64,
}

/// A `/v1/embeddings` request.
///
/// The body has `model` and `input`, then only what is set: `dimensions`,
/// `encoding_format`, and the `extra` fields.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsRequest {
    custom_id: String,
    model: String,
    input: EmbeddingInput,
    dimensions: Option<u32>,
    encoding_format: Option<EncodingFormat>,
    extra: Map<String, Value>,
}

impl EmbeddingsRequest {
    /// A request `custom_id` embedding `input` with `model`.
    pub fn new(
        custom_id: impl Into<String>,
        model: impl Into<String>,
        input: impl Into<EmbeddingInput>,
    ) -> Self {
        EmbeddingsRequest {
            custom_id: custom_id.into(),
            model: model.into(),
            input: input.into(),
            dimensions: None,
            encoding_format: None,
            extra: Map::new(),
        }
    }

    /// Sets the `custom_id` (unique within the batch; results carry it).
    #[must_use]
    pub fn custom_id(mut self, custom_id: impl Into<String>) -> Self {
        self.custom_id = custom_id.into();
        self
    }

    /// Replaces what to embed.
    #[must_use]
    pub fn input(mut self, input: impl Into<EmbeddingInput>) -> Self {
        self.input = input.into();
        self
    }

    /// `dimensions`: the size of each vector (`text-embedding-3` models
    /// and later).
    #[must_use]
    pub fn dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// `encoding_format`: floats or base64.
    #[must_use]
    pub fn encoding_format(mut self, format: EncodingFormat) -> Self {
        self.encoding_format = Some(format);
        self
    }

    /// Any other body field (`user`, ...), sent as it is.
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The request line.
    ///
    /// # Errors
    /// An [`InputError`] for `embeddings "<custom_id>"` naming the field:
    /// nothing to embed (`input`, [`Problem::Empty`]); `dimensions` of 0
    /// (`dimensions`); an `extra` key the builder sets itself
    /// (`extra.<key>`).
    pub fn build(&self) -> Result<BatchRequest, InputError> {
        let mut body = Body::new("embeddings", &self.custom_id, &self.model);
        if self.input.is_empty() {
            return Err(body.error("input", Problem::Empty));
        }
        body.set("input", self.input.to_value());
        if let Some(d) = self.dimensions {
            if d == 0 {
                return Err(body.error("dimensions", Problem::Invalid("must be at least 1".into())));
            }
            body.set("dimensions", d);
        }
        if let Some(f) = self.encoding_format {
            let f = match f {
                EncodingFormat::Float => "float",
                EncodingFormat::Base64 => "base64",
            };
            body.set("encoding_format", f);
        }
        body.finish(Endpoint::Embeddings, &self.extra)
    }
}
