//! Validation of a batch input file, as the real API does it while the batch
//! is `validating`. Line numbers are 1-based physical lines; blank lines are
//! skipped but still counted.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use batch_core::Endpoint;
use serde_json::Value;

use crate::model::BatchErrorItem;
use crate::respond::precheck;

/// At most this many errors are reported for one file.
const MAX_ERRORS: usize = 100;

/// What a valid input file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidInput {
    pub(crate) total: u64,
    pub(crate) model: Option<String>,
    pub(crate) fail_positions: Vec<u64>,
}

fn item(code: &str, message: String, param: Option<&str>, line: Option<u64>) -> BatchErrorItem {
    BatchErrorItem {
        code: code.to_owned(),
        message,
        param: param.map(str::to_owned),
        line,
    }
}

/// Whether request bodies for `endpoint` must name a model.
fn requires_model(endpoint: &Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::Embeddings
            | Endpoint::Completions
    )
}

/// Reads the input file at `path` line by line.
///
/// Returns `Ok(Err(errors))` when the batch must fail validation.
pub(crate) fn validate_input(
    path: &Path,
    endpoint: &str,
    max_requests: u64,
) -> io::Result<Result<ValidInput, Vec<BatchErrorItem>>> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let ep = Endpoint::parse(endpoint);
    let mut errors: Vec<BatchErrorItem> = Vec::new();
    let push = |errors: &mut Vec<BatchErrorItem>, e: BatchErrorItem| {
        if errors.len() < MAX_ERRORS {
            errors.push(e);
        }
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut model: Option<String> = None;
    let mut fail_positions = Vec::new();
    let mut total: u64 = 0;
    let mut line_no: u64 = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if total == max_requests {
            push(
                &mut errors,
                item(
                    "too_many_requests",
                    format!(
                        "The batch input file contains more than the maximum of {max_requests} requests."
                    ),
                    None,
                    Some(line_no),
                ),
            );
            break;
        }
        let position = total;
        total += 1;
        let line = Some(line_no);
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(_) => {
                push(
                    &mut errors,
                    item(
                        "invalid_json_line",
                        "This line is not parseable as valid JSON.".to_owned(),
                        None,
                        line,
                    ),
                );
                continue;
            }
        };
        let Some(obj) = value.as_object() else {
            push(
                &mut errors,
                item(
                    "invalid_json_line",
                    "This line is not a JSON object.".to_owned(),
                    None,
                    line,
                ),
            );
            continue;
        };
        match obj.get("custom_id") {
            Some(Value::String(id)) if !id.is_empty() => {
                if !seen.insert(id.clone()) {
                    push(
                        &mut errors,
                        item(
                            "duplicate_custom_id",
                            "The custom_id for this request is a duplicate of another request. \
                             The custom_id parameter must be unique for each request in a batch."
                                .to_owned(),
                            Some("custom_id"),
                            line,
                        ),
                    );
                }
            }
            _ => push(
                &mut errors,
                item(
                    "missing_custom_id",
                    "Each request must have a custom_id, a non-empty string that is unique within the batch."
                        .to_owned(),
                    Some("custom_id"),
                    line,
                ),
            ),
        }
        if obj.get("method").and_then(Value::as_str) != Some("POST") {
            push(
                &mut errors,
                item(
                    "invalid_request",
                    "The method for this request must be 'POST'.".to_owned(),
                    Some("method"),
                    line,
                ),
            );
        }
        match obj.get("url").and_then(Value::as_str) {
            Some(u) if u == endpoint => {}
            Some(u) => push(
                &mut errors,
                item(
                    "invalid_url",
                    format!(
                        "The URL '{u}' of this request does not match the batch's endpoint '{endpoint}'."
                    ),
                    Some("url"),
                    line,
                ),
            ),
            None => push(
                &mut errors,
                item(
                    "invalid_url",
                    format!("This request has no url; it must be '{endpoint}'."),
                    Some("url"),
                    line,
                ),
            ),
        }
        let Some(body) = obj.get("body").filter(|b| b.is_object()) else {
            push(
                &mut errors,
                item(
                    "invalid_request",
                    "The body of this request must be a JSON object.".to_owned(),
                    Some("body"),
                    line,
                ),
            );
            continue;
        };
        match body.get("model") {
            Some(Value::String(m)) => match &model {
                None => model = Some(m.clone()),
                Some(first) if first != m => push(
                    &mut errors,
                    item(
                        "mismatched_model",
                        format!(
                            "The model '{m}' of this request does not match the model '{first}' \
                             of earlier requests. A batch can only use one model."
                        ),
                        Some("body.model"),
                        line,
                    ),
                ),
                Some(_) => {}
            },
            _ if requires_model(&ep) => push(
                &mut errors,
                item(
                    "invalid_request",
                    "The body of this request must name a model.".to_owned(),
                    Some("body.model"),
                    line,
                ),
            ),
            _ => {}
        }
        if precheck(endpoint, body).is_some() {
            fail_positions.push(position);
        }
    }
    if total == 0 && errors.is_empty() {
        errors.push(item(
            "empty_file",
            "The batch input file is empty.".to_owned(),
            None,
            None,
        ));
    }
    if errors.is_empty() {
        Ok(Ok(ValidInput {
            total,
            model,
            fail_positions,
        }))
    } else {
        Ok(Err(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn run(content: &str, max: u64) -> Result<ValidInput, Vec<BatchErrorItem>> {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content.as_bytes()).expect("write");
        validate_input(f.path(), "/v1/chat/completions", max).expect("io")
    }

    fn line(id: &str, model: &str, text: &str) -> String {
        format!(
            "{{\"custom_id\":\"{id}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{text}\"}}]}}}}\n"
        )
    }

    #[test]
    fn accepts_a_good_file() {
        let content = format!(
            "{}\n{}",
            line("a", "m", "x"),
            line("b", "m", "[[emulator:fail=400]]")
        );
        let ok = run(&content, 10).expect("valid");
        assert_eq!(ok.total, 2);
        assert_eq!(ok.model.as_deref(), Some("m"));
        assert_eq!(ok.fail_positions, vec![1]);
    }

    #[test]
    fn reports_each_kind_with_lines() {
        let content = format!(
            "{}not json\n{}{}{}",
            line("a", "m", "x"),
            line("a", "m", "x"),
            line("c", "other", "x"),
            line("d", "m", "x").replace("/v1/chat/completions", "/v1/embeddings"),
        );
        let errs = run(&content, 10).expect_err("invalid");
        let got: Vec<(&str, Option<u64>)> =
            errs.iter().map(|e| (e.code.as_str(), e.line)).collect();
        assert_eq!(
            got,
            vec![
                ("invalid_json_line", Some(2)),
                ("duplicate_custom_id", Some(3)),
                ("mismatched_model", Some(4)),
                ("invalid_url", Some(5)),
            ]
        );
    }

    #[test]
    fn limits_and_empty() {
        let content = format!(
            "{}{}{}",
            line("a", "m", "x"),
            line("b", "m", "x"),
            line("c", "m", "x")
        );
        let errs = run(&content, 2).expect_err("too many");
        assert_eq!(errs[0].code, "too_many_requests");
        assert_eq!(errs[0].line, Some(3));
        let errs = run("\n\n", 2).expect_err("empty");
        assert_eq!(errs[0].code, "empty_file");
        let errs = run(
            "{\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\"}}\n",
            2,
        )
        .expect_err("missing id");
        assert_eq!(errs[0].code, "missing_custom_id");
    }
}
