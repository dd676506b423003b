//! One line of RESULTS.jsonl per request, and whether its outcome is worth
//! another round with `--retry-failed`.
//!
//! ```text
//! {"custom_id":..,"outcome":"succeeded","response":{"status_code":200,"request_id":..,"body":{..}}}
//! {"custom_id":..,"outcome":"failed","response":{"status_code":400,..},"error":{"code":..,"message":..,"type":..,"param":..}}
//! {"custom_id":..,"outcome":"not_processed","error":{"code":"batch_expired","message":..}}
//! ```
//!
//! `response` is copied byte for byte from the server's result line, so the
//! body is exactly as sent.

use batch_core::job::{JobOutcome, JobResult, NotProcessed};
use batch_core::results::{Failure, ResultRecord};
use serde::Serialize;
use serde_json::value::RawValue;

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

/// Whether a failed request is worth another round: it got a 429, a 408 or
/// a 5xx (the server's trouble), or no status at all. Other 4xx answers
/// (`invalid_request_error`, a missing model, a refused key) would fail again.
fn failure_is_retryable(f: &Failure) -> bool {
    match f.status_code {
        None => true,
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

#[derive(Serialize)]
struct Line<'a> {
    custom_id: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorOut<'a>>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    code: Option<&'a str>,
    message: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    error_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

/// The `response` member of a server result line, as its raw bytes.
#[derive(serde::Deserialize)]
struct RawResponse<'a> {
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

fn raw_response(rec: &ResultRecord) -> Option<&RawValue> {
    let parsed: RawResponse<'_> = serde_json::from_str(&rec.raw).ok()?;
    parsed.response.filter(|r| r.get() != "null")
}

/// Appends the output line of `r` (with its newline) to `out`.
pub(crate) fn render(r: &JobResult, out: &mut Vec<u8>) {
    out.clear();
    let line = match &r.outcome {
        JobOutcome::Succeeded(rec) => Line {
            custom_id: &r.custom_id,
            outcome: "succeeded",
            response: raw_response(rec),
            error: None,
        },
        JobOutcome::Failed(rec) => {
            let f = rec.failure();
            Line {
                custom_id: &r.custom_id,
                outcome: "failed",
                response: raw_response(rec),
                error: Some(ErrorOut {
                    code: f.and_then(|f| f.code.as_deref()),
                    message: f.and_then(|f| f.message.as_deref()),
                    error_type: f.and_then(|f| f.error_type.as_deref()),
                    param: f.and_then(|f| f.param.as_deref()),
                }),
            }
        }
        JobOutcome::NotProcessed(NotProcessed { code, message }) => Line {
            custom_id: &r.custom_id,
            outcome: "not_processed",
            response: None,
            error: Some(ErrorOut {
                code: Some(code),
                message: Some(message),
                error_type: None,
                param: None,
            }),
        },
        _ => Line {
            custom_id: &r.custom_id,
            outcome: "failed",
            response: None,
            error: Some(ErrorOut {
                code: Some("unknown_outcome"),
                message: Some("the outcome of this request is of an unknown kind"),
                error_type: None,
                param: None,
            }),
        },
    };
    // Serializing borrowed strings and raw JSON into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_err() {
        out.clear();
        out.extend_from_slice(b"{}");
    }
    out.push(b'\n');
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
            custom_id: "a".into(),
            outcome,
        }
    }

    fn line(r: &JobResult) -> Value {
        let mut out = Vec::new();
        render(r, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn success_keeps_the_response_as_sent() {
        let r = result(
            r#"{"id":"x","custom_id":"a","response":{"status_code":200,"request_id":"q","body":{"z":1.50,"a":[]}},"error":null}"#,
        );
        let mut out = Vec::new();
        render(&r, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"custom_id\":\"a\",\"outcome\":\"succeeded\",\"response\":{\"status_code\":200,\"request_id\":\"q\",\"body\":{\"z\":1.50,\"a\":[]}}}\n"
        );
        assert_eq!(kind(&r.outcome), Kind::Succeeded);
    }

    #[test]
    fn http_failures_carry_response_and_error() {
        let r = result(
            r#"{"id":"x","custom_id":"a","response":{"status_code":400,"body":{"error":{"message":"bad","type":"invalid_request_error","code":null}}},"error":null}"#,
        );
        let v = line(&r);
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["response"]["status_code"], 400);
        assert_eq!(v["error"]["message"], "bad");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(kind(&r.outcome), Kind::Failed);
        let r = result(
            r#"{"id":"x","custom_id":"a","response":{"status_code":503,"body":{"error":{"message":"busy","type":"server_error"}}},"error":null}"#,
        );
        assert_eq!(kind(&r.outcome), Kind::FailedRetryable);
    }

    #[test]
    fn not_processed_says_why() {
        let r = JobResult {
            index: 0,
            shard: 0,
            custom_id: "a".into(),
            outcome: JobOutcome::NotProcessed(NotProcessed {
                code: "batch_expired".into(),
                message: "expired".into(),
            }),
        };
        let v = line(&r);
        assert_eq!(v["outcome"], "not_processed");
        assert_eq!(v["error"]["code"], "batch_expired");
        assert!(v.get("response").is_none());
        assert_eq!(kind(&r.outcome), Kind::NotProcessedRetryable);
        let timed_out = JobOutcome::NotProcessed(NotProcessed {
            code: "timed_out".into(),
            message: "still running".into(),
        });
        assert_eq!(kind(&timed_out), Kind::NotProcessed);
    }
}
