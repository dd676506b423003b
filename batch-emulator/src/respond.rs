//! Deterministic answers for each endpoint a batch can target, and the
//! directives a request can carry in its text to steer them.
//!
//! Directives (anywhere in the request's string values):
//! * `[[emulator:fail=400]]`: the request fails with that status (400..=599);
//!   its line goes to the error file with an error body.
//! * `[[emulator:json]]`: the reply content is a ```` ```json ```` fenced object.
//! * `[[emulator:length]]`: the reply is cut short with `finish_reason: "length"`
//!   (`status: "incomplete"` for responses).
//! * `[[emulator:flag]]`: moderations flag the input (`violence`).
//!
//! Token counts are `ceil(chars / 4)` per text, plus small per-message
//! overheads for chat, so they are stable for a given input.

use serde_json::{Map, Value, json};

use crate::util::{Rng, base64, derived_b62_id, derived_hex_id, hash_parts};

const DIRECTIVE_OPEN: &str = "[[emulator:";
const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/// Directives found in one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) fail: Option<u16>,
    pub(crate) json: bool,
    pub(crate) length: bool,
    pub(crate) flag: bool,
}

/// Scans every string value of `body` (keys excluded) for directives.
pub(crate) fn directives(body: &Value) -> Directives {
    let mut d = Directives::default();
    visit_strings(body, &mut |s| scan(s, &mut d));
    d
}

fn visit_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| visit_strings(x, f)),
        Value::Object(o) => o.values().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}

fn scan(text: &str, d: &mut Directives) {
    let mut rest = text;
    while let Some(i) = rest.find(DIRECTIVE_OPEN) {
        let after = &rest[i + DIRECTIVE_OPEN.len()..];
        let Some(end) = after.find("]]") else { return };
        let inner = after[..end].trim();
        match inner.split_once('=') {
            Some(("fail", v)) => {
                let code = v.trim().parse::<u16>().unwrap_or(400);
                d.fail = Some(if (400..=599).contains(&code) {
                    code
                } else {
                    400
                });
            }
            None if inner == "fail" => d.fail = Some(400),
            None if inner == "json" => d.json = true,
            None if inner == "length" => d.length = true,
            None if inner == "flag" => d.flag = true,
            _ => {}
        }
        rest = &after[end + 2..];
    }
}

/// `text` without directives, trimmed.
pub(crate) fn strip_directives(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(DIRECTIVE_OPEN) {
        out.push_str(&rest[..i]);
        match rest[i..].find("]]") {
            Some(end) => rest = &rest[i + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tokens of a text: `ceil(chars / 4)`.
pub(crate) fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The outcome of executing one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// Where and when a request runs; feeds ids and timestamps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) batch_id: &'a str,
    pub(crate) custom_id: &'a str,
    pub(crate) created: i64,
}

/// Executes one request of a batch deterministically.
pub(crate) fn respond(endpoint: &str, body: &Value, ctx: Ctx<'_>) -> Outcome {
    if let Some(failed) = precheck(endpoint, body) {
        return failed;
    }
    let d = directives(body);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map_or("unknown-model", crate::models::reported)
        .to_owned();
    match endpoint {
        "/v1/chat/completions" => chat(body, &model, d, ctx),
        "/v1/responses" => responses(body, &model, d, ctx),
        "/v1/embeddings" => embeddings(body, &model, ctx),
        "/v1/completions" => completions(body, &model, d, ctx),
        "/v1/moderations" => moderations(body, &model, d, ctx),
        "/v1/images/generations" | "/v1/images/edits" => images(body, ctx),
        "/v1/videos" => videos(body, &model, ctx),
        other => failure_with(
            404,
            "invalid_request_error",
            &format!("Invalid URL (POST {other})"),
            None,
        ),
    }
}

/// The failure a request will get when executed, if any: a `fail`
/// directive, or a required body parameter missing (the live API checks
/// bodies only when it runs them, so these fail per request, not at
/// validation).
pub(crate) fn precheck(endpoint: &str, body: &Value) -> Option<Outcome> {
    if let Some(status) = directives(body).fail {
        return Some(failure(status));
    }
    let required = match endpoint {
        "/v1/chat/completions" => "messages",
        "/v1/embeddings" | "/v1/moderations" => "input",
        "/v1/images/generations" | "/v1/images/edits" | "/v1/videos" => "prompt",
        _ => return None,
    };
    let present = match body.get(required) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty() || required != "messages",
        Some(_) => true,
    };
    if present {
        return None;
    }
    let mut out = failure_with(
        400,
        "invalid_request_error",
        &format!("Missing required parameter: '{required}'."),
        Some("missing_required_parameter"),
    );
    out.body["error"]["param"] = Value::String(required.to_owned());
    Some(out)
}

fn failure(status: u16) -> Outcome {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    failure_with(
        status,
        kind,
        &format!("The emulator failed this request with status {status}, as its content asked."),
        code,
    )
}

fn failure_with(status: u16, kind: &str, message: &str, code: Option<&str>) -> Outcome {
    Outcome {
        status,
        body: json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        input_tokens: 0,
        output_tokens: 0,
    }
}

/// The text of a message `content`: a string, or the `text` of its parts.
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The reply text for a prompt, shaped by directives and the response format.
pub(crate) fn reply_text(user: &str, d: Directives, json_format: bool) -> String {
    let clean = strip_directives(user);
    if json_format || d.json {
        let obj = json!({"echo": clean, "words": clean.split_whitespace().count()});
        if json_format && !d.json {
            obj.to_string()
        } else {
            let pretty = serde_json::to_string_pretty(&obj).unwrap_or_else(|_| obj.to_string());
            format!("```json\n{pretty}\n```")
        }
    } else if clean.is_empty() {
        "Hello from the batch emulator.".to_owned()
    } else {
        format!("Echo: {clean}")
    }
}

/// Applies the `length` directive and a token limit; returns the text and
/// whether it was cut.
pub(crate) fn limit(text: String, d: Directives, max_tokens: Option<u64>) -> (String, bool) {
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    if d.length {
        keep = keep.div_ceil(2).min(keep.saturating_sub(1));
    }
    if let Some(max) = max_tokens {
        keep = keep.min(usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX));
    }
    if keep < chars.len() {
        (chars[..keep].iter().collect(), true)
    } else {
        (text, false)
    }
}

fn u64_field(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_u64)
}

fn chat(body: &Value, model: &str, d: Directives, ctx: Ctx<'_>) -> Outcome {
    let empty = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut prompt_tokens = 3;
    let mut user = None;
    let mut last = String::new();
    for m in messages {
        let text = m.get("content").map(content_text).unwrap_or_default();
        prompt_tokens += 4 + tokens(&text);
        if m.get("role").and_then(Value::as_str) == Some("user") {
            user = Some(text.clone());
        }
        last = text;
    }
    let user = user.unwrap_or(last);
    let json_format = matches!(
        body.pointer("/response_format/type")
            .and_then(Value::as_str),
        Some("json_object" | "json_schema")
    );
    let max = u64_field(body, "max_completion_tokens").or_else(|| u64_field(body, "max_tokens"));
    let (content, cut) = limit(reply_text(&user, d, json_format), d, max);
    let n = u64_field(body, "n").unwrap_or(1).clamp(1, 8);
    let completion_tokens = tokens(&content) * n;
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": if cut { "length" } else { "stop" },
            })
        })
        .collect();
    Outcome {
        status: 200,
        body: json!({
            "id": derived_b62_id("chatcmpl-", 29, &[ctx.batch_id, ctx.custom_id]),
            "object": "chat.completion",
            "created": ctx.created,
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
                }
            },
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }),
        input_tokens: prompt_tokens,
        output_tokens: completion_tokens,
    }
}

fn responses(body: &Value, model: &str, d: Directives, ctx: Ctx<'_>) -> Outcome {
    let instructions = body.get("instructions").and_then(Value::as_str);
    let mut input_tokens = instructions.map(tokens).unwrap_or(0);
    let user = match body.get("input") {
        Some(Value::String(s)) => {
            input_tokens += tokens(s);
            s.clone()
        }
        Some(Value::Array(items)) => {
            let mut user = None;
            let mut last = String::new();
            for item in items {
                let text = item.get("content").map(content_text).unwrap_or_default();
                input_tokens += 4 + tokens(&text);
                if item.get("role").and_then(Value::as_str) == Some("user") {
                    user = Some(text.clone());
                }
                last = text;
            }
            user.unwrap_or(last)
        }
        _ => String::new(),
    };
    let json_format = matches!(
        body.pointer("/text/format/type").and_then(Value::as_str),
        Some("json_object" | "json_schema")
    );
    let max = u64_field(body, "max_output_tokens");
    let (text, cut) = limit(reply_text(&user, d, json_format), d, max);
    let output_tokens = tokens(&text);
    Outcome {
        status: 200,
        body: json!({
            "id": derived_hex_id("resp_", &["resp", ctx.batch_id, ctx.custom_id]),
            "object": "response",
            "created_at": ctx.created,
            "status": if cut { "incomplete" } else { "completed" },
            "background": false,
            "error": null,
            "incomplete_details": if cut { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": instructions,
            "max_output_tokens": max,
            "model": model,
            "output": [{
                "id": derived_hex_id("msg_", &["msg", ctx.batch_id, ctx.custom_id]),
                "type": "message",
                "status": if cut { "incomplete" } else { "completed" },
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
                "role": "assistant"
            }],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "service_tier": "default",
            "store": true,
            "temperature": body.get("temperature").cloned().unwrap_or(json!(1.0)),
            "text": {"format": {"type": if json_format { "json_object" } else { "text" }}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p").cloned().unwrap_or(json!(1.0)),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens
            },
            "user": null,
            "metadata": {}
        }),
        input_tokens,
        output_tokens,
    }
}

/// The inputs of an embeddings or moderations request, as texts.
fn inputs(body: &Value) -> Vec<String> {
    match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            // A flat array of integers is one tokenized input.
            if !items.is_empty() && items.iter().all(Value::is_number) {
                return vec![
                    items
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ];
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    Value::Array(toks) => toks
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Number of inputs an embeddings request carries (for the 50,000 limit).
#[allow(dead_code)]
pub(crate) fn embedding_input_count(body: &Value) -> u64 {
    inputs(body).len() as u64
}

fn embeddings(body: &Value, model: &str, ctx: Ctx<'_>) -> Outcome {
    let dims = u64_field(body, "dimensions").unwrap_or(16).clamp(1, 3072) as usize;
    let base64_format = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut total = 0;
    let data: Vec<Value> = inputs(body)
        .iter()
        .enumerate()
        .map(|(i, text)| {
            total += tokens(text).max(1);
            let mut rng = Rng::new(hash_parts(&[model, text]));
            let raw: Vec<f64> = (0..dims).map(|_| rng.unit() * 2.0 - 1.0).collect();
            let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
            let vec: Vec<f32> = raw.iter().map(|x| (x / norm) as f32).collect();
            let embedding = if base64_format {
                let bytes: Vec<u8> = vec.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64(&bytes))
            } else {
                json!(vec)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let _ = ctx;
    Outcome {
        status: 200,
        body: json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total}
        }),
        input_tokens: total,
        output_tokens: 0,
    }
}

fn completions(body: &Value, model: &str, d: Directives, ctx: Ctx<'_>) -> Outcome {
    let prompts: Vec<String> = match body.get("prompt") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(other) => vec![other.to_string()],
        None => vec![String::new()],
    };
    let max = u64_field(body, "max_tokens");
    let mut prompt_tokens = 0;
    let mut completion_tokens = 0;
    let choices: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            prompt_tokens += tokens(p);
            let (text, cut) = limit(format!(" {}", reply_text(p, d, false)), d, max);
            completion_tokens += tokens(&text);
            json!({"text": text, "index": i, "logprobs": null, "finish_reason": if cut { "length" } else { "stop" }})
        })
        .collect();
    Outcome {
        status: 200,
        body: json!({
            "id": derived_b62_id("cmpl-", 29, &[ctx.batch_id, ctx.custom_id]),
            "object": "text_completion",
            "created": ctx.created,
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens
            }
        }),
        input_tokens: prompt_tokens,
        output_tokens: completion_tokens,
    }
}

const MODERATION_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

fn moderations(body: &Value, model: &str, d: Directives, ctx: Ctx<'_>) -> Outcome {
    let results: Vec<Value> = inputs(body)
        .iter()
        .map(|text| {
            let flag = d.flag && text.contains(DIRECTIVE_OPEN);
            let mut categories = Map::new();
            let mut scores = Map::new();
            let mut rng = Rng::new(hash_parts(&["moderation", text]));
            for c in MODERATION_CATEGORIES {
                let hit = flag && c == "violence";
                categories.insert(c.to_owned(), json!(hit));
                let score = if hit { 0.91 } else { rng.unit() * 1e-4 };
                scores.insert(c.to_owned(), json!(score));
            }
            json!({"flagged": flag, "categories": categories, "category_scores": scores})
        })
        .collect();
    let model = if model == "unknown-model" {
        "omni-moderation-2024-09-26"
    } else {
        model
    };
    Outcome {
        status: 200,
        body: json!({
            "id": derived_hex_id("modr-", &["modr", ctx.batch_id, ctx.custom_id]),
            "model": model,
            "results": results
        }),
        input_tokens: 0,
        output_tokens: 0,
    }
}

fn images(body: &Value, ctx: Ctx<'_>) -> Outcome {
    let n = u64_field(body, "n").unwrap_or(1).clamp(1, 10);
    let prompt = body
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let data: Vec<Value> = (0..n).map(|_| json!({"b64_json": TINY_PNG})).collect();
    let input_tokens = tokens(prompt);
    Outcome {
        status: 200,
        body: json!({
            "created": ctx.created,
            "data": data,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
                "output_tokens": 0,
                "total_tokens": input_tokens
            }
        }),
        input_tokens,
        output_tokens: 0,
    }
}

fn videos(body: &Value, model: &str, ctx: Ctx<'_>) -> Outcome {
    let model = if model == "unknown-model" {
        "sora-2"
    } else {
        model
    };
    Outcome {
        status: 200,
        body: json!({
            "id": derived_hex_id("video_", &["video", ctx.batch_id, ctx.custom_id]),
            "object": "video",
            "model": model,
            "status": "queued",
            "progress": 0,
            "created_at": ctx.created,
            "size": body.get("size").cloned().unwrap_or(json!("720x1280")),
            "seconds": body.get("seconds").cloned().unwrap_or(json!("4")),
            "quality": "standard"
        }),
        input_tokens: 0,
        output_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Ctx<'static> = Ctx {
        batch_id: "batch_x",
        custom_id: "c1",
        created: 1_700_000_000,
    };

    fn chat_body(text: &str) -> Value {
        json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text}
        ]})
    }

    #[test]
    fn finds_directives_anywhere() {
        let d = directives(&chat_body("hi [[emulator:fail=503]] and [[emulator:json]]"));
        assert_eq!(d.fail, Some(503));
        assert!(d.json);
        assert_eq!(
            directives(&chat_body("[[emulator:fail=200]]")).fail,
            Some(400)
        );
        assert!(directives(&chat_body("[[emulator:length]]")).length);
        assert_eq!(
            directives(&chat_body("[[emulator:unclosed")),
            Directives::default()
        );
        assert_eq!(strip_directives("a [[emulator:json]]  b"), "a b");
    }

    #[test]
    fn chat_is_deterministic_and_echoes() {
        let a = respond("/v1/chat/completions", &chat_body("hello there"), CTX);
        let b = respond("/v1/chat/completions", &chat_body("hello there"), CTX);
        assert_eq!(a, b);
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body.pointer("/choices/0/message/content"),
            Some(&json!("Echo: hello there"))
        );
        assert_eq!(
            a.body.pointer("/choices/0/finish_reason"),
            Some(&json!("stop"))
        );
        assert_eq!(a.body["usage"]["prompt_tokens"], json!(a.input_tokens));
    }

    #[test]
    fn chat_directives_shape_the_reply() {
        let j = respond(
            "/v1/chat/completions",
            &chat_body("x [[emulator:json]]"),
            CTX,
        );
        let content = j
            .body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str);
        assert!(content.is_some_and(|c| c.starts_with("```json\n{") && c.ends_with("\n```")));
        let l = respond(
            "/v1/chat/completions",
            &chat_body("a long text here [[emulator:length]]"),
            CTX,
        );
        assert_eq!(
            l.body.pointer("/choices/0/finish_reason"),
            Some(&json!("length"))
        );
        let f = respond(
            "/v1/chat/completions",
            &chat_body("[[emulator:fail=400]]"),
            CTX,
        );
        assert_eq!(f.status, 400);
        assert_eq!(
            f.body.pointer("/error/type"),
            Some(&json!("invalid_request_error"))
        );
    }

    #[test]
    fn other_endpoints_answer() {
        let e = respond(
            "/v1/embeddings",
            &json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
            CTX,
        );
        assert_eq!(e.body["data"].as_array().map(Vec::len), Some(2));
        let r = respond(
            "/v1/responses",
            &json!({"model": "gpt-4o", "input": "hi"}),
            CTX,
        );
        assert_eq!(
            r.body.pointer("/output/0/content/0/text"),
            Some(&json!("Echo: hi"))
        );
        let m = respond(
            "/v1/moderations",
            &json!({"input": "bad [[emulator:flag]]"}),
            CTX,
        );
        assert_eq!(m.body.pointer("/results/0/flagged"), Some(&json!(true)));
        let c = respond(
            "/v1/completions",
            &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "p"}),
            CTX,
        );
        assert_eq!(
            c.body.pointer("/choices/0/finish_reason"),
            Some(&json!("stop"))
        );
    }
}
