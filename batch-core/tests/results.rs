//! Result parsing on realistic output and error files (tests/fixtures/).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use batch_core::results::{
    BadLineKind, BodyKind, FinishReason, ResultEvent, ResultRecord, ResultStream, ToolCall,
};
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Feeds a whole file at once and collects every event.
fn events(name: &str) -> Vec<ResultEvent> {
    let bytes = fixture(name);
    let mut stream = ResultStream::new(1 << 20);
    let mut out: Vec<ResultEvent> = stream.feed(&bytes).collect();
    out.extend(stream.finish());
    out
}

/// Every event must be a record; returns them.
fn records(name: &str) -> Vec<ResultRecord> {
    events(name)
        .into_iter()
        .map(|ev| match ev {
            ResultEvent::Record(r) => r,
            other => panic!("{name}: unexpected {other:?}"),
        })
        .collect()
}

fn by_id<'a>(records: &'a [ResultRecord], id: &str) -> &'a ResultRecord {
    records
        .iter()
        .find(|r| r.custom_id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn chat_output_plain_content() {
    let recs = records("chat_output.jsonl");
    assert_eq!(recs.len(), 7);
    assert_eq!(
        recs.iter().map(|r| r.line).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    let r = by_id(&recs, "plain-1");
    let s = r.success().expect("success");
    assert_eq!(
        r.id.as_deref(),
        Some("batch_req_67d1a2f3c4e88190a1b2c3d4e5f6a001")
    );
    assert_eq!(s.status_code, Some(200));
    assert_eq!(
        s.request_id.as_deref(),
        Some("018c6f0e4e2b5d1a7f9e3c2b1a0d9e8f")
    );
    assert_eq!(s.kind(), BodyKind::ChatCompletion);
    assert_eq!(s.model(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(r.content(), Some("The capital of France is Paris."));
    assert_eq!(
        s.content_unfenced(),
        Some("The capital of France is Paris.")
    );
    assert_eq!(r.json(), None);
    assert_eq!(s.finish_reason().cloned(), Some(FinishReason::Stop));
    let u = s.usage.expect("usage");
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.cached_tokens
        ),
        (Some(24), Some(8), Some(32), Some(0))
    );
    // The body is kept whole, and the raw line is the exact bytes of line 1.
    assert_eq!(s.body()["system_fingerprint"], json!("fp_06737a9306"));
    let file = fixture("chat_output.jsonl");
    let first_line = file.split(|&b| b == b'\n').next().expect("line 1");
    assert_eq!(r.raw.as_bytes(), first_line);
}

#[test]
fn chat_output_fenced_json_content() {
    let recs = records("chat_output.jsonl");
    let r = by_id(&recs, "fenced-json-2");
    let s = r.success().expect("success");
    assert!(r.content().expect("content").starts_with("```json\n"));
    assert_eq!(
        s.content_unfenced(),
        Some(r#"{"sentiment": "positive", "score": 0.92, "tags": ["food", "service"]}"#)
    );
    assert_eq!(
        r.json(),
        Some(&json!({"sentiment": "positive", "score": 0.92, "tags": ["food", "service"]}))
    );
    assert_eq!(s.usage.and_then(|u| u.cached_tokens), Some(32));
}

#[test]
fn chat_output_tool_calls() {
    let recs = records("chat_output.jsonl");
    let r = by_id(&recs, "tool-call-3");
    let s = r.success().expect("success");
    assert_eq!(r.content(), None);
    let Some(FinishReason::ToolCalls(calls)) = s.finish_reason() else {
        panic!("finish reason {:?}", s.finish_reason())
    };
    let names: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|c: &ToolCall| {
            (
                c.id.as_deref().unwrap_or(""),
                c.name.as_str(),
                c.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "call_Qz1xY2wV3uT4",
                "get_weather",
                r#"{"city": "Zürich", "unit": "celsius"}"#
            ),
            (
                "call_Ab5cD6eF7gH8",
                "get_time",
                r#"{"tz": "Europe/Zurich"}"#
            ),
        ]
    );
    let chat = r.chat_completion().expect("typed chat completion");
    let msg = chat.first_message().expect("message");
    assert_eq!(msg.tool_calls.len(), 2);
    assert_eq!(msg.tool_calls[0].kind.as_deref(), Some("function"));
    assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn chat_output_length_and_content_filter() {
    let recs = records("chat_output.jsonl");
    let r = by_id(&recs, "length-4");
    assert_eq!(
        r.success().and_then(|s| s.finish_reason().cloned()),
        Some(FinishReason::Length)
    );
    assert!(r.content().expect("content").ends_with("there lived a"));
    let r = by_id(&recs, "filtered-5");
    assert_eq!(
        r.success().and_then(|s| s.finish_reason().cloned()),
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(r.content(), Some(""));
    assert_eq!(r.json(), None);
}

#[test]
fn chat_output_unicode_and_escapes() {
    let recs = records("chat_output.jsonl");
    let r = by_id(&recs, "unicode-6");
    assert_eq!(
        r.content(),
        Some("Grüße aus München 🍺 — \"quoted\" and \\backslash\\")
    );
}

#[test]
fn unknown_extra_fields_are_ignored_but_kept_in_the_body() {
    let recs = records("chat_output.jsonl");
    let r = by_id(&recs, "extra-fields-7");
    let s = r.success().expect("success");
    assert_eq!(s.content_unfenced(), Some("[1, 2, 3]"));
    assert_eq!(r.json(), Some(&json!([1, 2, 3])));
    assert_eq!(s.finish_reason().cloned(), Some(FinishReason::Stop));
    assert_eq!(s.body()["brand_new_top_level"], json!({"nested": true}));
    let chat = r
        .chat_completion()
        .expect("typed view ignores unknown fields");
    assert_eq!(chat.choices.len(), 1);
    assert!(r.raw.contains("\"line_level_addition\": 42"));
}

#[test]
fn crlf_file_gives_the_same_records_as_lf() {
    let lf = records("chat_output.jsonl");
    let crlf = records("chat_output_crlf.jsonl");
    assert_eq!(lf, crlf);
    assert!(crlf.iter().all(|r| !r.raw.ends_with('\r')));
}

#[test]
fn responses_api_output() {
    let recs = records("responses_output.jsonl");
    assert_eq!(recs.len(), 4);
    let r = by_id(&recs, "resp-text-1");
    let s = r.success().expect("success");
    assert_eq!(s.kind(), BodyKind::Responses);
    assert_eq!(s.model(), Some("gpt-5-mini-2025-08-07"));
    assert_eq!(r.content(), Some("{\"answer\": 42}"));
    assert_eq!(r.json(), Some(&json!({"answer": 42})));
    assert_eq!(s.finish_reason().cloned(), Some(FinishReason::Stop));
    let u = s.usage.expect("usage");
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.total_tokens,
            u.reasoning_tokens
        ),
        (Some(30), Some(120), Some(150), Some(100))
    );
    let body = r.responses_body().expect("typed");
    assert_eq!(body.output.len(), 2);
    assert_eq!(body.output_text().as_deref(), Some("{\"answer\": 42}"));
    assert!(r.chat_completion().is_none());

    let r = by_id(&recs, "resp-incomplete-2");
    assert_eq!(
        r.success().and_then(|s| s.finish_reason().cloned()),
        Some(FinishReason::Length)
    );
    assert_eq!(r.content(), None);
    let r = by_id(&recs, "resp-tool-3");
    assert_eq!(
        r.success().and_then(|s| s.finish_reason().cloned()),
        Some(FinishReason::ToolCalls(vec![ToolCall::new(
            Some("call_R9s8T7".into()),
            "search",
            "{\"q\": \"batch api\"}",
        )]))
    );
    let r = by_id(&recs, "resp-filtered-4");
    assert_eq!(
        r.success().and_then(|s| s.finish_reason().cloned()),
        Some(FinishReason::ContentFilter)
    );
}

#[test]
fn embeddings_output() {
    let recs = records("embeddings_output.jsonl");
    let r = by_id(&recs, "emb-float-1");
    let s = r.success().expect("success");
    assert_eq!(s.kind(), BodyKind::Embeddings);
    assert_eq!((r.content(), s.finish_reason()), (None, None));
    assert_eq!(s.usage.and_then(|u| u.input_tokens), Some(8));
    let e = r.embeddings().expect("typed");
    assert_eq!(e.model.as_deref(), Some("text-embedding-3-small"));
    let v = e.vectors().expect("vectors");
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0],
        [
            0.002_306_425_5_f32,
            -0.009_327_292,
            0.015_797_347,
            -0.007_778_034_5
        ]
    );
    let r = by_id(&recs, "emb-b64-2");
    let v = r.embeddings().and_then(|e| e.vectors()).expect("vectors");
    assert_eq!(v, [vec![0.5_f32, -0.25, 1.0, 0.0]]);
}

#[test]
fn error_file_keeps_the_servers_words() {
    let recs = records("errors.jsonl");
    assert_eq!(recs.len(), 5);
    assert!(recs.iter().all(|r| !r.is_success()));

    let f = by_id(&recs, "bad-model-1").failure().expect("failure");
    assert_eq!(f.status_code, Some(400));
    assert_eq!(f.error_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(f.code.as_deref(), Some("model_not_found"));
    assert_eq!(f.param, None);
    assert_eq!(
        f.message.as_deref(),
        Some("The model `gpt-4o-mini-typo` does not exist or you do not have access to it.")
    );
    assert!(!f.is_not_processed());
    assert_eq!(
        f.to_string(),
        "status 400, invalid_request_error, code model_not_found: The model `gpt-4o-mini-typo` does not exist or you do not have access to it."
    );

    let f = by_id(&recs, "bad-param-2").failure().expect("failure");
    assert_eq!(
        (f.param.as_deref(), f.code.as_deref()),
        (Some("max_tokens"), Some("invalid_type"))
    );
    assert!(f.body.is_some());

    let f = by_id(&recs, "rate-limited-5").failure().expect("failure");
    assert_eq!(
        (f.status_code, f.code.as_deref()),
        (Some(429), Some("rate_limit_exceeded"))
    );
}

#[test]
fn expired_and_cancelled_lines_are_not_processed() {
    let recs = records("errors.jsonl");
    for (id, code) in [
        ("expired-3", "batch_expired"),
        ("cancelled-4", "batch_cancelled"),
    ] {
        let r = by_id(&recs, id);
        let f = r.failure().expect("failure");
        assert!(f.is_not_processed(), "{id}");
        assert_eq!(f.status_code, None);
        assert_eq!(f.request_id, None);
        assert_eq!(f.code.as_deref(), Some(code));
        assert!(
            f.message
                .as_deref()
                .is_some_and(|m| m.starts_with("This request"))
        );
    }
}

#[test]
fn damaged_download_reports_bad_lines_and_truncation_and_goes_on() {
    let evs = events("damaged_truncated.jsonl");
    assert_eq!(evs.len(), 5, "{evs:#?}");
    assert!(matches!(&evs[0], ResultEvent::Record(r) if r.custom_id == "plain-1" && r.line == 1));
    // Line 2 is blank: skipped, but counted.
    let ResultEvent::BadLine(bad) = &evs[1] else {
        panic!("{:?}", evs[1])
    };
    assert_eq!((bad.line, bad.kind), (3, BadLineKind::NotJson));
    assert_eq!(bad.custom_id.as_deref(), Some("garbled-3"));
    let ResultEvent::BadLine(bad) = &evs[2] else {
        panic!("{:?}", evs[2])
    };
    assert_eq!(
        (bad.line, bad.kind, bad.custom_id.as_deref()),
        (4, BadLineKind::NotJson, None)
    );
    assert!(
        bad.error.starts_with("invalid JSON at column 1:"),
        "{}",
        bad.error
    );
    // The line after the garbage is read as normal.
    assert!(matches!(&evs[3], ResultEvent::Record(r) if r.custom_id == "length-4" && r.line == 5));
    let ResultEvent::Truncated {
        line,
        len,
        custom_id,
    } = &evs[4]
    else {
        panic!("{:?}", evs[4])
    };
    assert_eq!((*line, custom_id.as_deref()), (6, Some("fenced-json-2")));
    let file = fixture("damaged_truncated.jsonl");
    let last_newline = file.iter().rposition(|&b| b == b'\n').expect("newline");
    assert_eq!(*len as usize, file.len() - last_newline - 1);
}

#[test]
fn truncated_file_resumes_from_the_last_complete_line() {
    let full = fixture("chat_output.jsonl");
    let whole = events("chat_output.jsonl");
    let cut = full.len() - 100;
    let mut stream = ResultStream::new(1 << 20);
    let mut got: Vec<ResultEvent> = stream.feed(&full[..cut]).collect();
    let truncated: Vec<ResultEvent> = stream.finish().collect();
    assert!(
        matches!(truncated[..], [ResultEvent::Truncated { line: 7, .. }]),
        "{truncated:?}"
    );
    // Fetch the rest from the offset the decoder gives, as a Range request would.
    let from = usize::try_from(stream.decoder().complete_bytes()).expect("offset");
    assert_eq!(full[from - 1], b'\n');
    got.extend(stream.feed(&full[from..]));
    got.extend(stream.finish());
    assert_eq!(got, whole);
}
