//! Webhooks instead of polling, through both transports: the emulator
//! announces each batch that ends to a small receiver here, which verifies
//! the message and passes the batch id to the running job through the
//! transport's `Hints` handle.
//!
//! With an hour-long poll interval, a job that finishes at all finished on
//! the webhook; the emulator's count of status polls (one per batch) shows
//! that no scheduled poll happened. Duplicate deliveries cost nothing, and
//! late or forged ones are refused, leaving the job to its polling.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_core::UnixMillis;
use batch_core::http::{HeaderMap, HeaderName, HeaderValue};
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{BatchJob, BatchOptions, JobOutcome, JobResult, JobSummary, ShardLimits};
use batch_core::job::{Job, StopAfter};
use batch_core::webhook::{Verifier, WebhookSecret};
use batch_emulator::{Counters, Emulator, EmulatorHandle, WebhookConfig, WebhookFault};

use crate::common::{KEY, MAX_WAIT, api_config};

/// The poll interval of the jobs that must finish on the webhook.
const HOUR: Duration = Duration::from_secs(3600);

fn secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_ZTJlIHdlYmhvb2sgc2VjcmV0IGJ5dGVz").expect("secret")
}

/// What the receiver did with the deliveries.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Verified deliveries, by batch id.
    accepted: BTreeMap<String, u32>,
    /// Deliveries refused (a bad signature, too old).
    refused: u32,
}

/// A one-route HTTP receiver on a thread: verifies each POST with the wall
/// clock and hands verified batch ids to `on_batch`.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(on_batch: impl Fn(&str) + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let verifier = Verifier::new(secret());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let Some((headers, body)) = read_request(&mut stream) else {
                    continue;
                };
                let now = {
                    use batch_blocking::Clock;
                    batch_blocking::SystemClock.now()
                };
                let status = match verifier.unwrap(&headers, &body, now) {
                    Ok(event) => {
                        if let Some(id) = event.batch_id() {
                            *seen2
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .accepted
                                .entry(id.to_owned())
                                .or_default() += 1;
                            on_batch(id);
                        }
                        "200 OK"
                    }
                    Err(_) => {
                        seen2.lock().unwrap_or_else(|e| e.into_inner()).refused += 1;
                        "400 Bad Request"
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks", self.addr)
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 request: its headers and its `content-length` body.
fn read_request(stream: &mut TcpStream) -> Option<(HeaderMap, Vec<u8>)> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = HeaderMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

fn emulator(receiver: &Receiver, fault: Option<WebhookFault>) -> EmulatorHandle {
    let mut webhook = WebhookConfig::new(receiver.url(), secret())
        .max_attempts(2)
        .first_retry(Duration::from_millis(20));
    if let Some(f) = fault {
        webhook = webhook.fault(f);
    }
    Emulator::builder()
        .speed(2000.0)
        .seed(5)
        .api_key(KEY)
        .webhook(webhook)
        .start_blocking()
        .expect("emulator starts")
}

/// `n` items in shards of three.
fn handle(n: usize, poll: Duration) -> BatchJob {
    let items: Vec<Item> = (0..n)
        .map(|i| Item::new(format!("w-{i}"), format!("question {i}")))
        .collect();
    let opts = BatchOptions::new(crate::common::MODEL)
        .poll_interval(poll)
        .limits(ShardLimits::new(3, 1 << 20));
    BatchJob::from_items(&items, &SystemPrompt::Text("Be brief.".into()), &opts, 77).expect("items")
}

fn new_job(handle: &BatchJob, base: &str, now: UnixMillis) -> Job {
    let api = batch_core::api::ApiBase::new(&api_config(base, KEY)).expect("api");
    handle.job(api, StopAfter::Finished, now).expect("job")
}

/// How a run ended, with the emulator's counters and what the receiver saw.
struct Run {
    summary: JobSummary,
    results: Vec<JobResult>,
    counters: Counters,
    seen: Seen,
}

/// Waits (bounded) until the emulator has made `attempts` webhook
/// deliveries, so that what the receiver saw is complete.
fn settle(emu: &EmulatorHandle, attempts: u64) -> Counters {
    let start = std::time::Instant::now();
    loop {
        let c = emu.counters();
        if c.webhook_attempts >= attempts || start.elapsed() > MAX_WAIT {
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a job of `n` items with the blocking transport, fed by webhooks,
/// then waits for `attempts` deliveries.
fn run_blocking(n: usize, poll: Duration, fault: Option<WebhookFault>, attempts: u64) -> Run {
    let (hints, inbox) = batch_blocking::hints();
    let receiver = Receiver::start(move |id| {
        let _ = hints.batch_changed(id);
    });
    let emu = emulator(&receiver, fault);
    let base = emu.base_url();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use batch_blocking::Clock;
        let mut handle = handle(n, poll);
        let mut job = new_job(&handle, &base, batch_blocking::SystemClock.now());
        let client =
            batch_blocking::Client::new(batch_blocking::ClientConfig::new(api_config(&base, KEY)))
                .expect("client");
        let mut results = Vec::new();
        let summary = {
            let mut io = handle.io(false, |r| results.push(r), |_| {});
            batch_blocking::run_with_hints(
                &mut job,
                &client,
                &batch_blocking::SystemClock,
                &mut io,
                inbox,
            )
        };
        let _ = done_tx.send(summary.map(|s| (s, results)).map_err(|e| e.to_string()));
    });
    // A guard against a hang: the job's own next poll may be an hour away.
    let (summary, results) = done_rx
        .recv_timeout(MAX_WAIT)
        .expect("the job ended in time")
        .expect("the job ran");
    Run {
        summary,
        results,
        counters: settle(&emu, attempts),
        seen: receiver.seen(),
    }
}

/// Runs a job of `n` items with the async transport, fed by webhooks, then
/// waits for `attempts` deliveries.
fn run_async(n: usize, poll: Duration, fault: Option<WebhookFault>, attempts: u64) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (hints, inbox) = batch_async::hints();
    let rt_handle = rt.handle().clone();
    let receiver = Receiver::start(move |id| {
        let _ = rt_handle.block_on(hints.batch_changed(id));
    });
    let emu = emulator(&receiver, fault);
    let base = emu.base_url();
    let (summary, results) = rt.block_on(async {
        use batch_async::Clock;
        let mut handle = handle(n, poll);
        let mut job = new_job(&handle, &base, batch_async::SystemClock.now());
        let client =
            batch_async::Client::new(batch_async::ClientConfig::new(api_config(&base, KEY)))
                .expect("client");
        let mut results = Vec::new();
        let summary = {
            let mut io = handle.io(false, |r| results.push(r), |_| {});
            // A guard against a hang: the job's own next poll may be an hour away.
            tokio::time::timeout(
                MAX_WAIT,
                batch_async::run_with_hints(
                    &mut job,
                    &client,
                    &batch_async::SystemClock,
                    &mut io,
                    inbox,
                ),
            )
            .await
            .expect("the job ended in time")
            .expect("the job ran")
        };
        (summary, results)
    });
    Run {
        summary,
        results,
        counters: settle(&emu, attempts),
        seen: receiver.seen(),
    }
}

fn assert_all_answered(run: &Run, n: usize) {
    assert!(run.summary.complete, "{:?}", run.summary);
    assert_eq!(run.summary.succeeded, n as u64);
    let mut results: Vec<&JobResult> = run.results.iter().collect();
    results.sort_by_key(|r| r.index);
    assert_eq!(results.len(), n);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.custom_id, format!("w-{i}"));
        assert!(matches!(r.outcome, JobOutcome::Succeeded(_)), "{r:?}");
    }
}

#[test]
fn an_hourly_polled_job_finishes_on_the_webhooks() {
    for (name, run) in [
        ("blocking", run_blocking(6, HOUR, None, 2)),
        ("async", run_async(6, HOUR, None, 2)),
    ] {
        assert_all_answered(&run, 6);
        // Two shards, two batches, each announced once and polled once: the
        // poll its webhook asked for.
        assert_eq!(run.seen.accepted.len(), 2, "{name}: {:?}", run.seen);
        assert!(run.seen.accepted.values().all(|n| *n == 1), "{name}");
        assert_eq!(run.counters.requests_on("batches.get"), 2, "{name}");
    }
}

#[test]
fn duplicate_deliveries_cost_nothing() {
    for (name, run) in [
        (
            "blocking",
            run_blocking(3, HOUR, Some(WebhookFault::Twice), 2),
        ),
        ("async", run_async(3, HOUR, Some(WebhookFault::Twice), 2)),
    ] {
        assert_all_answered(&run, 3);
        // Both copies were accepted, and passed on to the job...
        assert_eq!(
            run.seen.accepted.values().copied().collect::<Vec<_>>(),
            vec![2],
            "{name}"
        );
        // ...which polled its batch once.
        assert_eq!(run.counters.requests_on("batches.get"), 1, "{name}");
    }
}

#[test]
fn late_and_forged_deliveries_are_refused_and_polling_still_finishes() {
    let poll = Duration::from_millis(100);
    for fault in [
        WebhookFault::Late(Duration::from_secs(600)),
        WebhookFault::BadSignature,
    ] {
        for (name, run) in [
            ("blocking", run_blocking(3, poll, Some(fault), 2)),
            ("async", run_async(3, poll, Some(fault), 2)),
        ] {
            // The job finished by polling...
            assert_all_answered(&run, 3);
            // ...while both attempts of the one event were refused.
            assert!(run.seen.accepted.is_empty(), "{name} {fault:?}");
            assert_eq!(run.seen.refused, 2, "{name} {fault:?}");
            assert_eq!(run.counters.webhook_attempts, 2, "{name} {fault:?}");
            assert_eq!(run.counters.webhooks_delivered, 0, "{name} {fault:?}");
        }
    }
}
