//! Validation of a batch input file, as the real API does it while the batch
//! is `validating`. Line numbers are 1-based physical lines; blank lines are
//! skipped but still counted.
//!
//! Codes: `invalid_json_line`, `duplicate_custom_id`, `url_mismatch`,
//! `model_mismatch`, `empty_file` and `too_many_tasks` are the codes OpenAI
//! documents for a failed batch's `errors.data[]`; `model_not_found` is the
//! code the API gives an unknown model. A line missing a required key, or
//! holding one of the wrong type or value, gets the code the API gives the
//! same fault in a direct request (`missing_required_parameter`,
//! `invalid_type`, `invalid_value`), as no batch code is documented for it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use batch_core::Endpoint;
use serde_json::Value;

use crate::error::json_kind;
use crate::model::BatchErrorItem;
use crate::models;
use crate::respond::precheck;

/// At most this many errors are reported for one file.
const MAX_ERRORS: usize = 100;

/// The limits a batch input file is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most requests in one batch.
    pub(crate) max_requests: u64,
    /// Most embedding inputs, summed over an embeddings batch's requests.
    pub(crate) max_embedding_inputs: u64,
    /// Accept models the emulator does not know.
    pub(crate) any_model: bool,
    /// Accept request urls without `/v1` (`/chat/completions`), as Azure
    /// OpenAI's dated API versions write them.
    pub(crate) unversioned_urls: bool,
}

/// What a valid input file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidInput {
    pub(crate) total: u64,
    /// The model as the lines name it.
    pub(crate) model: Option<String>,
    /// The dated snapshot it runs as (the name itself for an unknown model
    /// that was let through).
    pub(crate) snapshot: Option<String>,
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

fn missing(param: &str, line: Option<u64>) -> BatchErrorItem {
    item(
        "missing_required_parameter",
        format!("Missing required parameter: '{param}'."),
        Some(param),
        line,
    )
}

fn wrong_type(param: &str, expected: &str, got: &Value, line: Option<u64>) -> BatchErrorItem {
    item(
        "invalid_type",
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            json_kind(got)
        ),
        Some(param),
        line,
    )
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

/// How many embedding inputs an embeddings body holds: a string or a flat
/// array of token ids is one, an array of strings or of token arrays is one
/// per item.
fn embedding_inputs(body: &Value) -> u64 {
    match body.get("input") {
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_number) => 1,
        Some(Value::Array(items)) => items.len() as u64,
        Some(Value::Null) | None => 0,
        Some(_) => 1,
    }
}

/// Reads the input file at `path` line by line.
///
/// Returns `Ok(Err(errors))` when the batch must fail validation.
pub(crate) fn validate_input(
    path: &Path,
    endpoint: &str,
    limits: Limits,
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
    let mut embedding_total: u64 = 0;
    let mut embeddings_over = false;
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
        if total == limits.max_requests {
            push(
                &mut errors,
                item(
                    "too_many_tasks",
                    format!(
                        "The batch input file contains more than the maximum of {} requests.",
                        limits.max_requests
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
            None | Some(Value::Null) => push(&mut errors, missing("custom_id", line)),
            Some(Value::String(id)) if id.is_empty() => push(
                &mut errors,
                item(
                    "invalid_value",
                    "Invalid 'custom_id': empty string. Expected a non-empty string that is \
                     unique within the batch."
                        .to_owned(),
                    Some("custom_id"),
                    line,
                ),
            ),
            Some(Value::String(id)) => {
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
            Some(other) => push(
                &mut errors,
                wrong_type("custom_id", "a string", other, line),
            ),
        }
        match obj.get("method") {
            None | Some(Value::Null) => push(&mut errors, missing("method", line)),
            Some(Value::String(m)) if m == "POST" => {}
            Some(Value::String(m)) => push(
                &mut errors,
                item(
                    "invalid_value",
                    format!("Invalid value: '{m}'. Supported values are: 'POST'."),
                    Some("method"),
                    line,
                ),
            ),
            Some(other) => push(&mut errors, wrong_type("method", "a string", other, line)),
        }
        match obj.get("url") {
            None | Some(Value::Null) => push(&mut errors, missing("url", line)),
            Some(Value::String(u))
                if u == endpoint
                    || (limits.unversioned_urls
                        && u.starts_with('/')
                        && endpoint.strip_prefix("/v1") == Some(u.as_str())) => {}
            Some(Value::String(u)) => push(
                &mut errors,
                item(
                    "url_mismatch",
                    format!(
                        "The URL provided for this request does not match the batch endpoint: \
                         '{u}' is not '{endpoint}'."
                    ),
                    Some("url"),
                    line,
                ),
            ),
            Some(other) => push(&mut errors, wrong_type("url", "a string", other, line)),
        }
        let body = match obj.get("body") {
            None | Some(Value::Null) => {
                push(&mut errors, missing("body", line));
                continue;
            }
            Some(b) if b.is_object() => b,
            Some(other) => {
                push(&mut errors, wrong_type("body", "an object", other, line));
                continue;
            }
        };
        match body.get("model") {
            Some(Value::String(m)) => {
                if !limits.any_model && models::snapshot(m).is_none() {
                    push(
                        &mut errors,
                        item(
                            "model_not_found",
                            format!(
                                "The model `{m}` does not exist or you do not have access to it."
                            ),
                            Some("body.model"),
                            line,
                        ),
                    );
                }
                match &model {
                    None => model = Some(m.clone()),
                    Some(first) if first != m => push(
                        &mut errors,
                        item(
                            "model_mismatch",
                            format!(
                                "The model '{m}' of this request does not match the model \
                                 '{first}' of earlier requests. A batch can only use one model."
                            ),
                            Some("body.model"),
                            line,
                        ),
                    ),
                    Some(_) => {}
                }
            }
            None | Some(Value::Null) if requires_model(&ep) => {
                push(&mut errors, missing("body.model", line));
            }
            None | Some(Value::Null) => {}
            Some(other) => push(
                &mut errors,
                wrong_type("body.model", "a string", other, line),
            ),
        }
        if ep == Endpoint::Embeddings && !embeddings_over {
            embedding_total += embedding_inputs(body);
            if embedding_total > limits.max_embedding_inputs {
                embeddings_over = true;
                push(
                    &mut errors,
                    item(
                        "too_many_tasks",
                        format!(
                            "The batch input file contains more than the maximum of {} embedding \
                             inputs across all requests.",
                            limits.max_embedding_inputs
                        ),
                        Some("body.input"),
                        line,
                    ),
                );
            }
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
        let snapshot = model.as_deref().map(|m| models::reported(m).to_owned());
        Ok(Ok(ValidInput {
            total,
            model,
            snapshot,
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

    const LIMITS: Limits = Limits {
        max_requests: 10,
        max_embedding_inputs: 50_000,
        any_model: false,
        unversioned_urls: false,
    };

    fn run_at(
        endpoint: &str,
        content: &str,
        limits: Limits,
    ) -> Result<ValidInput, Vec<BatchErrorItem>> {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content.as_bytes()).expect("write");
        validate_input(f.path(), endpoint, limits).expect("io")
    }

    fn run(content: &str, max: u64) -> Result<ValidInput, Vec<BatchErrorItem>> {
        let limits = Limits {
            max_requests: max,
            ..LIMITS
        };
        run_at("/v1/chat/completions", content, limits)
    }

    fn line(id: &str, model: &str, text: &str) -> String {
        format!(
            "{{\"custom_id\":\"{id}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{text}\"}}]}}}}\n"
        )
    }

    fn codes(errs: &[BatchErrorItem]) -> Vec<(&str, Option<&str>, Option<u64>)> {
        errs.iter()
            .map(|e| (e.code.as_str(), e.param.as_deref(), e.line))
            .collect()
    }

    #[test]
    fn accepts_a_good_file_and_names_the_snapshot() {
        let content = format!(
            "{}\n{}",
            line("a", "gpt-4o-mini", "x"),
            line("b", "gpt-4o-mini", "[[emulator:fail=400]]")
        );
        let ok = run(&content, 10).expect("valid");
        assert_eq!(ok.total, 2);
        assert_eq!(ok.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(ok.snapshot.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(ok.fail_positions, vec![1]);
    }

    #[test]
    fn reports_each_documented_code_with_its_line() {
        let content = format!(
            "{}not json\n{}{}{}",
            line("a", "gpt-4o-mini", "x"),
            line("a", "gpt-4o-mini", "x"),
            line("c", "gpt-4o", "x"),
            line("d", "gpt-4o-mini", "x").replace("/v1/chat/completions", "/v1/embeddings"),
        );
        let errs = run(&content, 10).expect_err("invalid");
        assert_eq!(
            codes(&errs),
            vec![
                ("invalid_json_line", None, Some(2)),
                ("duplicate_custom_id", Some("custom_id"), Some(3)),
                ("model_mismatch", Some("body.model"), Some(4)),
                ("url_mismatch", Some("url"), Some(5)),
            ]
        );
    }

    #[test]
    fn unknown_models_fail_unless_any_model_is_accepted() {
        let content = format!(
            "{}{}",
            line("a", "gpt-4o-mini", "x"),
            line("b", "gpt-4o-mini", "x")
        )
        .replace("gpt-4o-mini", "no-such-model");
        let errs = run(&content, 10).expect_err("unknown model");
        assert_eq!(
            codes(&errs),
            vec![
                ("model_not_found", Some("body.model"), Some(1)),
                ("model_not_found", Some("body.model"), Some(2)),
            ]
        );
        assert!(
            errs[0].message.contains("`no-such-model`"),
            "{}",
            errs[0].message
        );
        let any = Limits {
            any_model: true,
            ..LIMITS
        };
        let ok = run_at("/v1/chat/completions", &content, any).expect("any model");
        assert_eq!(ok.snapshot.as_deref(), Some("no-such-model"));
    }

    #[test]
    fn limits_and_empty() {
        let content = format!(
            "{}{}{}",
            line("a", "gpt-4o-mini", "x"),
            line("b", "gpt-4o-mini", "x"),
            line("c", "gpt-4o-mini", "x")
        );
        let errs = run(&content, 2).expect_err("too many");
        assert_eq!(codes(&errs), vec![("too_many_tasks", None, Some(3))]);
        assert!(run(&content, 3).is_ok());
        let errs = run("\n\n", 2).expect_err("empty");
        assert_eq!(codes(&errs), vec![("empty_file", None, None)]);
    }

    #[test]
    fn malformed_lines_get_the_direct_request_codes() {
        let content = concat!(
            "{\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o-mini\"}}\n",
            "{\"custom_id\":7,\"method\":\"GET\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"gpt-4o-mini\"}}\n",
            "{\"custom_id\":\"c\",\"method\":\"POST\",\"body\":[]}\n",
            "{\"custom_id\":\"d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n",
        );
        let errs = run(content, 10).expect_err("malformed");
        assert_eq!(
            codes(&errs),
            vec![
                ("missing_required_parameter", Some("custom_id"), Some(1)),
                ("invalid_type", Some("custom_id"), Some(2)),
                ("invalid_value", Some("method"), Some(2)),
                ("missing_required_parameter", Some("url"), Some(3)),
                ("invalid_type", Some("body"), Some(3)),
                ("missing_required_parameter", Some("body.model"), Some(4)),
            ]
        );
    }

    #[test]
    fn embedding_inputs_are_summed_over_the_batch() {
        let emb = |id: &str, input: &str| {
            format!(
                "{{\"custom_id\":\"{id}\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{{\"model\":\"text-embedding-3-small\",\"input\":{input}}}}}\n"
            )
        };
        let limits = Limits {
            max_embedding_inputs: 5,
            ..LIMITS
        };
        // 2 + 1 (one tokenized input) + 2 (two token arrays) = 5: at the limit.
        let at_limit = format!(
            "{}{}{}",
            emb("a", "[\"x\",\"y\"]"),
            emb("b", "[1,2,3]"),
            emb("c", "[[1],[2]]")
        );
        assert!(run_at("/v1/embeddings", &at_limit, limits).is_ok());
        let over = format!("{at_limit}{}{}", emb("d", "\"z\""), emb("e", "\"w\""));
        let errs = run_at("/v1/embeddings", &over, limits).expect_err("over");
        assert_eq!(
            codes(&errs),
            vec![("too_many_tasks", Some("body.input"), Some(4))]
        );
        assert!(
            errs[0].message.contains("embedding inputs"),
            "{}",
            errs[0].message
        );
    }
}
