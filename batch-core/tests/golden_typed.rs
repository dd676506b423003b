//! Golden tests of the typed request builders: the exact request line each
//! one produces (keys sorted, as the encoder writes them), and the errors
//! that name what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batch_core::input::{
    BatchRequest, ChatRequest, EmbeddingInput, EmbeddingsRequest, EncodingFormat, FunctionTool,
    JsonSchema, Message, ResponseFormat, ResponsesRequest, Role, StructuredPrompt, ToolChoice,
};
use batch_core::jsonl::{EncodeConfig, ShardEncoder};
use batch_core::{Endpoint, InputError, Problem};
use serde_json::json;

fn line(req: &BatchRequest) -> String {
    serde_json::to_string(req).expect("serializes")
}

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
        "additionalProperties": false
    })
}

fn weather() -> FunctionTool {
    FunctionTool::new("get_weather")
        .description("The weather in a city.")
        .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}))
}

#[test]
fn chat_minimal() {
    let req = ChatRequest::new("c1", "gpt-4o-mini")
        .user("Hi")
        .build()
        .expect("valid");
    assert_eq!(req.url, Endpoint::ChatCompletions);
    assert_eq!(
        line(&req),
        r#"{"custom_id":"c1","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"content":"Hi","role":"user"}],"model":"gpt-4o-mini"}}"#
    );
}

#[test]
fn chat_with_everything() {
    let req = ChatRequest::new("c2", "gpt-4o-mini")
        .system("Answer briefly.")
        .message(Message::user("Example?").name("alice"))
        .message(Message::assistant("Example."))
        .user("Weather in Oslo as JSON?")
        .temperature(0.2)
        .max_tokens(100)
        .max_completion_tokens(200)
        .response_format(ResponseFormat::json_schema(
            JsonSchema::new("verdict", schema())
                .description("A label and a score.")
                .strict(true),
        ))
        .tool(weather())
        .tool(FunctionTool::new("noop").strict(false))
        .tool_choice(ToolChoice::Function("get_weather".into()))
        .extra("seed", 7)
        .extra("top_p", 0.9)
        .build()
        .expect("valid");
    assert_eq!(
        line(&req),
        concat!(
            r#"{"custom_id":"c2","method":"POST","url":"/v1/chat/completions","body":{"#,
            r#""max_completion_tokens":200,"max_tokens":100,"#,
            r#""messages":[{"content":"Answer briefly.","role":"system"},{"content":"Example?","name":"alice","role":"user"},{"content":"Example.","role":"assistant"},{"content":"Weather in Oslo as JSON?","role":"user"}],"#,
            r#""model":"gpt-4o-mini","#,
            r#""response_format":{"json_schema":{"description":"A label and a score.","name":"verdict","schema":{"additionalProperties":false,"properties":{"label":{"type":"string"},"score":{"type":"number"}},"required":["label","score"],"type":"object"},"strict":true},"type":"json_schema"},"#,
            r#""seed":7,"temperature":0.2,"#,
            r#""tool_choice":{"function":{"name":"get_weather"},"type":"function"},"#,
            r#""tools":[{"function":{"description":"The weather in a city.","name":"get_weather","parameters":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}},"type":"function"},{"function":{"name":"noop","strict":false},"type":"function"}],"#,
            r#""top_p":0.9}}"#
        )
    );
}

#[test]
fn chat_formats_choices_roles_and_a_structured_prompt() {
    let body = |f: ResponseFormat| {
        ChatRequest::new("c", "m")
            .user("x")
            .response_format(f)
            .build()
            .expect("valid")
            .body
    };
    assert_eq!(
        body(ResponseFormat::Text)["response_format"],
        json!({"type": "text"})
    );
    assert_eq!(
        body(ResponseFormat::JsonObject)["response_format"],
        json!({"type": "json_object"})
    );
    let choice = |c: ToolChoice| {
        ChatRequest::new("c", "m")
            .user("x")
            .tool(weather())
            .tool_choice(c)
            .build()
            .expect("valid")
            .body
    };
    assert_eq!(choice(ToolChoice::None)["tool_choice"], json!("none"));
    assert_eq!(choice(ToolChoice::Auto)["tool_choice"], json!("auto"));
    assert_eq!(
        choice(ToolChoice::Required)["tool_choice"],
        json!("required")
    );

    let req = ChatRequest::new("c3", "o4-mini")
        .system(
            StructuredPrompt::new()
                .role("a careful editor")
                .tone("plain"),
        )
        .messages([
            Message::developer("Fix spelling only."),
            Message::new(Role::User, json!([{"type": "text", "text": "teh cat"}])),
            Message::tool("call_1", "{\"ok\":true}"),
        ])
        .build()
        .expect("valid");
    assert_eq!(
        req.body["messages"],
        json!([
            {"role": "system", "content": "You are a careful editor.\n\nTone: plain"},
            {"role": "developer", "content": "Fix spelling only."},
            {"role": "user", "content": [{"type": "text", "text": "teh cat"}]},
            {"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "call_1"}
        ])
    );
    // Only what is set is sent.
    for key in [
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "response_format",
        "tools",
        "tool_choice",
    ] {
        assert!(!req.body.contains_key(key), "{key}");
    }
}

#[test]
fn responses_with_everything() {
    let req = ResponsesRequest::new("r1", "gpt-4.1-mini")
        .instructions("Answer briefly.")
        .input("Weather in Oslo as JSON?")
        .temperature(0.5)
        .max_output_tokens(300)
        .text_format(ResponseFormat::json_schema(
            JsonSchema::new("verdict", schema()).strict(true),
        ))
        .tool(weather())
        .tool(FunctionTool::new("noop").strict(false))
        .tool_choice(ToolChoice::Function("get_weather".into()))
        .extra("store", false)
        .build()
        .expect("valid");
    assert_eq!(req.url, Endpoint::Responses);
    assert_eq!(
        line(&req),
        concat!(
            r#"{"custom_id":"r1","method":"POST","url":"/v1/responses","body":{"#,
            r#""input":"Weather in Oslo as JSON?","instructions":"Answer briefly.","max_output_tokens":300,"model":"gpt-4.1-mini","store":false,"temperature":0.5,"#,
            r#""text":{"format":{"name":"verdict","schema":{"additionalProperties":false,"properties":{"label":{"type":"string"},"score":{"type":"number"}},"required":["label","score"],"type":"object"},"strict":true,"type":"json_schema"}},"#,
            r#""tool_choice":{"name":"get_weather","type":"function"},"#,
            r#""tools":[{"description":"The weather in a city.","name":"get_weather","parameters":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"},"strict":true,"type":"function"},{"name":"noop","parameters":null,"strict":false,"type":"function"}]}}"#
        )
    );
}

#[test]
fn responses_input_as_messages() {
    let req = ResponsesRequest::new("r2", "gpt-4.1-mini")
        .input("First question")
        .message(Message::assistant("First answer"))
        .message(Message::user("Second question"))
        .text_format(ResponseFormat::JsonObject)
        .build()
        .expect("valid");
    assert_eq!(
        line(&req),
        r#"{"custom_id":"r2","method":"POST","url":"/v1/responses","body":{"input":[{"content":"First question","role":"user"},{"content":"First answer","role":"assistant"},{"content":"Second question","role":"user"}],"model":"gpt-4.1-mini","text":{"format":{"type":"json_object"}}}}"#
    );
}

#[test]
fn embeddings_every_input_shape() {
    let req = EmbeddingsRequest::new("e1", "text-embedding-3-small", "hello")
        .dimensions(256)
        .encoding_format(EncodingFormat::Base64)
        .extra("user", "u-1")
        .build()
        .expect("valid");
    assert_eq!(req.url, Endpoint::Embeddings);
    assert_eq!(
        line(&req),
        r#"{"custom_id":"e1","method":"POST","url":"/v1/embeddings","body":{"dimensions":256,"encoding_format":"base64","input":"hello","model":"text-embedding-3-small","user":"u-1"}}"#
    );
    let input = |i: EmbeddingInput| {
        EmbeddingsRequest::new("e", "m", i)
            .encoding_format(EncodingFormat::Float)
            .build()
            .expect("valid")
            .body
    };
    let b = input(vec!["a", "b"].into());
    assert_eq!(b["input"], json!(["a", "b"]));
    assert_eq!(b["encoding_format"], json!("float"));
    assert_eq!(
        input(EmbeddingInput::Tokens(vec![1, 2, 3]))["input"],
        json!([1, 2, 3])
    );
    assert_eq!(
        input(EmbeddingInput::TokenArrays(vec![vec![1], vec![2, 3]]))["input"],
        json!([[1], [2, 3]])
    );
    assert_eq!(EmbeddingInput::from(vec!["a", "b", "c"]).len(), 3);
    assert_eq!(EmbeddingInput::Tokens(vec![1, 2, 3]).len(), 1);
}

fn err(r: Result<BatchRequest, InputError>) -> (String, String, Problem) {
    let e = r.expect_err("refused");
    let text = e.to_string();
    (e.field, text, e.problem)
}

#[test]
fn builders_refuse_what_the_api_would_and_name_the_field() {
    let (field, text, problem) = err(ChatRequest::new("c9", "m").build());
    assert_eq!((field.as_str(), problem), ("messages", Problem::Missing));
    assert_eq!(text, "chat \"c9\":0: field `messages`: is missing");

    let (field, text, _) = err(ChatRequest::new("c9", "m")
        .user("x")
        .temperature(f64::NAN)
        .build());
    assert_eq!(field, "temperature");
    assert!(text.contains("must be a finite number"), "{text}");

    let (field, text, _) = err(ChatRequest::new("c9", "m")
        .user("x")
        .max_tokens(5)
        .extra("max_tokens", 9)
        .build());
    assert_eq!(field, "extra.max_tokens");
    assert!(text.contains("set by the builder"), "{text}");
    let (field, _, _) = err(ChatRequest::new("c9", "m")
        .user("x")
        .extra("messages", json!([]))
        .build());
    assert_eq!(field, "extra.messages");
    // The whole conversation, or the whole input, may come as extra.
    let convo = json!([{"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "42"}]);
    let req = ChatRequest::new("c9", "m")
        .extra("messages", convo.clone())
        .build()
        .expect("valid");
    assert_eq!(req.body["messages"], convo);
    let (field, _, _) = err(ChatRequest::new("c9", "m")
        .system("s")
        .extra("messages", convo)
        .build());
    assert_eq!(field, "extra.messages");
    let items = json!([{"type": "function_call_output", "call_id": "call_1", "output": "42"}]);
    let req = ResponsesRequest::new("r9", "m")
        .extra("input", items.clone())
        .build()
        .expect("valid");
    assert_eq!(req.body["input"], items);
    // An extra key the builder does not set goes through.
    assert!(
        ChatRequest::new("c9", "m")
            .user("x")
            .extra("max_tokens", 9)
            .build()
            .is_ok()
    );

    let (field, text, problem) = err(ResponsesRequest::new("r9", "m")
        .instructions("Be brief.")
        .build());
    assert_eq!((field.as_str(), problem), ("input", Problem::Missing));
    assert!(text.starts_with("responses \"r9\""), "{text}");
    let (field, _, _) = err(ResponsesRequest::new("r9", "m")
        .input("x")
        .text_format(ResponseFormat::JsonObject)
        .extra("text", json!({}))
        .build());
    assert_eq!(field, "extra.text");

    let (field, text, _) = err(ResponsesRequest::new("r9", "m")
        .input("x")
        .message(Message::tool("call_1", "{}"))
        .build());
    assert_eq!(field, "input[1]");
    assert!(text.ends_with("is not accepted by /v1/responses"), "{text}");
    let (field, _, _) = err(ResponsesRequest::new("r9", "m")
        .message(Message::user("x").name("alice"))
        .build());
    assert_eq!(field, "input[0]");

    for empty in [
        EmbeddingInput::from(""),
        EmbeddingInput::Texts(vec![]),
        EmbeddingInput::from(vec!["a", ""]),
        EmbeddingInput::Tokens(vec![]),
        EmbeddingInput::TokenArrays(vec![vec![1], vec![]]),
    ] {
        let (field, _, problem) = err(EmbeddingsRequest::new("e9", "m", empty).build());
        assert_eq!((field.as_str(), problem), ("input", Problem::Empty));
    }
    let (field, _, _) = err(EmbeddingsRequest::new("e9", "m", "x").dimensions(0).build());
    assert_eq!(field, "dimensions");
}

/// Built requests pass the validating encoder for their endpoint.
#[test]
fn built_requests_encode() {
    let reqs: Vec<BatchRequest> = (0..3)
        .map(|i| {
            ChatRequest::new(format!("c{i}"), "gpt-4o-mini")
                .user(format!("q{i}"))
                .response_format(ResponseFormat::json_schema(JsonSchema::new("v", schema())))
                .build()
                .expect("valid")
        })
        .collect();
    let mut enc = ShardEncoder::new(EncodeConfig::new("typed", Endpoint::ChatCompletions));
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        enc.push(i as u64 + 1, r, &mut out).expect("encodes");
    }
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(text.lines().count(), 3);
    let first: BatchRequest =
        serde_json::from_str(text.lines().next().expect("a line")).expect("parses back");
    assert_eq!(first, reqs[0]);
}
