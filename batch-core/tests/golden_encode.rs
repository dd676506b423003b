//! Golden bytes of encoded request lines: the exact output for each kind of
//! input, so any change to the wire format shows up as a diff here.

use batch_core::input::{BatchRequest, Item, RequestTemplate, StructuredPrompt, SystemPrompt};
use batch_core::jsonl::{EncodeConfig, ShardEncoder, encode_line};
use batch_core::{Endpoint, InputError};
use serde_json::json;

fn encoded(req: &BatchRequest) -> String {
    let mut out = Vec::new();
    encode_line(req, &mut out);
    String::from_utf8(out).expect("encoded lines are UTF-8")
}

fn from_item(endpoint: Endpoint, system: &SystemPrompt, item: &Item) -> String {
    let template = RequestTemplate::new(endpoint, "gpt-4o-mini", system);
    encoded(&template.request("items", 1, item).expect("a valid item"))
}

#[test]
fn chat_completions_without_system_prompt_or_settings() {
    assert_eq!(
        from_item(
            Endpoint::ChatCompletions,
            &SystemPrompt::None,
            &Item::new("req-1", "Hello")
        ),
        concat!(
            r#"{"custom_id":"req-1","method":"POST","url":"/v1/chat/completions","#,
            r#""body":{"messages":[{"content":"Hello","role":"user"}],"model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
}

#[test]
fn chat_completions_with_system_prompt_and_settings() {
    let item = Item::new("req-2", "Hello")
        .temperature(0.2)
        .max_tokens(100)
        .extra("response_format", json!({"type": "json_object"}));
    assert_eq!(
        from_item(
            Endpoint::ChatCompletions,
            &SystemPrompt::from("Be brief."),
            &item
        ),
        concat!(
            r#"{"custom_id":"req-2","method":"POST","url":"/v1/chat/completions","body":{"#,
            r#""max_tokens":100,"#,
            r#""messages":[{"content":"Be brief.","role":"system"},{"content":"Hello","role":"user"}],"#,
            r#""model":"gpt-4o-mini","response_format":{"type":"json_object"},"temperature":0.2}}"#,
            "\n"
        )
    );
}

#[test]
fn chat_completions_with_temperature_only() {
    let item = Item::new("req-3", "Hi").temperature(1.0);
    assert_eq!(
        from_item(Endpoint::ChatCompletions, &SystemPrompt::from("S"), &item),
        concat!(
            r#"{"custom_id":"req-3","method":"POST","url":"/v1/chat/completions","body":{"#,
            r#""messages":[{"content":"S","role":"system"},{"content":"Hi","role":"user"}],"#,
            r#""model":"gpt-4o-mini","temperature":1.0}}"#,
            "\n"
        )
    );
}

#[test]
fn responses() {
    let item = Item::new("r-1", "Summarize this.").max_tokens(50);
    assert_eq!(
        from_item(Endpoint::Responses, &SystemPrompt::from("Be brief."), &item),
        concat!(
            r#"{"custom_id":"r-1","method":"POST","url":"/v1/responses","body":{"#,
            r#""input":"Summarize this.","instructions":"Be brief.","max_output_tokens":50,"model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
    assert_eq!(
        from_item(
            Endpoint::Responses,
            &SystemPrompt::None,
            &Item::new("r-2", "Hi")
        ),
        concat!(
            r#"{"custom_id":"r-2","method":"POST","url":"/v1/responses","body":{"input":"Hi","model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
}

#[test]
fn embeddings_and_moderations_and_completions() {
    let none = SystemPrompt::None;
    assert_eq!(
        from_item(
            Endpoint::Embeddings,
            &none,
            &Item::new("e-1", "a cat").extra("dimensions", 256)
        ),
        concat!(
            r#"{"custom_id":"e-1","method":"POST","url":"/v1/embeddings","body":{"dimensions":256,"input":"a cat","model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
    assert_eq!(
        from_item(Endpoint::Moderations, &none, &Item::new("m-1", "text")),
        concat!(
            r#"{"custom_id":"m-1","method":"POST","url":"/v1/moderations","body":{"input":"text","model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
    assert_eq!(
        from_item(
            Endpoint::Completions,
            &none,
            &Item::new("c-1", "Once").max_tokens(5)
        ),
        concat!(
            r#"{"custom_id":"c-1","method":"POST","url":"/v1/completions","body":{"max_tokens":5,"model":"gpt-4o-mini","prompt":"Once"}}"#,
            "\n"
        )
    );
}

#[test]
fn raw_lines_are_written_compact_with_sorted_body_keys() {
    let input = br#"  { "url" : "/v1/images/generations", "body": {"prompt": "a fox", "model": "gpt-image-1", "size": "1024x1024", "n": 1}, "custom_id": "img-1" }  "#;
    let req = BatchRequest::parse_line("in.jsonl", 1, input).expect("a valid line");
    assert_eq!(
        encoded(&req),
        concat!(
            r#"{"custom_id":"img-1","method":"POST","url":"/v1/images/generations","#,
            r#""body":{"model":"gpt-image-1","n":1,"prompt":"a fox","size":"1024x1024"}}"#,
            "\n"
        )
    );
    // An endpoint this version does not know is kept as written.
    let input = br#"{"custom_id":"x","method":"POST","url":"/v1/audio/speech","body":{"nested":{"b":[{"z":1,"a":2}],"a":null}}}"#;
    let req = BatchRequest::parse_line("in.jsonl", 2, input).expect("a valid line");
    assert_eq!(
        encoded(&req),
        concat!(
            r#"{"custom_id":"x","method":"POST","url":"/v1/audio/speech","body":{"nested":{"a":null,"b":[{"a":2,"z":1}]}}}"#,
            "\n"
        )
    );
}

#[test]
fn numbers_keep_their_json_form() {
    let input = br#"{"custom_id":"n","url":"/v1/x","body":{"i":-3,"u":18446744073709551615,"f":0.1,"e":1e-7,"z":0.0}}"#;
    let req = BatchRequest::parse_line("in.jsonl", 1, input).expect("a valid line");
    assert_eq!(
        encoded(&req),
        concat!(
            r#"{"custom_id":"n","method":"POST","url":"/v1/x","body":{"e":1e-7,"f":0.1,"i":-3,"u":18446744073709551615,"z":0.0}}"#,
            "\n"
        )
    );
}

#[test]
fn escaping_of_quotes_backslashes_and_control_characters() {
    let message = "say \"hi\" \\ path C:\\dir\nnext\tline\r\u{0}\u{8}\u{c}\u{1f}\u{7f}";
    assert_eq!(
        from_item(
            Endpoint::Responses,
            &SystemPrompt::None,
            &Item::new("q\"\\", message)
        ),
        concat!(
            r#"{"custom_id":"q\"\\","method":"POST","url":"/v1/responses","body":{"#,
            r#""input":"say \"hi\" \\ path C:\\dir\nnext\tline\r\u0000\b\f\u001f"#,
            "\u{7f}",
            r#"","model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
}

#[test]
fn unicode_is_utf8_except_line_separators() {
    let message = "héllo 世界 😀 a\u{2028}b\u{2029}c\u{85}d";
    let line = from_item(
        Endpoint::Responses,
        &SystemPrompt::None,
        &Item::new("ü-1", message),
    );
    assert_eq!(
        line,
        concat!(
            r#"{"custom_id":"ü-1","method":"POST","url":"/v1/responses","body":{"#,
            r#""input":"héllo 世界 😀 a\u2028b\u2029c\u0085d","model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
    // Escaped, they still decode to the same text.
    let back = BatchRequest::parse_line("out", 1, line.as_bytes()).expect("parses back");
    assert_eq!(back.body["input"], json!(message));
}

#[test]
fn structured_prompt_compiled_text() {
    let prompt = StructuredPrompt::new()
        .role("a meticulous copy editor")
        .aim("Fix spelling and grammar without changing meaning.")
        .constraint("Keep the author's voice")
        .constraint("Do not add content")
        .tone("neutral")
        .output_format("The corrected text only.");
    let text = "You are a meticulous copy editor.\n\n\
                Aim: Fix spelling and grammar without changing meaning.\n\n\
                Constraints:\n- Keep the author's voice\n- Do not add content\n\n\
                Tone: neutral\n\n\
                Output format: The corrected text only.";
    assert_eq!(prompt.compile(), text);
    assert_eq!(
        SystemPrompt::from(prompt.clone()).compile().as_deref(),
        Some(text)
    );
    assert_eq!(
        from_item(
            Endpoint::ChatCompletions,
            &SystemPrompt::from(prompt),
            &Item::new("s-1", "teh cat")
        ),
        concat!(
            r#"{"custom_id":"s-1","method":"POST","url":"/v1/chat/completions","body":{"messages":["#,
            r#"{"content":"You are a meticulous copy editor.\n\nAim: Fix spelling and grammar without changing meaning.\n\n"#,
            r#"Constraints:\n- Keep the author's voice\n- Do not add content\n\nTone: neutral\n\n"#,
            r#"Output format: The corrected text only.","role":"system"},{"content":"teh cat","role":"user"}],"#,
            r#""model":"gpt-4o-mini"}}"#,
            "\n"
        )
    );
}

#[test]
fn structured_prompt_with_some_parts() {
    let prompt = StructuredPrompt::new()
        .role("a classifier.")
        .constraint("one label");
    assert_eq!(
        prompt.compile(),
        "You are a classifier.\n\nConstraints:\n- one label"
    );
}

#[test]
fn a_shard_of_items_through_the_encoder() -> Result<(), InputError> {
    let template = RequestTemplate::new(
        Endpoint::ChatCompletions,
        "gpt-4o-mini",
        &SystemPrompt::None,
    );
    let items = [
        Item::new("a", "one"),
        Item::new("b", "two").temperature(0.0),
    ];
    let mut enc = ShardEncoder::new(EncodeConfig::new("items", Endpoint::ChatCompletions));
    let mut out = Vec::new();
    for (n, req) in template.requests("items", &items) {
        enc.push(n, &req?, &mut out)?;
    }
    assert_eq!(
        String::from_utf8(out).expect("UTF-8"),
        concat!(
            r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"content":"one","role":"user"}],"model":"gpt-4o-mini"}}"#,
            "\n",
            r#"{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"content":"two","role":"user"}],"model":"gpt-4o-mini","temperature":0.0}}"#,
            "\n"
        )
    );
    Ok(())
}
