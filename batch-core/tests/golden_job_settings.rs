//! Golden tests of what a job sends for its batch settings: the upload of a
//! shard carries `expires_after` when `file_expires_after` is set, and the
//! create carries the completion window, the caller's metadata beside the
//! job's own keys, and `output_expires_after`. Exact bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batch_core::UnixMillis;
use batch_core::api::{ApiBase, ApiConfig, CompletionWindow, Outgoing};
use batch_core::http::{self, Request};
use batch_core::input::BatchRequest;
use batch_core::job::{BatchJob, BatchOptions, ExchangeId, Job, JobConfig, Step, StopAfter};

const T0: UnixMillis = UnixMillis(1_700_000_000_000);

/// A Groq-like service: it accepts the `7d` window these tests send
/// (OpenAI's own API takes only `24h`).
fn api() -> ApiBase {
    ApiBase::new(
        &ApiConfig::new("sk-golden")
            .with_base_url("http://golden.invalid/v1")
            .with_provider(batch_core::api::Provider::groq()),
    )
    .expect("api base")
}

fn one_request_job(options: &BatchOptions) -> BatchJob {
    let line =
        br#"{"custom_id":"a","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#;
    let req = BatchRequest::parse_line("in.jsonl", 1, line).expect("line");
    BatchJob::from_requests(&[req], options, 7).expect("plan")
}

/// Polls until the job asks to send something.
fn next_send(job: &mut Job) -> (ExchangeId, Request<Outgoing>) {
    for _ in 0..100 {
        match job.poll(T0) {
            Step::Send { id, request } => return (id, request),
            Step::Persist(_) | Step::Event(_) => {}
            other => panic!("expected a request, got {other:?}"),
        }
    }
    panic!("no request after 100 steps");
}

fn answer(job: &mut Job, id: ExchangeId, body: &str) {
    let (head, ()) = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(())
        .expect("head")
        .into_parts();
    job.handle_head(id, head, T0).expect("head");
    let _ = job.handle_body(id, body.as_bytes()).expect("body");
    job.handle_end(id, T0).expect("end");
}

fn body_text(req: &Request<Outgoing>) -> String {
    match req.body() {
        Outgoing::Json(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
        Outgoing::Multipart { head, .. } => String::from_utf8(head.to_vec()).expect("utf-8"),
        other => panic!("unexpected body {other:?}"),
    }
}

/// The upload and create requests a job with `options` sends first.
fn first_upload_and_create(options: &BatchOptions) -> (Request<Outgoing>, Request<Outgoing>) {
    let handle = one_request_job(options);
    let mut job = handle.job(api(), StopAfter::Submitted, T0).expect("job");
    let (id, upload) = next_send(&mut job);
    assert_eq!(upload.uri().path(), "/v1/files");
    let bytes = handle.plan().shards()[0].bytes;
    answer(
        &mut job,
        id,
        &format!(
            r#"{{"id":"file-1","object":"file","bytes":{bytes},"created_at":1700000000,"filename":"s.jsonl","purpose":"batch","status":"processed"}}"#
        ),
    );
    let (_, create) = next_send(&mut job);
    assert_eq!(create.uri().path(), "/v1/batches");
    (upload, create)
}

fn boundary(req: &Request<Outgoing>) -> String {
    let ct = req.headers()["content-type"].to_str().expect("ascii");
    ct.strip_prefix("multipart/form-data; boundary=")
        .expect("multipart")
        .to_owned()
}

#[test]
fn settings_reach_the_upload_and_the_create() {
    let options = BatchOptions::new("m")
        .completion_window(CompletionWindow::parse("7d"))
        .metadata("team", "ml")
        .metadata("run", "nightly")
        .output_expires_after(7200)
        .file_expires_after(86_400);
    assert_eq!(options.validate(), Ok(()));
    let (upload, create) = first_upload_and_create(&options);
    let b = boundary(&upload);
    assert_eq!(
        body_text(&upload),
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"expires_after[anchor]\"\r\n\r\ncreated_at\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"expires_after[seconds]\"\r\n\r\n86400\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"job-0000000000000007-shard-00000.jsonl\"\r\n\
             Content-Type: application/jsonl\r\n\r\n"
        )
    );
    assert_eq!(
        body_text(&create),
        r#"{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"7d","metadata":{"openai_batch_attempt":"1","openai_batch_job":"job-0000000000000007","openai_batch_shard":"0","run":"nightly","team":"ml"},"output_expires_after":{"anchor":"created_at","seconds":7200}}"#
    );
}

#[test]
fn without_settings_the_requests_carry_only_the_defaults() {
    let (upload, create) = first_upload_and_create(&BatchOptions::new("m"));
    let head = body_text(&upload);
    assert!(!head.contains("expires_after"), "{head}");
    assert_eq!(
        body_text(&create),
        r#"{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"openai_batch_attempt":"1","openai_batch_job":"job-0000000000000007","openai_batch_shard":"0"}}"#
    );
}

#[test]
fn job_config_checks_its_settings() {
    let mut cfg = JobConfig::new(api());
    assert_eq!(cfg.validate_settings(), Ok(()));
    cfg.completion_window = CompletionWindow::parse("tomorrow");
    assert!(cfg.validate_settings().is_err());
    cfg.completion_window = CompletionWindow::parse("48h");
    cfg.metadata
        .insert("openai_batch_job".into(), "mine".into());
    assert_eq!(
        cfg.validate_settings().map_err(|e| e.to_string()),
        Err(
            "metadata key \"openai_batch_job\" is set by the job itself; choose another key".into()
        )
    );
}

#[test]
fn a_job_with_bad_settings_is_refused_before_it_is_planned() {
    let options = BatchOptions::new("m").metadata("openai_batch_shard", "7");
    let line =
        br#"{"custom_id":"a","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#;
    let req = BatchRequest::parse_line("in.jsonl", 1, line).expect("line");
    let err = BatchJob::from_requests(&[req], &options, 7).expect_err("refused");
    assert_eq!(err.field, "metadata");
    assert_eq!(
        err.to_string(),
        "options:0: field `metadata`: metadata key \"openai_batch_shard\" is set by the job itself; choose another key"
    );
}
