//! Both transports against a small raw HTTP server that misbehaves on
//! purpose: HTML 200s, silence, trickles, a result file that never ends,
//! redirects, a 401 that echoes the key. Every run ends, with a bounded
//! number of attempts and bytes, and says why.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_core::api::ApiBase;
use batch_core::job::{Job, JobConfig, JobEvent, JobOutcome, JobSummary, ShardEnd};

use crate::common::*;

/// How the server answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    /// As the API would.
    Normal,
    /// `200 OK` with an HTML page (a proxy).
    Html200,
    /// Reads the request, then says nothing.
    Silent,
    /// A head, then one byte every 50 ms.
    Trickle,
    /// The answer, then junk for ever (no `Content-Length`).
    Endless,
    /// `302 Found` to a login page.
    Redirect,
    /// `401` whose message quotes the key it was sent.
    Echo401,
}

/// Chooses the act for the `n`-th (1-based) request to `route`.
type Script = dyn Fn(&str, u32) -> Act + Send + Sync;

const ITEMS: usize = 5;

struct Shared {
    script: Box<Script>,
    counts: Mutex<BTreeMap<String, u32>>,
    /// Bytes of junk written after an answer that never ends.
    endless_bytes: AtomicU64,
    output: Vec<u8>,
}

/// A loopback server that answers the Files and Batches routes a job uses,
/// one connection per request.
struct RawServer {
    base: String,
    shared: Arc<Shared>,
}

impl RawServer {
    fn start(script: impl Fn(&str, u32) -> Act + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            script: Box::new(script),
            counts: Mutex::new(BTreeMap::new()),
            endless_bytes: AtomicU64::new(0),
            output: output_file(),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(&s, stream));
            }
        });
        RawServer { base, shared }
    }

    fn count(&self, route: &str) -> u32 {
        self.shared
            .counts
            .lock()
            .expect("counts")
            .get(route)
            .copied()
            .unwrap_or(0)
    }
}

fn output_file() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..ITEMS {
        let line = serde_json::json!({
            "id": format!("batch_req_{i}"), "custom_id": format!("req-{i:05}"),
            "response": {"status_code": 200, "request_id": "r", "body": {
                "id": "c", "object": "chat.completion", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}},
            "error": null,
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn batch_json(status: &str) -> Vec<u8> {
    serde_json::json!({
        "id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "errors": null,
        "input_file_id": "file-in", "completion_window": "24h", "status": status,
        "output_file_id": if status == "completed" { Some("file-out") } else { None },
        "error_file_id": null, "created_at": 1_700_000_000, "in_progress_at": null,
        "expires_at": 1_700_086_400, "finalizing_at": null, "completed_at": null, "failed_at": null,
        "expired_at": null, "cancelling_at": null, "cancelled_at": null,
        "request_counts": {"total": ITEMS, "completed": if status == "completed" { ITEMS } else { 0 }, "failed": 0},
        "metadata": null,
    })
    .to_string()
    .into_bytes()
}

fn file_json(id: &str, bytes: usize) -> Vec<u8> {
    serde_json::json!({"id": id, "object": "file", "bytes": bytes, "created_at": 1_700_000_000,
        "filename": "in.jsonl", "purpose": "batch", "status": "processed"})
    .to_string()
    .into_bytes()
}

/// Reads one request: the route it names, its `Authorization` value.
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let mut length = 0usize;
    let mut auth = String::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    let path = target.split('?').next().unwrap_or("").to_owned();
    let route = match (method.as_str(), path.as_str()) {
        ("POST", "/v1/files") => "upload",
        ("GET", "/v1/files") => "list files",
        ("GET", "/v1/files/file-out") => "file info",
        ("GET", "/v1/files/file-out/content") => "content",
        ("POST", "/v1/batches") => "create",
        ("GET", "/v1/batches") => "list batches",
        ("GET", "/v1/batches/batch_1") => "poll",
        _ => "other",
    };
    Some((route.to_owned(), auth))
}

fn respond(stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(s: &Shared, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((route, auth)) = read_request(&mut stream) else {
        return;
    };
    let n = {
        let mut counts = s.counts.lock().expect("counts");
        let c = counts.entry(route.clone()).or_default();
        *c += 1;
        *c
    };
    let json = "Content-Type: application/json\r\n";
    match (s.script)(&route, n) {
        Act::Normal => {
            let body = match route.as_str() {
                "upload" => file_json("file-in", 1000),
                "list files" | "list batches" => {
                    br#"{"object":"list","data":[],"has_more":false}"#.to_vec()
                }
                "create" => batch_json("in_progress"),
                "poll" => batch_json("completed"),
                "file info" => file_json("file-out", s.output.len()),
                "content" => s.output.clone(),
                _ => {
                    return respond(
                        &mut stream,
                        "404 Not Found",
                        json,
                        br#"{"error":{"message":"no route"}}"#,
                    );
                }
            };
            respond(&mut stream, "200 OK", json, &body);
        }
        Act::Html200 => respond(
            &mut stream,
            "200 OK",
            "Content-Type: text/html\r\n",
            b"<html><body>Proxy maintenance</body></html>",
        ),
        Act::Silent => {
            // Hold the connection until the client drops it.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        }
        Act::Trickle => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
            );
            for _ in 0..100_000 {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Act::Endless => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            if stream.write_all(&s.output).is_err() {
                return;
            }
            let junk = b"{\"junk\": true}\n".repeat(4096);
            while stream.write_all(&junk).is_ok() {
                s.endless_bytes
                    .fetch_add(junk.len() as u64, Ordering::Relaxed);
            }
        }
        Act::Redirect => respond(
            &mut stream,
            "302 Found",
            "Location: https://login.example.com/sso\r\n",
            b"",
        ),
        Act::Echo401 => {
            let key = auth.strip_prefix("Bearer ").unwrap_or(&auth);
            let body = format!(
                r#"{{"error":{{"message":"Incorrect API key provided: {key}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
            );
            respond(&mut stream, "401 Unauthorized", json, body.as_bytes());
        }
    }
}

/// Short bounds and fast retries, so a scenario ends in a few seconds.
fn config(base: &str) -> JobConfig {
    let mut cfg = job_config(base, 1);
    cfg.retry.max_attempts = 4;
    cfg.retry.base_delay = Duration::from_millis(20);
    cfg.retry.max_delay = Duration::from_millis(100);
    cfg.exchange.stall_window = Duration::from_millis(400);
    cfg.exchange.stall_min_bytes = 64;
    cfg.exchange.json_deadline = Duration::from_secs(3);
    cfg.exchange.transfer_grace = Duration::from_secs(3);
    cfg
}

struct Ran {
    who: &'static str,
    summary: JobSummary,
    io_events: Vec<JobEvent>,
    texts: String,
    server: RawServer,
}

impl Ran {
    /// Every request's not-processed message, checking its code.
    fn not_processed(&self, results: &[batch_core::job::JobResult], code: &str) -> Vec<String> {
        assert_eq!(results.len(), ITEMS, "{}", self.who);
        results
            .iter()
            .map(|r| match &r.outcome {
                JobOutcome::NotProcessed(np) => {
                    assert_eq!(np.code, code, "{}: {}", self.who, np.message);
                    np.message.clone()
                }
                other => panic!("{}: expected not processed, got {other:?}", self.who),
            })
            .collect()
    }
}

/// Runs a 5-request job through both transports, each against its own
/// server following `script`.
fn run_both(
    script: impl Fn(&str, u32) -> Act + Send + Sync + Clone + 'static,
    check: impl Fn(&Ran, &[batch_core::job::JobResult]) + Sync,
) {
    let items = items(ITEMS, |_| None);
    let handle = plan(&items, 100, 1);
    let run = |blocking: bool| {
        let server = RawServer::start(script.clone());
        let t: Box<dyn Transport> = if blocking {
            Box::new(Blocking::new(&server.base, KEY))
        } else {
            Box::new(Async::new(&server.base, KEY))
        };
        let mut job = Job::new(config(&server.base), handle.plan().clone(), t.now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = t
            .run(&mut job, &mut io)
            .unwrap_or_else(|e| panic!("{}: {e:?}", t.name()));
        let mut results = io.results.clone();
        results.sort_by_key(|r| r.index);
        let texts = format!("{summary:?}\n{:?}\n{:?}\n{job:?}", io.results, io.events());
        let ran = Ran {
            who: t.name(),
            summary,
            io_events: io.events(),
            texts,
            server,
        };
        check(&ran, &results);
    };
    std::thread::scope(|s| {
        let b = s.spawn(|| run(true));
        let a = s.spawn(|| run(false));
        for h in [b, a] {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
}

#[test]
fn an_html_200_on_every_poll_is_given_up_after_the_cap() {
    run_both(
        |route, _| {
            if route == "poll" {
                Act::Html200
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            assert_eq!(
                ran.server.count("poll"),
                4,
                "{}: one poll per attempt",
                ran.who
            );
            for m in ran.not_processed(results, "gave_up") {
                assert!(
                    m.contains("gave up on poll after 4 attempts"),
                    "{}: {m}",
                    ran.who
                );
                assert!(m.contains("Proxy maintenance"), "{}: {m}", ran.who);
            }
            assert_eq!(ran.summary.shards[0].end, Some(ShardEnd::Stopped));
        },
    );
}

#[test]
fn a_silent_server_is_cut_by_the_stall_rule() {
    run_both(
        |route, _| {
            if route == "poll" {
                Act::Silent
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            assert_eq!(ran.server.count("poll"), 4, "{}", ran.who);
            for m in ran.not_processed(results, "gave_up") {
                assert!(
                    m.contains("stalled: fewer than 64 bytes"),
                    "{}: {m}",
                    ran.who
                );
            }
        },
    );
}

#[test]
fn a_trickled_answer_is_cut_by_the_stall_rule() {
    run_both(
        |route, _| {
            if route == "poll" {
                Act::Trickle
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            assert_eq!(ran.server.count("poll"), 4, "{}", ran.who);
            for m in ran.not_processed(results, "gave_up") {
                assert!(m.contains("stalled"), "{}: {m}", ran.who);
            }
        },
    );
}

#[test]
fn a_result_file_that_never_ends_is_cut_at_its_declared_size() {
    run_both(
        |route, _| {
            if route == "content" {
                Act::Endless
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            assert!(ran.summary.complete, "{}: {:?}", ran.who, ran.summary);
            assert_eq!(ran.summary.succeeded, ITEMS as u64, "{}", ran.who);
            assert_eq!(ran.summary.bad_lines, 0, "{}: junk was read", ran.who);
            assert_eq!(results.len(), ITEMS);
            assert_eq!(ran.server.count("content"), 1, "{}", ran.who);
            assert!(
                ran.io_events.iter().any(|e| matches!(e,
                    JobEvent::Warning { message, .. } if message.contains("declares"))),
                "{}",
                ran.who
            );
            // Stopped early: what the server managed to write is a few socket buffers.
            let written = ran.server.shared.endless_bytes.load(Ordering::Relaxed);
            assert!(
                written < 64 << 20,
                "{}: {written} bytes of junk written",
                ran.who
            );
        },
    );
}

#[test]
fn a_redirect_on_every_poll_ends_the_shard_naming_it() {
    run_both(
        |route, _| {
            if route == "poll" {
                Act::Redirect
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            assert_eq!(ran.server.count("poll"), 4, "{}", ran.who);
            for m in ran.not_processed(results, "batch_unavailable") {
                assert!(m.contains("302"), "{}: {m}", ran.who);
                assert!(
                    m.contains("https://login.example.com/sso"),
                    "{}: {m}",
                    ran.who
                );
            }
        },
    );
}

#[test]
fn a_one_off_redirect_and_html_only_delay_the_job() {
    run_both(
        |route, n| match (route, n) {
            ("poll", 1) => Act::Redirect,
            ("poll", 2) | ("file info", 1) => Act::Html200,
            _ => Act::Normal,
        },
        |ran, results| {
            assert!(ran.summary.complete, "{}: {:?}", ran.who, ran.summary);
            assert_eq!(ran.summary.succeeded, ITEMS as u64);
            assert_eq!(results.len(), ITEMS);
            assert_eq!(ran.server.count("poll"), 3, "{}", ran.who);
        },
    );
}

#[test]
fn a_key_echoed_by_the_server_is_redacted() {
    run_both(
        |route, _| {
            if route == "poll" || route == "list batches" {
                Act::Echo401
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            let error = ran.summary.error.as_deref().unwrap_or_default();
            assert!(
                error.contains(&format!(
                    "Incorrect API key provided: {}",
                    ApiBase::REDACTED
                )),
                "{}: {error}",
                ran.who
            );
            assert_eq!(results.len(), ITEMS);
            assert!(
                !ran.texts.contains(KEY),
                "{}: the key leaked:\n{}",
                ran.who,
                ran.texts
            );
            // The transports' own error values too.
            let t: Box<dyn Transport> = if ran.who == "blocking" {
                Box::new(Blocking::new(&ran.server.base, KEY))
            } else {
                Box::new(Async::new(&ran.server.base, KEY))
            };
            let err = t.list(None, None).expect_err("a 401");
            let text = err.texts();
            assert!(text.contains(ApiBase::REDACTED), "{}: {text}", ran.who);
            assert!(!text.contains(KEY), "{}: the key leaked: {text}", ran.who);
        },
    );
}

#[test]
fn a_server_that_takes_an_upload_and_never_answers_is_cut_by_the_stall_rule() {
    run_both(
        |route, _| {
            if route == "upload" {
                Act::Silent
            } else {
                Act::Normal
            }
        },
        |ran, results| {
            // Each cut upload may have landed: it is looked for before the next.
            assert_eq!(ran.server.count("upload"), 4, "{}", ran.who);
            assert!(ran.server.count("list files") >= 3, "{}", ran.who);
            for m in ran.not_processed(results, "gave_up") {
                assert!(m.contains("gave up on upload"), "{}: {m}", ran.who);
                // Not its size-scaled deadline: the stall rule, once the body was out.
                assert!(m.contains("stalled"), "{}: {m}", ran.who);
            }
        },
    );
}

/// `download_file` by id is held to the client's exchange limits, as a
/// job's downloads are: a file trickled a byte at a time is cut by the
/// stall rule (not left to run for the hours its declared size would allow
/// at that pace), on both transports.
#[test]
fn a_trickled_download_by_id_is_cut_by_the_stall_rule() {
    let server = RawServer::start(|route, _| {
        if route == "content" {
            Act::Trickle
        } else {
            Act::Normal
        }
    });
    let config = || {
        let mut c = batch_core::job::ClientConfig::new(api_config(&server.base, KEY));
        c.connect_timeout = Duration::from_secs(5);
        c.io_timeout = Duration::from_secs(20);
        c.exchange.stall_window = Duration::from_millis(400);
        c.exchange.stall_min_bytes = 64;
        c
    };
    let check = |who: &str, err: String, written: usize| {
        assert!(
            err.contains("file-out: the download stalled (fewer than 64 bytes in 400 ms)"),
            "{who}: {err}"
        );
        assert!(
            written < 64,
            "{who}: {written} bytes written before the cut"
        );
    };

    let client = batch_blocking::Client::new(config()).expect("blocking client");
    let mut out = Vec::new();
    let err = client
        .download_file("file-out", &mut out)
        .expect_err("the trickle is cut");
    check("blocking", err.to_string(), out.len());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = batch_async::Client::new(config()).expect("async client");
    let mut out = Vec::new();
    let err = rt
        .block_on(client.download_file("file-out", &mut out))
        .expect_err("the trickle is cut");
    check("async", err.to_string(), out.len());
    assert_eq!(
        server.count("content"),
        2,
        "one download per transport, no retry"
    );
}
