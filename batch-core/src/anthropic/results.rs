//! Result lines of a Message Batch, parsed into the same [`ResultRecord`]
//! an OpenAI result line becomes, so a `JobResult` reads the same whatever
//! the protocol.
//!
//! See [`parse_result_line`].

use std::sync::Arc;

use serde_json::Value;

use crate::results::{
    BadLine, BadLineKind, Failure, Outcome, ResultRecord, Success, salvage_custom_id,
};

/// The code of a request the batch canceled before it ran (as OpenAI's).
pub const CANCELED_CODE: &str = "batch_cancelled";
/// The code of a request the batch did not run in its window (as OpenAI's).
pub const EXPIRED_CODE: &str = "batch_expired";

/// Parses one line of a Message Batch's results (without its terminator);
/// `line` is its 1-based number. Never panics.
///
/// A line is `{"custom_id":"..","result":{"type":..}}` with one of
/// (<https://docs.anthropic.com/en/api/retrieving-message-batch-results>):
///
/// | `result.type` | outcome |
/// | --- | --- |
/// | `succeeded` | [`Outcome::Succeeded`] whose body is `result.message` (its text, tool use blocks, `stop_reason` and usage, cache tokens included, read by [`Success`](crate::results::Success)'s accessors) |
/// | `errored` | [`Outcome::Failed`] with the error's `type` and `message` (`result.error.error`) |
/// | `canceled` | [`Outcome::Failed`] with code `batch_cancelled`: reported as not processed |
/// | `expired` | [`Outcome::Failed`] with code `batch_expired`: reported as not processed |
///
/// A line that is not UTF-8 or JSON, has no string `custom_id`, or no
/// known `result.type`, is a [`BadLine`] naming its line and whatever
/// `custom_id` could be salvaged.
///
/// # Errors
/// A [`BadLine`] as described above.
pub fn parse_result_line(line: u64, bytes: &[u8]) -> Result<ResultRecord, BadLine> {
    let bad = |kind, error: String| BadLine {
        line,
        custom_id: salvage_custom_id(bytes),
        kind,
        error,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        bad(
            BadLineKind::NotUtf8,
            format!("not valid UTF-8 (at byte {})", e.valid_up_to() + 1),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        bad(
            BadLineKind::NotJson,
            format!("not valid JSON: {e} (column {})", e.column()),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(bad(
            BadLineKind::NotAnObject,
            "expected a JSON object".into(),
        ));
    };
    let Some(Value::String(custom_id)) = obj.remove("custom_id") else {
        return Err(bad(
            BadLineKind::NoCustomId,
            "the line has no string `custom_id`".into(),
        ));
    };
    let bad_field = |error: &str| BadLine {
        line,
        custom_id: Some(custom_id.clone()),
        kind: BadLineKind::BadField,
        error: error.to_owned(),
    };
    let Some(Value::Object(mut result)) = obj.remove("result") else {
        return Err(bad_field("`result` is missing or not an object"));
    };
    let kind = result.get("type").and_then(Value::as_str).unwrap_or("");
    let raw: Arc<str> = Arc::from(text);
    let not_run = |code: &str, message: &str| {
        Outcome::Failed(Failure {
            error_type: Some(kind.to_owned()),
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
            ..Failure::default()
        })
    };
    let outcome = match kind {
        "succeeded" => {
            let Some(message @ Value::Object(_)) = result.remove("message") else {
                return Err(bad_field("a succeeded `result` has no `message` object"));
            };
            Outcome::Succeeded(Success::from_body(None, None, message, Arc::clone(&raw)))
        }
        "errored" => {
            // `{"type":"errored","error":{"type":"error","error":{"type":..,"message":..}}}`;
            // an error object without the envelope is read as well.
            let err = result.remove("error").unwrap_or(Value::Null);
            let inner = match err.get("error") {
                Some(inner @ Value::Object(_)) => inner.clone(),
                _ => err.clone(),
            };
            let text = |key: &str| inner.get(key).and_then(Value::as_str).map(str::to_owned);
            Outcome::Failed(Failure {
                error_type: text("type"),
                message: text("message"),
                body: Some(err),
                ..Failure::default()
            })
        }
        "canceled" => not_run(
            CANCELED_CODE,
            "the request was canceled before it was processed",
        ),
        "expired" => not_run(
            EXPIRED_CODE,
            "the batch reached its 24-hour limit before the request was processed",
        ),
        other => {
            return Err(bad_field(&format!(
                "unknown `result.type` {other:?} (expected succeeded, errored, canceled or expired)"
            )));
        }
    };
    Ok(ResultRecord {
        line,
        id: None,
        custom_id,
        outcome,
        raw,
        // Read again when asked: `result` is not where the one pass looks.
        spans: crate::results::RawSpans::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{BodyKind, FinishReason};

    #[test]
    fn the_four_result_types() {
        let ok = br#"{"custom_id":"a","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"},{"type":"text","text":", world"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":3,"cache_creation_input_tokens":4,"cache_read_input_tokens":6}}}}"#;
        let rec = parse_result_line(1, ok).expect("parses");
        let s = rec.success().expect("success");
        assert_eq!(s.kind(), BodyKind::Message);
        assert_eq!(rec.content(), Some("Hello, world"));
        assert_eq!(s.finish_reason(), Some(&FinishReason::Stop));
        assert_eq!(s.model(), Some("claude-x"));
        let u = s.usage.expect("usage");
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                u.cache_creation_tokens
            ),
            (Some(10), Some(3), Some(6), Some(4))
        );

        let tool = br#"{"custom_id":"b","result":{"type":"succeeded","message":{"type":"message","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}}}}"#;
        let rec = parse_result_line(2, tool).expect("parses");
        assert_eq!(rec.content(), None);
        let Some(FinishReason::ToolCalls(calls)) = rec.success().and_then(Success::finish_reason)
        else {
            panic!("expected tool calls");
        };
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].id.as_deref(), Some("toolu_1"));
        assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);

        let parts = parse_result_line(1, ok).expect("parses");
        let parts = parts.raw_parts();
        assert!(parts.response.is_none() && parts.error.is_none());
        assert!(
            parts
                .message
                .is_some_and(|m| m.starts_with(r#"{"id":"msg_1","type":"message""#))
        );

        let err = br#"{"custom_id":"c","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}}}"#;
        let f = parse_result_line(3, err).expect("parses");
        assert_eq!(
            f.raw_parts().error,
            Some(r#"{"type":"invalid_request_error","message":"max_tokens: Field required"}"#)
        );
        let f = f.failure().expect("failure");
        assert_eq!(f.error_type.as_deref(), Some("invalid_request_error"));
        assert_eq!(f.message.as_deref(), Some("max_tokens: Field required"));
        assert!(!f.is_not_processed());

        for (t, code) in [("canceled", CANCELED_CODE), ("expired", EXPIRED_CODE)] {
            let line = format!(r#"{{"custom_id":"d","result":{{"type":"{t}"}}}}"#);
            let rec = parse_result_line(4, line.as_bytes()).expect("parses");
            let f = rec.failure().expect("failure");
            assert_eq!(f.code.as_deref(), Some(code));
            assert!(f.is_not_processed());
        }
    }

    #[test]
    fn bad_lines_name_what_is_wrong() {
        let e = parse_result_line(7, br#"{"custom_id":"x","result":{"type":"later"}}"#)
            .expect_err("unknown type");
        assert_eq!(e.line, 7);
        assert_eq!(e.custom_id.as_deref(), Some("x"));
        assert!(e.error.contains("later"), "{e}");
        let e = parse_result_line(8, br#"{"custom_id":"y","res"#).expect_err("cut");
        assert_eq!(e.kind, BadLineKind::NotJson);
        assert_eq!(e.custom_id.as_deref(), Some("y"));
        let e = parse_result_line(9, br#"{"result":{"type":"expired"}}"#).expect_err("no id");
        assert_eq!(e.kind, BadLineKind::NoCustomId);
        let e = parse_result_line(10, br#"{"custom_id":"z","result":{"type":"succeeded"}}"#)
            .expect_err("no message");
        assert_eq!(e.kind, BadLineKind::BadField);
    }
}
