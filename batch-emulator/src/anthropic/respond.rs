//! Deterministic answers to one request of a Message Batch: the `result`
//! of its line in the results file
//! (<https://docs.anthropic.com/en/api/retrieving-message-batch-results>).
//!
//! * `params` is checked as the Messages API checks it
//!   (<https://docs.anthropic.com/en/api/messages>): `model` (a known Claude
//!   model unless any model is accepted; an unknown one is a
//!   `not_found_error`), `max_tokens` (an integer of at least 1) and
//!   `messages` (a non-empty list of `user`/`assistant` turns). A bad one is
//!   an `errored` result with an `invalid_request_error`.
//! * `[[emulator:fail=NNN]]` anywhere in `params` gives an `errored` result
//!   with the error type Anthropic documents for that status;
//!   `[[emulator:json]]` and `[[emulator:length]]` shape the text as in the
//!   OpenAI mode.
//! * The reply is `Echo: <last user text>`; `stop_sequences` cut it
//!   (`stop_reason: "stop_sequence"`), `max_tokens` (4 characters a token)
//!   or the length directive too (`"max_tokens"`); a request with `tools`
//!   (and `tool_choice` not `none`) gets a `tool_use` block for the chosen
//!   (or first) tool, its `input` filled from the tool's `input_schema`, and
//!   `stop_reason: "tool_use"`.
//! * Usage counts `ceil(chars / 4)` tokens per text. Parts up to the last
//!   block with `cache_control` form a cached prefix: the first request of
//!   the batch with that prefix reports it as `cache_creation_input_tokens`,
//!   later ones as `cache_read_input_tokens`; `input_tokens` counts the rest.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::{envelope, kind_for_status};
use crate::respond::{content_text, directives, limit, reply_text, strip_directives, tokens};
use crate::util::{derived_b62_id, hash_parts};

/// Claude model names from Anthropic's models overview
/// (<https://docs.anthropic.com/en/docs/about-claude/models/overview>):
/// aliases and dated snapshots.
const MODELS: &[&str] = &[
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1",
    "claude-opus-4-1-20250805",
    "claude-opus-4-0",
    "claude-opus-4-20250514",
    "claude-sonnet-4-0",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest",
    "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest",
    "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-latest",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-sonnet-20240620",
    "claude-3-opus-latest",
    "claude-3-opus-20240229",
    "claude-3-haiku-20240307",
];

/// Whether the emulator knows `model`.
pub(crate) fn known_model(model: &str) -> bool {
    MODELS.contains(&model)
}

/// Where a request runs; feeds ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) batch_id: &'a str,
    pub(crate) custom_id: &'a str,
    pub(crate) any_model: bool,
}

/// The outcome of one request: the `result` object and whether it
/// succeeded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) result: Value,
    pub(crate) succeeded: bool,
}

fn errored(kind: &str, message: &str) -> Outcome {
    Outcome {
        result: json!({"type": "errored", "error": envelope(kind, message)}),
        succeeded: false,
    }
}

fn invalid(message: &str) -> Outcome {
    errored("invalid_request_error", message)
}

/// `usage`, keys in the documented order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// `Message`, keys in the documented order.
#[derive(Debug, Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Value>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    usage: Usage,
}

/// Executes one request of a batch. `cache` holds the cached prefixes
/// seen so far in this batch.
pub(crate) fn respond(params: &Value, ctx: Ctx<'_>, cache: &mut HashSet<u64>) -> Outcome {
    let d = directives(params);
    if let Some(status) = d.fail {
        return errored(
            kind_for_status(status),
            &format!(
                "The emulator failed this request with status {status}, as its content asked."
            ),
        );
    }
    let model = match params.get("model") {
        None | Some(Value::Null) => return invalid("model: Field required"),
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return invalid("model: Input should be a valid string"),
    };
    if !ctx.any_model && !known_model(model) {
        return errored("not_found_error", &format!("model: {model}"));
    }
    let max_tokens = match params.get("max_tokens") {
        None | Some(Value::Null) => return invalid("max_tokens: Field required"),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => u64::try_from(n).unwrap_or(1),
            Some(_) => return invalid("max_tokens: Input should be greater than or equal to 1"),
            None => return invalid("max_tokens: Input should be a valid integer"),
        },
    };
    let messages = match params.get("messages") {
        None | Some(Value::Null) => return invalid("messages: Field required"),
        Some(Value::Array(m)) if m.is_empty() => {
            return invalid("messages: List should have at least 1 item after validation, not 0");
        }
        Some(Value::Array(m)) => m,
        Some(_) => return invalid("messages: Input should be a valid list"),
    };
    for (i, m) in messages.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => {
                return invalid(&format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ));
            }
        }
        if m.get("content").is_none_or(Value::is_null) {
            return invalid(&format!("messages.{i}.content: Field required"));
        }
    }
    let user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();

    // The text, cut by a stop sequence or the token limit.
    let mut text = reply_text(&user, d, false);
    let mut stop_reason = "end_turn";
    let mut stop_sequence = None;
    let stops = params.get("stop_sequences").and_then(Value::as_array);
    let first_stop = stops
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, s)) = first_stop {
        text.truncate(at);
        stop_reason = "stop_sequence";
        stop_sequence = Some(s.to_owned());
    }
    let (text, cut) = limit(text, d, Some(max_tokens));
    if cut {
        stop_reason = "max_tokens";
        stop_sequence = None;
    }

    let mut content = Vec::new();
    let mut output_tokens = tokens(&text);
    match tool_call(params, &user, ctx) {
        Some((block, only_tool)) if !cut => {
            if !only_tool {
                content.push(json!({"type": "text", "text": text}));
            } else {
                output_tokens = 0;
            }
            output_tokens += tokens(&block["input"].to_string()) + 8;
            content.push(block);
            stop_reason = "tool_use";
            stop_sequence = None;
        }
        _ => content.push(json!({"type": "text", "text": text})),
    }

    let usage = usage(params, messages, cache, output_tokens);
    let message = Message {
        id: derived_b62_id("msg_01", 22, &["msg", ctx.batch_id, ctx.custom_id]),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason,
        stop_sequence,
        usage,
    };
    let message = serde_json::to_value(&message).unwrap_or(Value::Null);
    Outcome {
        result: json!({"type": "succeeded", "message": message}),
        succeeded: true,
    }
}

/// The `tool_use` block a request with tools gets, and whether it is the
/// only block (`tool_choice` `any` or `tool`).
fn tool_call(params: &Value, user: &str, ctx: Ctx<'_>) -> Option<(Value, bool)> {
    let tools = params.get("tools")?.as_array()?;
    let choice = params.get("tool_choice");
    let choice_type = choice
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("auto");
    let tool = match choice_type {
        "none" => return None,
        "tool" => {
            let name = choice.and_then(|c| c.get("name")).and_then(Value::as_str)?;
            tools
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?
        }
        _ => tools.iter().find(|t| t.get("name").is_some())?,
    };
    let name = tool.get("name").and_then(Value::as_str)?;
    let input = fill_schema(tool.get("input_schema"), &strip_directives(user));
    let block = json!({
        "type": "tool_use",
        "id": derived_b62_id("toolu_01", 22, &["toolu", ctx.batch_id, ctx.custom_id]),
        "name": name,
        "input": input,
    });
    Some((block, matches!(choice_type, "any" | "tool")))
}

/// An `input` that fits an object schema: each property (required ones, or
/// all if none is required) gets a value of its type, strings the prompt.
fn fill_schema(schema: Option<&Value>, text: &str) -> Value {
    let mut out = Map::new();
    let Some(props) = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Value::Object(out);
    };
    let required: Vec<&str> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, prop) in props {
        if !required.is_empty() && !required.contains(&key.as_str()) {
            continue;
        }
        let value = if let Some(first) = prop
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            first.clone()
        } else {
            match prop.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(text.split_whitespace().count()),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => fill_schema(Some(prop), text),
                Some("null") => Value::Null,
                _ => json!(text),
            }
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// Token counts, with the cache split described in the module docs.
fn usage(params: &Value, messages: &[Value], cache: &mut HashSet<u64>, output: u64) -> Usage {
    // (text, marks a cache breakpoint) for tools, system, then messages.
    let mut parts: Vec<(String, bool)> = Vec::new();
    let marked = |v: &Value| v.get("cache_control").is_some_and(|c| !c.is_null());
    if let Some(tools) = params.get("tools").and_then(Value::as_array) {
        for t in tools {
            parts.push((t.to_string(), marked(t)));
        }
    }
    match params.get("system") {
        Some(Value::String(s)) => parts.push((s.clone(), false)),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                parts.push((content_text(&Value::Array(vec![b.clone()])), marked(b)));
            }
        }
        _ => {}
    }
    for m in messages {
        match m.get("content") {
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    parts.push((content_text(&Value::Array(vec![b.clone()])), marked(b)));
                }
            }
            Some(c) => parts.push((content_text(c), false)),
            None => {}
        }
    }
    let counts: Vec<u64> = parts.iter().map(|(t, _)| tokens(t) + 1).collect();
    let total: u64 = 3 + 4 * messages.len() as u64 + counts.iter().sum::<u64>();
    let mut usage = Usage {
        input_tokens: total,
        output_tokens: output,
        ..Usage::default()
    };
    if let Some(last) = parts.iter().rposition(|(_, m)| *m) {
        let prefix: u64 = counts[..=last].iter().sum();
        let texts: Vec<&str> = parts[..=last].iter().map(|(t, _)| t.as_str()).collect();
        let key = hash_parts(&texts);
        if cache.insert(key) {
            usage.cache_creation_input_tokens = prefix;
        } else {
            usage.cache_read_input_tokens = prefix;
        }
        usage.input_tokens = total - prefix;
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Ctx<'static> = Ctx {
        batch_id: "msgbatch_01x",
        custom_id: "c1",
        any_model: false,
    };

    fn params(text: &str) -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "Be brief.",
               "messages": [{"role": "user", "content": text}]})
    }

    fn run(p: &Value) -> Outcome {
        respond(p, CTX, &mut HashSet::new())
    }

    #[test]
    fn echoes_deterministically() {
        let a = run(&params("hello there"));
        assert_eq!(a, run(&params("hello there")));
        assert!(a.succeeded);
        let m = &a.result["message"];
        assert_eq!(a.result["type"], "succeeded");
        assert_eq!(
            m["content"],
            json!([{"type": "text", "text": "Echo: hello there"}])
        );
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["stop_sequence"], Value::Null);
        assert_eq!(m["model"], "claude-sonnet-4-5");
        assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_01")));
        assert_eq!(m["usage"]["cache_read_input_tokens"], 0);
        assert!(m["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0));
    }

    #[test]
    fn bad_params_are_errored_results() {
        let cases = [
            (
                json!({"max_tokens": 5, "messages": []}),
                "model: Field required",
            ),
            (
                json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens: Field required",
            ),
            (
                json!({"model": "claude-sonnet-4-5", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens: Input should be greater than or equal to 1",
            ),
            (
                json!({"model": "claude-sonnet-4-5", "max_tokens": 5}),
                "messages: Field required",
            ),
            (
                json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role: Input should be 'user' or 'assistant'",
            ),
        ];
        for (p, message) in cases {
            let o = run(&p);
            assert!(!o.succeeded);
            assert_eq!(o.result["type"], "errored");
            assert_eq!(o.result["error"]["type"], "error");
            assert_eq!(o.result["error"]["error"]["type"], "invalid_request_error");
            assert_eq!(o.result["error"]["error"]["message"], message);
        }
        let mut p = params("x");
        p["model"] = json!("claude-nonexistent");
        let o = run(&p);
        assert_eq!(o.result["error"]["error"]["type"], "not_found_error");
        let any = respond(
            &p,
            Ctx {
                any_model: true,
                ..CTX
            },
            &mut HashSet::new(),
        );
        assert!(any.succeeded);
        let o = run(&params("x [[emulator:fail=529]]"));
        assert_eq!(o.result["error"]["error"]["type"], "overloaded_error");
    }

    #[test]
    fn stop_sequences_and_max_tokens_cut_the_text() {
        let mut p = params("alpha beta gamma");
        p["stop_sequences"] = json!(["gamma", "beta"]);
        let m = run(&p).result["message"].clone();
        assert_eq!(m["content"][0]["text"], "Echo: alpha ");
        assert_eq!(m["stop_reason"], "stop_sequence");
        assert_eq!(m["stop_sequence"], "beta");
        let mut p = params("a long prompt that will not fit");
        p["max_tokens"] = json!(2);
        let m = run(&p).result["message"].clone();
        assert_eq!(m["stop_reason"], "max_tokens");
        assert_eq!(m["content"][0]["text"], "Echo: a ");
    }

    #[test]
    fn tools_give_a_tool_use_block() {
        let mut p = params("weather in Paris");
        p["tools"] = json!([{"name": "get_weather", "description": "d",
            "input_schema": {"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"]}}]);
        let m = run(&p).result["message"].clone();
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["content"][0]["type"], "text");
        let block = &m["content"][1];
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "get_weather");
        assert_eq!(
            block["input"],
            json!({"city": "weather in Paris", "unit": "c"})
        );
        assert!(
            block["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("toolu_01"))
        );
        p["tool_choice"] = json!({"type": "tool", "name": "get_weather"});
        let m = run(&p).result["message"].clone();
        assert_eq!(m["content"].as_array().map(Vec::len), Some(1));
        p["tool_choice"] = json!({"type": "none"});
        assert_eq!(run(&p).result["message"]["stop_reason"], "end_turn");
    }

    #[test]
    fn cache_control_creates_then_reads_a_prefix() {
        let p = json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
            "system": [{"type": "text", "text": "A long shared instruction text.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "q"}]});
        let mut cache = HashSet::new();
        let first = respond(&p, CTX, &mut cache).result["message"]["usage"].clone();
        let second = respond(&p, CTX, &mut cache).result["message"]["usage"].clone();
        assert!(
            first["cache_creation_input_tokens"]
                .as_u64()
                .is_some_and(|n| n > 0)
        );
        assert_eq!(first["cache_read_input_tokens"], 0);
        assert_eq!(
            second["cache_read_input_tokens"],
            first["cache_creation_input_tokens"]
        );
        assert_eq!(second["cache_creation_input_tokens"], 0);
        assert_eq!(first["input_tokens"], second["input_tokens"]);
    }
}
