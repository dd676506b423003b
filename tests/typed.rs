//! Typed requests through both transports: chat with a `json_schema`
//! response format read back with `parse::<T>()`, the Responses API with
//! `text.format`, and embeddings, each one batch on the emulator.

use batch_core::Endpoint;
use batch_core::input::{
    BatchRequest, ChatRequest, EmbeddingsRequest, EncodingFormat, JsonSchema, ResponseFormat,
    ResponsesRequest,
};
use batch_core::job::{JobResult, ParseErrorKind, ResultStatus};
use batch_core::results::FinishReason;
use serde::Deserialize;
use serde_json::json;

use crate::common::*;

/// What the emulator answers to a request asking for JSON: the user's text
/// and its word count.
#[derive(Debug, Deserialize, PartialEq)]
struct Echo {
    echo: String,
    words: u64,
}

fn echo_format() -> ResponseFormat {
    let schema = json!({
        "type": "object",
        "properties": {"echo": {"type": "string"}, "words": {"type": "integer"}},
        "required": ["echo", "words"],
        "additionalProperties": false
    });
    ResponseFormat::json_schema(JsonSchema::new("echo", schema).strict(true))
}

#[test]
fn typed_chat_with_a_json_schema_reads_back_with_parse() {
    let base = ChatRequest::new("", MODEL)
        .system(SYSTEM)
        .temperature(0.0)
        .response_format(echo_format());
    let requests: Vec<BatchRequest> = (0..40)
        .map(|i| {
            let text = match i % 10 {
                // The model fences its JSON: parse removes the fence.
                3 => format!("fenced question {i} [[emulator:json]]"),
                // The request fails.
                7 => format!("question {i} [[emulator:fail=404]]"),
                _ => format!("question number {i}"),
            };
            let mut req = base.clone().custom_id(format!("chat-{i:02}")).user(text);
            if i % 10 == 9 {
                // A token limit cuts the JSON short.
                req = req.max_completion_tokens(3);
            }
            req.build().expect("valid request")
        })
        .collect();
    let outcomes = both(&Setup::default(), |t, _emu| {
        let mut job = t
            .submit_requests(&requests, &options(25, 2))
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        t.get_results(&mut job)
            .unwrap_or_else(|e| panic!("{}: results: {e:?}", t.name()))
    });
    for (t, results) in ["blocking", "async"].iter().zip(&outcomes) {
        assert_eq!(results.len(), 40, "{t}");
        for (i, r) in results.iter().enumerate() {
            let id = format!("chat-{i:02}");
            assert_eq!(r.custom_id(), id, "{t}");
            match i % 10 {
                7 => {
                    assert!(!r.is_success(), "{t}: {id}");
                    let e = r.error().expect("an error");
                    assert_eq!(
                        (e.code, e.status_code),
                        (Some("model_not_found"), Some(404)),
                        "{t}: {id}"
                    );
                    assert!(e.processed, "{t}: {id}");
                    assert!(
                        matches!(r.status(), ResultStatus::Failed { .. }),
                        "{t}: {id}"
                    );
                    let p = r.parse::<Echo>().expect_err("failed");
                    assert!(
                        matches!(p.kind, ParseErrorKind::NotSucceeded(_)),
                        "{t}: {p}"
                    );
                }
                9 => {
                    assert_eq!(r.finish_reason(), Some(&FinishReason::Length), "{t}: {id}");
                    let p = r.parse::<Echo>().expect_err("cut short");
                    assert_eq!(p.custom_id, id, "{t}");
                    assert!(matches!(p.kind, ParseErrorKind::NotJson(_)), "{t}: {p}");
                }
                n => {
                    let echo: Echo = r
                        .parse()
                        .unwrap_or_else(|e| panic!("{t}: {e}; content {:?}", r.content()));
                    let expected = if n == 3 {
                        format!("fenced question {i}")
                    } else {
                        format!("question number {i}")
                    };
                    assert_eq!(
                        echo,
                        Echo {
                            echo: expected,
                            words: 3
                        },
                        "{t}: {id}"
                    );
                    assert_eq!(
                        r.content().map(|c| c.starts_with("```")),
                        Some(n == 3),
                        "{t}: {id}"
                    );
                    assert_eq!(
                        r.json(),
                        Some(&json!({"echo": echo.echo, "words": 3})),
                        "{t}"
                    );
                    assert_eq!(r.finish_reason(), Some(&FinishReason::Stop), "{t}: {id}");
                    let usage = r.usage().expect("usage");
                    assert!(usage.input_tokens.unwrap_or(0) > 0, "{t}: {usage:?}");
                    assert!(r.tool_calls().is_empty(), "{t}");
                    assert_eq!(r.error(), None, "{t}");
                }
            }
        }
    }
    assert_eq!(
        canonical(&outcomes[0]),
        canonical(&outcomes[1]),
        "the transports' results differ"
    );
}

#[test]
fn typed_responses_and_embeddings_round_trip() {
    let responses: Vec<BatchRequest> = (0..10)
        .map(|i| {
            ResponsesRequest::new(format!("resp-{i}"), "gpt-4.1-mini")
                .instructions(SYSTEM)
                .input(format!("tell me {i}"))
                .max_output_tokens(200)
                .text_format(echo_format())
                .build()
                .expect("valid")
        })
        .collect();
    let embeddings: Vec<BatchRequest> = (0..10)
        .map(|i| {
            EmbeddingsRequest::new(
                format!("emb-{i}"),
                "text-embedding-3-small",
                vec![format!("a {i}"), format!("b {i}")],
            )
            .dimensions(8)
            .encoding_format(if i % 2 == 0 {
                EncodingFormat::Float
            } else {
                EncodingFormat::Base64
            })
            .build()
            .expect("valid")
        })
        .collect();
    let outcomes = both(&Setup::default(), |t, _emu| {
        let mut job = t
            .submit_requests(&responses, &options(100, 1).endpoint(Endpoint::Responses))
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        let r = t.get_results(&mut job).expect("responses results");
        let mut opts = options(100, 1).endpoint(Endpoint::Embeddings);
        opts.model = "text-embedding-3-small".into();
        let mut job = t
            .submit_requests(&embeddings, &opts)
            .unwrap_or_else(|e| panic!("{}: submit: {e:?}", t.name()));
        let e = t.get_results(&mut job).expect("embeddings results");
        (r, e)
    });
    for (t, (responses, embeddings)) in ["blocking", "async"].iter().zip(&outcomes) {
        assert_eq!(responses.len(), 10, "{t}");
        for (i, r) in responses.iter().enumerate() {
            let echo: Echo = r.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(
                echo,
                Echo {
                    echo: format!("tell me {i}"),
                    words: 3
                },
                "{t}"
            );
            assert_eq!(r.finish_reason(), Some(&FinishReason::Stop), "{t}");
        }
        assert_eq!(embeddings.len(), 10, "{t}");
        for r in embeddings {
            let vectors = vectors_of(r);
            assert_eq!(vectors.len(), 2, "{t}: {}", r.custom_id());
            assert!(vectors.iter().all(|v| v.len() == 8), "{t}: {vectors:?}");
            assert_eq!(r.content(), None, "{t}");
        }
    }
}

fn vectors_of(r: &JobResult) -> Vec<Vec<f32>> {
    r.embeddings()
        .unwrap_or_else(|| panic!("{}: no vectors in {:?}", r.custom_id(), r.status()))
}
