//! One line of RESULTS.jsonl per request, and whether its outcome is worth
//! another round with `--retry-failed`.
//!
//! ```text
//! {"custom_id":..,"outcome":"succeeded","id":"batch_req_..","batch_id":"batch_..","response":{"status_code":200,"request_id":..,"body":{..}}}
//! {"custom_id":..,"outcome":"failed","id":"batch_req_..","batch_id":"batch_..","response":{"status_code":400,..},"error":{..the server's error object..}}
//! {"custom_id":..,"outcome":"not_processed","id":"batch_req_..","batch_id":"batch_..","error":{"code":"batch_expired","message":..}}
//! {"custom_id":..,"outcome":"not_processed","batch_id":"batch_..","error":{"code":"missing_result","message":..}}
//! ```
//!
//! An Anthropic Message Batch's lines have the same members, with the
//! Messages API's answer as `message` in place of `response`
//! (<https://docs.anthropic.com/en/api/retrieving-message-batch-results>),
//! and a failed request's `error` the inner error object (`type`,
//! `message`):
//!
//! ```text
//! {"custom_id":..,"outcome":"succeeded","batch_id":"msgbatch_..","message":{"id":"msg_..","content":[..],"stop_reason":..,"usage":{..}}}
//! {"custom_id":..,"outcome":"failed","batch_id":"msgbatch_..","error":{"type":"invalid_request_error","message":..}}
//! {"custom_id":..,"outcome":"not_processed","batch_id":"msgbatch_..","error":{"code":"batch_expired","message":..}}
//! ```
//!
//! `id` is the server's result line id and `batch_id` the batch the result
//! came from; each is left out when there is none (an outcome the job made
//! up has no result line; a shard that never got a batch has no batch).
//! `response` and `error` are copied byte for byte from the server's result
//! line: `error` is the line's own `error`, else `response.body.error`, with
//! all its keys. Only where the server sent no error object does the job
//! write one, `{"code":..,"message":..}`.

use batch_core::job::{JobOutcome, JobResult, NotProcessed};
use batch_core::results::{Failure, RawParts};

use crate::journal::Kind;

/// Not-processed codes worth another round: the request never ran for a
/// reason that may not hold next time. `batch_cancelled` and `job_cancelled`
/// (the user cancelled), `timed_out` (`--max-wait`: the batch is still
/// running, a new one would run the request twice) and `job_stopped` (a
/// job-wide error such as a refused key) are final, and so are the per-line
/// validation errors of a failed batch (the line itself is at fault).
const RETRYABLE_NOT_PROCESSED: [&str; 8] = [
    "batch_expired",
    "batch_failed",
    "missing_result",
    "unreadable_result",
    "gave_up",
    "token_limit_exceeded",
    "upload_failed",
    "create_failed",
];

/// Anthropic's error types that say the request itself is at fault
/// (<https://docs.anthropic.com/en/api/errors>): another round would fail
/// the same way.
const ANTHROPIC_REQUEST_ERRORS: [&str; 5] = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
];

/// Whether a failed request is worth another round: it got a 429, a 408 or
/// a 5xx (the server's trouble), or no status at all. Other 4xx answers
/// (`invalid_request_error`, a missing model, a refused key) would fail again.
///
/// A Message Batch's errored result has no status: its error `type` says
/// whether the request is at fault ([`ANTHROPIC_REQUEST_ERRORS`]) or the
/// server was (`api_error`, `overloaded_error`, worth another round).
fn failure_is_retryable(f: &Failure) -> bool {
    match f.status_code {
        None => !f
            .error_type
            .as_deref()
            .is_some_and(|t| ANTHROPIC_REQUEST_ERRORS.contains(&t)),
        Some(s) => s == 408 || s == 429 || s >= 500,
    }
}

/// The slot kind of a result.
pub(crate) fn kind(outcome: &JobOutcome) -> Kind {
    match outcome {
        JobOutcome::Succeeded(_) => Kind::Succeeded,
        JobOutcome::Failed(rec) => match rec.failure() {
            Some(f) if !failure_is_retryable(f) => Kind::Failed,
            _ => Kind::FailedRetryable,
        },
        JobOutcome::NotProcessed(np) => {
            if RETRYABLE_NOT_PROCESSED.contains(&np.code.as_str()) {
                Kind::NotProcessedRetryable
            } else {
                Kind::NotProcessed
            }
        }
        _ => Kind::FailedRetryable,
    }
}

/// The `error` member: the server's object as sent, or one the job writes.
enum ErrorOut<'a> {
    /// Raw JSON text, copied as it is.
    Server(&'a str),
    Own {
        code: Option<&'a str>,
        message: Option<&'a str>,
    },
}

/// The server's error object, if it sent one (a bare string is not one).
fn server_error<'a>(parts: &RawParts<'a>) -> Option<&'a str> {
    parts.error.filter(|e| e.starts_with('{'))
}

/// The error of a failure the server gave no object for: what was read of it.
fn own_error(f: Option<&Failure>) -> ErrorOut<'_> {
    ErrorOut::Own {
        code: f.and_then(|f| f.code.as_deref()),
        message: f.and_then(|f| f.message.as_deref()),
    }
}

/// Appends `s` to `out` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `"key":` and `s` as a JSON string or `null`.
fn member(out: &mut Vec<u8>, key: &str, s: Option<&str>) {
    out.extend_from_slice(key.as_bytes());
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the output line of `r` (with its newline) to `out`, after
/// clearing it. The server's `response` and error objects are copied from
/// the result line as they are, without reading them again.
pub(crate) fn render(r: &JobResult, out: &mut Vec<u8>) {
    out.clear();
    let rec = r.result_line();
    let parts = rec.map(|rec| rec.raw_parts()).unwrap_or_default();
    let (outcome, response, message, error) = match &r.outcome {
        // A Message Batch's succeeded line carries the Messages API's
        // answer as `message` where OpenAI's carries `response`.
        JobOutcome::Succeeded(_) => ("succeeded", parts.response, parts.message, None),
        JobOutcome::Failed(rec) => (
            "failed",
            parts.response,
            None,
            Some(match server_error(&parts) {
                Some(raw) => ErrorOut::Server(raw),
                None => own_error(rec.failure()),
            }),
        ),
        JobOutcome::NotProcessed(NotProcessed { code, message }) => (
            "not_processed",
            None,
            None,
            Some(match server_error(&parts) {
                Some(raw) => ErrorOut::Server(raw),
                None => ErrorOut::Own {
                    code: Some(code),
                    message: Some(message),
                },
            }),
        ),
        _ => (
            "failed",
            None,
            None,
            Some(ErrorOut::Own {
                code: Some("unknown_outcome"),
                message: Some("the outcome of this request is of an unknown kind"),
            }),
        ),
    };
    out.extend_from_slice(b"{\"custom_id\":");
    string(out, &r.custom_id);
    out.extend_from_slice(b",\"outcome\":\"");
    out.extend_from_slice(outcome.as_bytes());
    out.push(b'"');
    if let Some(id) = rec.and_then(|rec| rec.id.as_deref()) {
        out.extend_from_slice(b",\"id\":");
        string(out, id);
    }
    if let Some(batch) = r.batch_id.as_deref() {
        out.extend_from_slice(b",\"batch_id\":");
        string(out, batch);
    }
    if let Some(raw) = response {
        out.extend_from_slice(b",\"response\":");
        out.extend_from_slice(raw.as_bytes());
    }
    if let Some(raw) = message {
        out.extend_from_slice(b",\"message\":");
        out.extend_from_slice(raw.as_bytes());
    }
    match error {
        Some(ErrorOut::Server(raw)) => {
            out.extend_from_slice(b",\"error\":");
            out.extend_from_slice(raw.as_bytes());
        }
        Some(ErrorOut::Own { code, message }) => {
            member(out, ",\"error\":{\"code\":", code);
            member(out, ",\"message\":", message);
            out.push(b'}');
        }
        None => {}
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use batch_core::results::parse_result_line;
    use serde_json::Value;

    use super::*;

    fn result(raw: &str) -> JobResult {
        let rec = parse_result_line(1, raw.as_bytes()).expect("line");
        let outcome = if rec.is_success() {
            JobOutcome::Succeeded(Box::new(rec))
        } else {
            JobOutcome::Failed(Box::new(rec))
        };
        JobResult {
            index: 0,
            shard: 0,
            batch_id: Some("batch_1".into()),
            custom_id: "a".into(),
            outcome,
            server_line: None,
        }
    }

    fn text(r: &JobResult) -> String {
        let mut out = Vec::new();
        render(r, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    fn line(r: &JobResult) -> Value {
        let t = text(r);
        assert!(t.ends_with('\n'));
        serde_json::from_str(&t).expect("json")
    }

    #[test]
    fn success_keeps_the_response_id_and_batch_as_sent() {
        let r = result(
            r#"{"id":"batch_req_x","custom_id":"a","response":{"status_code":200,"request_id":"q","body":{"z":1.50,"a":[]}},"error":null}"#,
        );
        assert_eq!(
            text(&r),
            "{\"custom_id\":\"a\",\"outcome\":\"succeeded\",\"id\":\"batch_req_x\",\"batch_id\":\"batch_1\",\"response\":{\"status_code\":200,\"request_id\":\"q\",\"body\":{\"z\":1.50,\"a\":[]}}}\n"
        );
        assert_eq!(kind(&r.outcome), Kind::Succeeded);
    }

    #[test]
    fn http_failures_pass_the_servers_error_object_through() {
        let r = result(
            r#"{"id":"batch_req_y","custom_id":"a","response":{"status_code":400,"body":{"error":{"message":"bad","type":"invalid_request_error","code":null,"param":"model","doc_url":"https://example.invalid/e"}}},"error":null}"#,
        );
        let t = text(&r);
        // Every key, in the server's order, byte for byte.
        assert!(
            t.ends_with(
                r#","error":{"message":"bad","type":"invalid_request_error","code":null,"param":"model","doc_url":"https://example.invalid/e"}}
"#
            ),
            "{t}"
        );
        let v = line(&r);
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["id"], "batch_req_y");
        assert_eq!(v["batch_id"], "batch_1");
        assert_eq!(v["response"]["status_code"], 400);
        assert_eq!(kind(&r.outcome), Kind::Failed);
        let r = result(
            r#"{"id":"x","custom_id":"a","response":{"status_code":503,"body":{"error":{"message":"busy","type":"server_error"}}},"error":null}"#,
        );
        assert_eq!(kind(&r.outcome), Kind::FailedRetryable);
    }

    #[test]
    fn a_lines_own_error_is_passed_through_and_a_bare_string_is_wrapped() {
        let r = result(
            r#"{"id":"batch_req_z","custom_id":"a","response":null,"error":{"code":"server_error","message":"boom","retry":true}}"#,
        );
        let v = line(&r);
        assert_eq!(
            v["error"],
            serde_json::json!({"code":"server_error","message":"boom","retry":true})
        );
        assert!(v.get("response").is_none());
        let r = result(r#"{"custom_id":"a","response":{"status_code":500,"body":"oops"}}"#);
        let v = line(&r);
        assert_eq!(
            v["error"],
            serde_json::json!({"code": null, "message": "oops"})
        );
        assert!(v.get("id").is_none());
    }

    #[test]
    fn not_processed_from_a_server_line_keeps_its_id_and_error() {
        let raw = r#"{"id":"batch_req_e","custom_id":"a","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}"#;
        let rec = parse_result_line(1, raw.as_bytes()).expect("line");
        let r = JobResult {
            index: 0,
            shard: 0,
            batch_id: Some("batch_9".into()),
            custom_id: "a".into(),
            outcome: JobOutcome::NotProcessed(NotProcessed {
                code: "batch_expired".into(),
                message: "expired".into(),
            }),
            server_line: Some(Box::new(rec)),
        };
        assert_eq!(
            text(&r),
            "{\"custom_id\":\"a\",\"outcome\":\"not_processed\",\"id\":\"batch_req_e\",\"batch_id\":\"batch_9\",\"error\":{\"code\":\"batch_expired\",\"message\":\"This request could not be executed before the completion window expired.\"}}\n"
        );
        assert_eq!(kind(&r.outcome), Kind::NotProcessedRetryable);
    }

    fn anthropic(raw: &str) -> JobResult {
        let rec = batch_core::anthropic::parse_result_line(1, raw.as_bytes()).expect("line");
        let outcome = if rec.is_success() {
            JobOutcome::Succeeded(Box::new(rec))
        } else {
            JobOutcome::Failed(Box::new(rec))
        };
        JobResult {
            index: 0,
            shard: 0,
            batch_id: Some("msgbatch_1".into()),
            custom_id: "a".into(),
            outcome,
            server_line: None,
        }
    }

    #[test]
    fn message_batch_lines_carry_the_message_and_the_inner_error() {
        let ok = r#"{"custom_id":"a","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}}}"#;
        let r = anthropic(ok);
        assert_eq!(kind(&r.outcome), Kind::Succeeded);
        assert_eq!(
            text(&r),
            r#"{"custom_id":"a","outcome":"succeeded","batch_id":"msgbatch_1","message":{"id":"msg_1","type":"message","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}}"#.to_owned() + "\n"
        );
        let bad = r#"{"custom_id":"a","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}}}"#;
        let r = anthropic(bad);
        assert_eq!(kind(&r.outcome), Kind::Failed, "the request is at fault");
        assert_eq!(
            text(&r),
            r#"{"custom_id":"a","outcome":"failed","batch_id":"msgbatch_1","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#.to_owned() + "\n"
        );
        let busy = r#"{"custom_id":"a","result":{"type":"errored","error":{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}}}"#;
        assert_eq!(kind(&anthropic(busy).outcome), Kind::FailedRetryable);
    }

    #[test]
    fn not_processed_says_why() {
        let r = JobResult {
            index: 0,
            shard: 0,
            batch_id: None,
            custom_id: "a".into(),
            outcome: JobOutcome::NotProcessed(NotProcessed {
                code: "upload_failed".into(),
                message: "the upload was refused".into(),
            }),
            server_line: None,
        };
        let v = line(&r);
        assert_eq!(v["outcome"], "not_processed");
        assert_eq!(
            v["error"],
            serde_json::json!({"code": "upload_failed", "message": "the upload was refused"})
        );
        assert!(v.get("response").is_none());
        assert!(v.get("id").is_none());
        assert!(v.get("batch_id").is_none());
        assert_eq!(kind(&r.outcome), Kind::NotProcessedRetryable);
        let timed_out = JobOutcome::NotProcessed(NotProcessed {
            code: "timed_out".into(),
            message: "still running".into(),
        });
        assert_eq!(kind(&timed_out), Kind::NotProcessed);
    }
}
