//! The one-step reading of a result: `JobResult`'s status, shortcuts,
//! `parse::<T>()` and error, on result lines as the Batch API writes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batch_core::job::{
    JobOutcome, JobResult, NotProcessed, ParseErrorKind, ResultError, ResultStatus,
};
use batch_core::results::{FinishReason, parse_result_line};
use serde::Deserialize;
use serde_json::{Value, json};

/// A result as the job delivers it for a result line, the way the job
/// sorts lines into outcomes (`batch_expired` / `batch_cancelled` lines are
/// not processed, other failures failed).
fn from_line(line: &Value) -> JobResult {
    let rec = parse_result_line(1, line.to_string().as_bytes()).expect("a valid line");
    let custom_id = rec.custom_id.clone();
    let (outcome, server_line) = match rec.failure() {
        None => (JobOutcome::Succeeded(Box::new(rec)), None),
        Some(f) if f.is_not_processed() => (
            JobOutcome::NotProcessed(NotProcessed {
                code: f.code.clone().unwrap_or_default(),
                message: f.message.clone().unwrap_or_default(),
            }),
            Some(Box::new(rec)),
        ),
        Some(_) => (JobOutcome::Failed(Box::new(rec)), None),
    };
    JobResult {
        index: 0,
        shard: 0,
        batch_id: Some("batch_1".into()),
        custom_id,
        outcome,
        server_line,
    }
}

fn not_processed(code: &str, message: &str) -> JobResult {
    JobResult {
        index: 3,
        shard: 0,
        batch_id: None,
        custom_id: "q3".into(),
        outcome: JobOutcome::NotProcessed(NotProcessed {
            code: code.into(),
            message: message.into(),
        }),
        server_line: None,
    }
}

fn chat_line(custom_id: &str, message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "batch_req_1",
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": "req_1",
            "body": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": {
                    "prompt_tokens": 21,
                    "completion_tokens": 9,
                    "total_tokens": 30,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 0}
                }
            }
        },
        "error": null
    })
}

#[derive(Debug, Deserialize, PartialEq)]
struct Verdict {
    label: String,
    score: f64,
}

#[test]
fn a_success_reads_in_one_step() {
    let fenced = "```json\n{\"label\": \"spam\", \"score\": 0.9}\n```";
    let r = from_line(&chat_line(
        "q1",
        json!({"role": "assistant", "content": fenced, "refusal": null}),
        "stop",
    ));
    assert_eq!(r.custom_id(), "q1");
    assert!(r.is_success());
    assert!(r.is_final());
    assert_eq!(
        r.status(),
        ResultStatus::Succeeded {
            content: Some(fenced)
        }
    );
    assert_eq!(r.content(), Some(fenced));
    assert_eq!(
        r.content_unfenced(),
        Some("{\"label\": \"spam\", \"score\": 0.9}")
    );
    assert_eq!(r.json(), Some(&json!({"label": "spam", "score": 0.9})));
    assert_eq!(
        r.parse::<Verdict>().expect("parses"),
        Verdict {
            label: "spam".into(),
            score: 0.9
        }
    );
    assert_eq!(r.finish_reason(), Some(&FinishReason::Stop));
    let usage = r.usage().expect("usage");
    assert_eq!(usage.input_tokens, Some(21));
    assert_eq!(usage.output_tokens, Some(9));
    assert_eq!(usage.total_tokens, Some(30));
    assert_eq!(usage.cached_tokens, Some(4));
    assert!(r.tool_calls().is_empty());
    assert_eq!(r.refusal(), None);
    assert_eq!(r.error(), None);
    assert_eq!(r.embeddings(), None);
}

#[test]
fn parse_says_why_and_names_the_custom_id() {
    // Plain text: not JSON.
    let text = from_line(&chat_line(
        "plain",
        json!({"role": "assistant", "content": "Spam, I think."}),
        "stop",
    ));
    let e = text.parse::<Verdict>().expect_err("not JSON");
    assert_eq!(e.custom_id, "plain");
    assert!(matches!(e.kind, ParseErrorKind::NotJson(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("result \"plain\": the reply is not JSON: "),
        "{e}"
    );
    assert_eq!(text.json(), None);

    // JSON of another shape: does not match the type.
    let other = from_line(&chat_line(
        "shape",
        json!({"role": "assistant", "content": "{\"label\": \"spam\"}"}),
        "stop",
    ));
    let e = other.parse::<Verdict>().expect_err("no score");
    assert!(
        matches!(&e.kind, ParseErrorKind::Mismatch(m) if m.contains("score")),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not match the type"), "{e}");
    // ... but reads as JSON, and into a type that fits.
    assert_eq!(other.json(), Some(&json!({"label": "spam"})));
    assert_eq!(
        other.parse::<Value>().expect("any JSON"),
        json!({"label": "spam"})
    );

    // Cut off by the token limit: the JSON is incomplete.
    let cut = from_line(&chat_line(
        "cut",
        json!({"role": "assistant", "content": "{\"label\": \"sp"}),
        "length",
    ));
    assert!(matches!(
        cut.parse::<Verdict>().expect_err("cut").kind,
        ParseErrorKind::NotJson(_)
    ));
    assert_eq!(cut.finish_reason(), Some(&FinishReason::Length));

    // Only tool calls: no text.
    let tools = from_line(&chat_line(
        "tools",
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"rust\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"serde\"}"}}
        ]}),
        "tool_calls",
    ));
    assert_eq!(tools.content(), None);
    assert_eq!(
        tools.parse::<Verdict>().expect_err("no text").kind,
        ParseErrorKind::NoContent
    );
    let calls = tools.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id.as_deref(), Some("call_1"));
    assert_eq!(calls[0].name, "lookup");
    assert_eq!(calls[1].arguments, "{\"q\":\"serde\"}");

    // A refusal: no text, the refusal instead.
    let refused = from_line(&chat_line(
        "refused",
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        "stop",
    ));
    assert_eq!(refused.refusal(), Some("I can't help with that."));
    assert_eq!(
        refused.parse::<Verdict>().expect_err("refused").kind,
        ParseErrorKind::NoContent
    );
}

#[test]
fn a_failure_gives_its_code_message_and_status() {
    let r = from_line(&json!({
        "id": "batch_req_2",
        "custom_id": "bad-model",
        "response": {
            "status_code": 404,
            "request_id": "req_2",
            "body": {"error": {
                "message": "The model `gpt-5-nano-x` does not exist.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found"
            }}
        },
        "error": null
    }));
    assert!(!r.is_success());
    assert!(r.is_final());
    let message = "The model `gpt-5-nano-x` does not exist.";
    assert_eq!(
        r.status(),
        ResultStatus::Failed {
            code: Some("model_not_found"),
            message: Some(message),
            status_code: Some(404),
        }
    );
    let e = r.error().expect("an error");
    assert_eq!(e.code, Some("model_not_found"));
    assert_eq!(e.message, Some(message));
    assert_eq!(e.status_code, Some(404));
    assert!(e.processed);
    assert_eq!(
        e.to_string(),
        format!("status 404: model_not_found: {message}")
    );
    assert_eq!(r.content(), None);
    assert_eq!(r.usage(), None);
    assert_eq!(r.finish_reason(), None);
    let p = r.parse::<Verdict>().expect_err("failed");
    assert_eq!(
        p.kind,
        ParseErrorKind::NotSucceeded(format!("it failed: model_not_found: {message}"))
    );

    // A 5xx without a code.
    let r = from_line(&json!({
        "custom_id": "flaky",
        "response": {"status_code": 500, "body": {"error": {"message": "The server had an error.", "type": "server_error", "code": null}}}
    }));
    let e = r.error().expect("an error");
    assert_eq!(e.code, None);
    assert_eq!(e.to_string(), "status 500: The server had an error.");
}

#[test]
fn not_processed_results_carry_their_code_and_finality() {
    // From the server's line for an expired batch.
    let r = from_line(&json!({
        "id": "batch_req_3",
        "custom_id": "late",
        "response": null,
        "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}
    }));
    assert_eq!(
        r.status(),
        ResultStatus::NotProcessed {
            code: "batch_expired",
            message: "This request could not be executed before the completion window expired.",
            is_final: true,
        }
    );
    assert!(r.is_final());
    assert_eq!(
        r.result_line().and_then(|l| l.id.as_deref()),
        Some("batch_req_3")
    );

    // Made up by the job: provisional and final codes.
    for code in NotProcessed::PROVISIONAL {
        let r = not_processed(code, "stopped waiting");
        assert!(!r.is_final(), "{code}");
        assert!(matches!(
            r.status(),
            ResultStatus::NotProcessed {
                is_final: false,
                ..
            }
        ));
    }
    for code in [
        "missing_result",
        "upload_failed",
        "job_cancelled",
        "token_limit_exceeded",
    ] {
        let r = not_processed(code, "done");
        assert!(r.is_final(), "{code}");
    }
    let r = not_processed("timed_out", "stopped waiting after the maximum wait");
    let e: ResultError<'_> = r.error().expect("an error");
    assert_eq!(e.code, Some("timed_out"));
    assert_eq!(e.message, Some("stopped waiting after the maximum wait"));
    assert_eq!(e.status_code, None);
    assert!(!e.processed);
    assert_eq!(
        r.error().expect("error").to_string(),
        "timed_out: stopped waiting after the maximum wait"
    );
    assert_eq!(r.content(), None);
    assert!(r.tool_calls().is_empty());
    let e = r.parse::<Verdict>().expect_err("not processed");
    assert_eq!(
        e.to_string(),
        "result \"q3\": there is no reply to parse: it was not processed: timed_out: stopped waiting after the maximum wait"
    );
}

#[test]
fn responses_and_embeddings_bodies() {
    let r = from_line(&json!({
        "custom_id": "resp",
        "response": {"status_code": 200, "body": {
            "object": "response",
            "status": "completed",
            "output": [
                {"type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": "{}"},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "{\"label\":\"ham\","},
                    {"type": "output_text", "text": "\"score\":0.1}"}
                ]}
            ],
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
        }}
    }));
    assert_eq!(
        r.parse::<Verdict>().expect("joined output_text"),
        Verdict {
            label: "ham".into(),
            score: 0.1
        }
    );
    assert_eq!(r.usage().and_then(|u| u.output_tokens), Some(7));
    assert_eq!(r.tool_calls().len(), 1);
    assert_eq!(r.tool_calls()[0].id.as_deref(), Some("call_9"));

    let r = from_line(&json!({
        "custom_id": "emb",
        "response": {"status_code": 200, "body": {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
                {"object": "embedding", "index": 0, "embedding": [1.0, -1.0]}
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        }}
    }));
    assert_eq!(r.embeddings(), Some(vec![vec![1.0, -1.0], vec![0.5, 0.25]]));
    assert_eq!(r.content(), None);
    assert_eq!(r.usage().and_then(|u| u.input_tokens), Some(4));
}

/// Every not-processed code the job can emit is in the table on
/// `ResultStatus`, and the provisional ones are marked as not final.
#[test]
fn every_code_the_job_emits_is_documented() {
    let job = include_str!("../src/job/mod.rs");
    let types = include_str!("../src/job/types.rs");
    let table: Vec<&str> = types
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("/// | `"))
        .collect();
    let row = |code: &str| {
        table
            .iter()
            .find(|l| l.starts_with(&format!("/// | `{code}` |")))
            .copied()
    };
    // Codes passed to `begin_finishing` or written as `code: "..."`.
    let mut emitted = Vec::new();
    for marker in ["begin_finishing(", "code: \""] {
        for (at, _) in job.match_indices(marker) {
            let rest = &job[at + marker.len() - usize::from(marker.ends_with('"'))..];
            let call = &rest[..rest.find(';').unwrap_or(rest.len())];
            if let Some(start) = call.find('"') {
                let lit = &call[start + 1..];
                let code = &lit[..lit.find('"').unwrap_or(0)];
                if !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    emitted.push(code.to_owned());
                }
            }
        }
    }
    // The codes chosen by batch status, and the fallbacks.
    for code in [
        "batch_expired",
        "batch_cancelled",
        "batch_failed",
        "token_limit_exceeded",
        "missing_result",
        "not_processed",
    ] {
        assert!(
            job.contains(&format!("\"{code}\"")),
            "{code} is no longer in job/mod.rs"
        );
        emitted.push(code.to_owned());
    }
    for code in [
        "job_cancelled",
        "job_stopped",
        "timed_out",
        "gave_up",
        "upload_failed",
        "create_failed",
        "batch_unavailable",
        "unreadable_result",
    ] {
        assert!(
            emitted.iter().any(|c| c == code),
            "the scan missed {code}: {emitted:?}"
        );
    }
    for code in &emitted {
        let row =
            row(code).unwrap_or_else(|| panic!("`{code}` is not in the table on ResultStatus"));
        let provisional = NotProcessed::PROVISIONAL.contains(&code.as_str());
        let marked = if provisional { "| no |" } else { "| yes |" };
        assert!(row.contains(marked), "{code}: {row}");
    }
}
