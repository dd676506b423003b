//! The Job against a misbehaving server, in the simulation: answers that
//! are 2xx but not JSON, odd statuses on a read, a cancel refused with 409,
//! an echoed API key. Every run ends, with a bounded number of attempts and
//! a growing backoff, and says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use batch_core::api::ApiBase;
use batch_core::http::Method;
use batch_core::job::{JobConfig, JobEvent, JobOutcome, JobPlan, ShardEnd, ShardLimits, Step};
use batch_core::retry::RetryPolicy;
use common::*;

const T0: u64 = 1_700_000_000_000;
/// The key of the simulation's `api()`.
const KEY: &str = "sk-sim-secret";

/// 10 requests (one fails) in one shard.
fn one_shard(tweak: impl FnOnce(&mut JobConfig)) -> (batch_core::job::Job, JobPlan, Harness) {
    let reqs = requests(10, Some(10));
    let (job, plan, shards, _) = job_for(&reqs, ShardLimits::new(10, 1 << 20), tweak);
    assert_eq!(plan.shards().len(), 1);
    let h = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    (job, plan, h)
}

fn html_200() -> Fault {
    Fault::Reply {
        status: 200,
        headers: vec![("content-type", "text/html".into())],
        body: b"<html><body><h1>Proxy maintenance</h1></body></html>".to_vec(),
    }
}

/// The `attempt` of each `Retrying` event of `op`, in order.
fn attempts_of(h: &Harness, op: &str) -> Vec<u32> {
    h.events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying { op: o, attempt, .. } if *o == op => Some(*attempt),
            _ => None,
        })
        .collect()
}

/// The times at which requests matching `pred` were sent.
fn times_of(h: &Harness, pred: impl Fn(&Logged) -> bool) -> Vec<u64> {
    h.log
        .iter()
        .filter(|l| pred(l))
        .map(|l| l.at.as_millis())
        .collect()
}

/// Gaps between consecutive attempts are at least the policy's backoff
/// for that attempt (full jitter gives at least half the ceiling).
fn assert_backoff_grows(times: &[u64], policy: &RetryPolicy) {
    assert!(times.len() >= 2, "{times:?}");
    for (k, w) in times.windows(2).enumerate() {
        let floor = u64::try_from(policy.ceiling(k as u32 + 1).as_millis()).unwrap() / 2;
        assert!(
            w[1] - w[0] >= floor,
            "attempt {} came {} ms after the one before, under the backoff floor {floor} ms",
            k + 2,
            w[1] - w[0]
        );
    }
    let first = times[1] - times[0];
    let last = times[times.len() - 1] - times[times.len() - 2];
    assert!(
        last >= 30 * first,
        "the backoff did not grow: {first} ms, then {last} ms"
    );
}

fn all_not_processed(h: &Harness, plan: &JobPlan, code: &str) -> Vec<String> {
    (0..plan.len())
        .map(|i| {
            let np = h.not_processed(i);
            assert_eq!(np.code, code, "request {i}: {}", np.message);
            np.message.clone()
        })
        .collect()
}

#[test]
fn an_html_200_on_every_upload_backs_off_and_gives_up() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let policy = job.config().retry.clone();
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) {
            html_200()
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let uploads = times_of(&h, |l| {
        l.method == Method::POST && l.path.ends_with("/files")
    });
    assert_eq!(uploads.len() as u32, policy.max_attempts, "{uploads:?}");
    // The counter is not reset by the 2xx: attempts 2, 3, ... up to the cap.
    assert_eq!(
        attempts_of(&h, "upload"),
        (2..=policy.max_attempts).collect::<Vec<_>>()
    );
    assert_backoff_grows(&uploads, &policy);
    for m in all_not_processed(&h, &plan, "gave_up") {
        assert!(m.contains("gave up on upload after 12 attempts"), "{m}");
        assert!(m.contains("unreadable upload response"), "{m}");
        assert!(m.contains("Proxy maintenance"), "the cause is named: {m}");
    }
    assert_eq!(summary.shards[0].end, Some(ShardEnd::Stopped));
    assert!(!summary.complete);
}

#[test]
fn an_html_200_on_every_create_backs_off_and_gives_up() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let policy = job.config().retry.clone();
    let opts = RunOpts::faults(|_, r| {
        if is_create(r) {
            html_200()
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let creates = times_of(&h, |l| {
        l.method == Method::POST && l.path.ends_with("/batches")
    });
    assert_eq!(creates.len() as u32, policy.max_attempts);
    assert_backoff_grows(&creates, &policy);
    for m in all_not_processed(&h, &plan, "gave_up") {
        assert!(m.contains("unreadable create response"), "{m}");
        assert!(m.contains("Proxy maintenance"), "{m}");
    }
    assert!(!summary.complete);
}

#[test]
fn an_html_200_on_every_poll_backs_off_and_gives_up() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let policy = job.config().retry.clone();
    let opts = RunOpts::faults(|_, r| if is_poll(r) { html_200() } else { Fault::None });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let polls = times_of(&h, |l| {
        l.method == Method::GET && l.path.contains("/batches/")
    });
    assert_eq!(polls.len() as u32, policy.max_attempts);
    assert_eq!(
        attempts_of(&h, "poll"),
        (2..=policy.max_attempts).collect::<Vec<_>>()
    );
    assert_backoff_grows(&polls, &policy);
    for m in all_not_processed(&h, &plan, "gave_up") {
        assert!(m.contains("gave up on poll after 12 attempts"), "{m}");
        assert!(m.contains("cannot decode batch from a 200 response"), "{m}");
    }
    assert!(!summary.complete);
    // The batch was created once and is still there for a resumed job.
    assert_eq!(h.sim.batch_count(), 1);
}

#[test]
fn an_html_200_now_and_then_only_delays_the_job() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let mut n = 0;
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) || is_create(r) || is_poll(r) {
            n += 1;
            if n % 2 == 1 {
                return html_200();
            }
        }
        Fault::None
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.succeeded + summary.failed, 10);
    h.assert_no_double_effects(&plan);
}

fn redirect() -> Fault {
    Fault::Reply {
        status: 302,
        headers: vec![("location", "https://login.example.com/sso".into())],
        body: Vec::new(),
    }
}

#[test]
fn one_odd_status_on_a_poll_does_not_end_the_shard() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let mut polls = 0;
    let opts = RunOpts::faults(|_, r| {
        if is_poll(r) {
            polls += 1;
            match polls {
                2 => return redirect(),
                3 => {
                    return Fault::Reply {
                        status: 404,
                        headers: Vec::new(),
                        body: b"<html>Not Found</html>".to_vec(),
                    };
                }
                _ => {}
            }
        }
        Fault::None
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.succeeded + summary.failed, 10);
    let reasons: Vec<&str> = h
        .events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying {
                op: "poll", reason, ..
            } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("302") && reasons[0].contains("login.example.com"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("404"), "{}", reasons[1]);
}

#[test]
fn odd_statuses_on_every_poll_end_the_shard_naming_the_answer() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let cap = job.config().retry.odd_status_attempts;
    let opts = RunOpts::faults(|_, r| if is_poll(r) { redirect() } else { Fault::None });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let polls = times_of(&h, |l| {
        l.method == Method::GET && l.path.contains("/batches/")
    });
    assert_eq!(polls.len() as u32, cap);
    for m in all_not_processed(&h, &plan, "batch_unavailable") {
        assert!(m.contains(&format!("gave up after {cap} attempts")), "{m}");
        assert!(
            m.contains("302") && m.contains("https://login.example.com/sso"),
            "{m}"
        );
    }
    assert!(!summary.complete);
}

#[test]
fn a_cancel_answered_409_reads_the_ended_batch_and_collects_it() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let finalize_ms = h.sim.cfg.finalize_ms;
    // Run until the job has seen the batch finalizing.
    let opts = RunOpts {
        pause: Some(Box::new(|h: &Harness| {
            h.events.iter().any(|e| {
                matches!(e, JobEvent::Progress { status, .. }
                    if *status == batch_core::api::BatchStatus::Finalizing)
            })
        })),
        ..RunOpts::default()
    };
    assert!(matches!(h.run_with(&mut job, opts), RunEnd::Paused));
    // The batch completes on the server; then the user cancels. The real
    // API answers 409 to cancelling a batch that has ended.
    h.now = UnixMillis(h.now.as_millis() + finalize_ms + 1);
    job.cancel(h.now);
    let cancelled_at = h.now.as_millis();
    let conflict = Fault::Reply {
        status: 409,
        headers: vec![("content-type", "application/json".into())],
        body: br#"{"error":{"message":"Cannot cancel a batch with status 'completed'.","type":"invalid_request_error","param":null,"code":null}}"#.to_vec(),
    };
    let opts = RunOpts::faults(|_, r| {
        if is_cancel(r) {
            conflict.clone()
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    assert_eq!(
        h.sim.counters.cancels, 0,
        "the 409 came instead of the server"
    );
    let cancels = times_of(&h, |l| l.path.ends_with("/cancel"));
    assert_eq!(cancels.len(), 1, "a 409 is not retried");
    // The batch is read at once, and every result is collected.
    let next_poll = h
        .log
        .iter()
        .find(|l| {
            l.at.as_millis() >= cancelled_at
                && l.method == Method::GET
                && l.path.contains("/batches/")
        })
        .unwrap();
    assert_eq!(next_poll.at.as_millis(), cancels[0]);
    assert_eq!(summary.succeeded + summary.failed, 10);
    assert_eq!(summary.not_processed, 0);
    assert!(summary.complete && summary.cancelled);
    assert_eq!(
        summary.shards[0].status,
        Some(batch_core::api::BatchStatus::Completed)
    );
    assert!(h.events.iter().any(|e| matches!(e,
        JobEvent::Warning { message, .. } if message.contains("already ended"))));
}

#[test]
fn an_echoed_key_is_redacted_from_messages_events_and_outcomes() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let echo = |status: u16| {
        Fault::Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
        )
        .into_bytes(),
    }
    };
    let (mut uploads, mut lists) = (0, 0);
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) && uploads == 0 {
            uploads += 1;
            // A 2xx that is not JSON and quotes the key, then a 500 that does.
            return Fault::Reply {
                status: 200,
                headers: Vec::new(),
                body: format!("<html>bad gateway for Bearer {KEY}</html>").into_bytes(),
            };
        }
        if is_list(r) && lists == 0 {
            lists += 1;
            return echo(500);
        }
        if is_poll(r) {
            return echo(401);
        }
        Fault::None
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let mut texts = vec![format!("{summary:?}"), format!("{job:?}")];
    texts.extend(h.events.iter().map(|e| format!("{e:?}")));
    texts.extend(h.durable.values().map(|r| format!("{r:?}")));
    let all = texts.join("\n");
    assert!(!all.contains(KEY), "the key leaked:\n{all}");
    assert!(
        all.contains(ApiBase::REDACTED),
        "the server's words are kept:\n{all}"
    );
    let error = summary.error.as_deref().unwrap();
    assert!(
        error.contains("Incorrect API key provided: [redacted key]"),
        "{error}"
    );
    assert!(
        matches!(&h.durable[&0].outcome, JobOutcome::NotProcessed(np) if !np.message.contains(KEY))
    );
}

// ----- bounded exchanges -----

fn retry_reasons<'a>(h: &'a Harness, op: &str) -> Vec<&'a str> {
    h.events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Retrying { op: o, reason, .. } if *o == op => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_server_is_cut_at_the_stall_window_and_given_up() {
    // A stall window longer than the poll interval: the job's `Wait` must
    // wake the driver for the judgement, not only for the next poll.
    let (mut job, plan, mut h) = one_shard(|c| c.exchange.stall_window = Duration::from_secs(45));
    let policy = job.config().retry.clone();
    let opts = RunOpts::faults(|_, r| {
        if is_poll(r) {
            Fault::Silent
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let polls: Vec<_> = h
        .log
        .iter()
        .filter(|l| l.method == Method::GET && l.path.contains("/batches/"))
        .collect();
    assert_eq!(polls.len() as u32, policy.max_attempts);
    assert_eq!(h.aborted.len(), polls.len(), "each silent poll is aborted");
    // Each is cut exactly one stall window after it was sent.
    for (p, (_, at)) in polls.iter().zip(&h.aborted) {
        assert_eq!(at.as_millis() - p.at.as_millis(), 45_000);
    }
    // Giving up takes the windows plus the backoff, within the policy's bounds.
    let took = h.aborted.last().unwrap().1.as_millis() - polls[0].at.as_millis();
    let backoff: u64 = (1..policy.max_attempts)
        .map(|a| u64::try_from(policy.ceiling(a).as_millis()).unwrap())
        .sum();
    let windows = 45_000 * u64::from(policy.max_attempts);
    assert!(
        took >= windows + backoff / 2 && took <= windows + backoff,
        "took {took} ms"
    );
    for m in all_not_processed(&h, &plan, "gave_up") {
        assert!(m.contains("gave up on poll after 12 attempts"), "{m}");
        assert!(
            m.contains("stalled: fewer than 1024 bytes of answer in 45 s"),
            "{m}"
        );
    }
    assert!(!summary.complete);
}

#[test]
fn a_download_that_stalls_after_its_head_resumes_and_completes() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let mut downloads = 0;
    let opts = RunOpts::faults(|_, r| {
        if is_download(r) {
            downloads += 1;
            if downloads == 1 {
                // Two whole lines and a bit, then silence.
                return Fault::HeadThenSilent(700);
            }
        }
        Fault::None
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.succeeded + summary.failed, 10);
    assert_eq!(h.aborted.len(), 1);
    let reasons = retry_reasons(&h, "download");
    assert!(reasons[0].contains("stalled"), "{reasons:?}");
    // The second attempt asked only for the rest.
    let ranges: Vec<_> = h
        .log
        .iter()
        .filter(|l| l.path.ends_with("/content"))
        .map(|l| l.range.clone())
        .collect();
    assert!(
        ranges[1].as_deref().is_some_and(|r| r != "bytes=0-"),
        "{ranges:?}"
    );
}

#[test]
fn a_download_longer_than_its_declared_size_is_cut_there() {
    let (mut job, plan, mut h) = one_shard(|_| {});
    let opts = RunOpts::faults(|_, r| {
        if is_download(r) {
            Fault::Overlong(1 << 20)
        } else {
            Fault::None
        }
    });
    let summary = h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.succeeded + summary.failed, 10);
    assert_eq!(
        summary.bad_lines, 0,
        "nothing past the declared size was read"
    );
    let downloads = h
        .log
        .iter()
        .filter(|l| l.path.ends_with("/content"))
        .count();
    assert_eq!(
        h.aborted.len(),
        downloads,
        "every download is stopped at the size"
    );
    assert!(h.events.iter().any(|e| matches!(e,
        JobEvent::Warning { message, .. } if message.contains("more than the") && message.contains("declares"))));
    // The size came from the file object, read before each file.
    let infos = h
        .log
        .iter()
        .filter(|l| {
            l.method == Method::GET && l.path.contains("/files/") && !l.path.ends_with("/content")
        })
        .count();
    assert_eq!(infos, downloads);
}

#[test]
fn a_poll_answer_that_never_ends_is_cut_at_its_deadline() {
    let (mut job, _plan, mut h) = one_shard(|_| {});
    let limits = job.config().exchange.clone();
    // Run until the batch exists and the job waits for its first poll.
    let opts = RunOpts {
        pause: Some(Box::new(|h: &Harness| h.sim.batch_count() == 1)),
        ..RunOpts::default()
    };
    assert!(matches!(h.run_with(&mut job, opts), RunEnd::Paused));
    let mut now = h.now;
    let (id, sent) = loop {
        match job.poll(now) {
            Step::Send { id, request } if is_poll(&request) => break (id, now),
            Step::Wait { until, .. } => now = until,
            Step::Send { .. } | Step::Done(_) => panic!("expected a poll"),
            _ => {}
        }
    };
    job.handle_head(id, ok_head(), now).unwrap();
    // 2 KiB every 10 s: never stalled, never done.
    let chunk = vec![b' '; 2048];
    let cut_at = loop {
        now = UnixMillis(now.as_millis() + 10_000);
        assert!(now.as_millis() - sent.as_millis() <= 200_000, "never cut");
        let _ = job.handle_body(id, &chunk).unwrap();
        match job.poll(now) {
            Step::Abort(a) => {
                assert_eq!(a, id);
                break now;
            }
            Step::Wait { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let allowed = u64::try_from(limits.json_deadline.as_millis()).unwrap();
    assert!(cut_at.as_millis() - sent.as_millis() >= allowed);
    assert!(cut_at.as_millis() - sent.as_millis() < allowed + 10_000);
    // Later reports on the aborted exchange are ignored, not misuse.
    assert_eq!(job.handle_body(id, b"more").unwrap().count(), 0);
    job.handle_end(id, now).unwrap();
    let step = job.poll(now);
    assert!(
        matches!(&step, Step::Event(JobEvent::Retrying { op: "poll", reason, .. }) if reason.contains("deadline")),
        "{step:?}"
    );
}

fn ok_head() -> batch_core::http::response::Parts {
    let (head, ()) = batch_core::http::Response::new(()).into_parts();
    head
}

#[test]
fn an_upload_not_reported_sent_is_judged_by_its_size_until_its_answer_begins() {
    let (mut job, plan, mut h) = one_shard(|c| c.exchange.transfer_rate = 100);
    let limits = job.config().exchange.clone();
    let bytes = plan.shards()[0].bytes;
    let mut uploads = 0;
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) {
            uploads += 1;
            if uploads == 1 {
                return Fault::Silent;
            }
        }
        Fault::None
    });
    let summary = h.run_with(&mut job, opts).done();
    assert!(summary.complete, "{summary:?}");
    let first = h
        .log
        .iter()
        .find(|l| l.method == Method::POST && l.path.ends_with("/files"))
        .unwrap();
    let (_, cut) = h.aborted[0];
    // Not the stall window: the size at the slowest rate, plus the grace.
    assert_eq!(
        cut.as_millis() - first.at.as_millis(),
        u64::try_from(limits.transfer_time(bytes).as_millis()).unwrap()
    );
    assert!(cut.as_millis() - first.at.as_millis() > 2 * 30_000);
    // A cut upload may have landed: the job looked before uploading again.
    h.assert_no_double_effects(&plan);
}

#[test]
fn an_upload_reported_sent_is_cut_one_window_after_its_body_is_out() {
    let (mut job, plan, _h) = one_shard(|_| {});
    let window = job.config().exchange.stall_window;
    let bytes = plan.shards()[0].bytes;
    let mut now = UnixMillis(T0);
    let (id, len) = loop {
        match job.poll(now) {
            Step::Send { id, request } => match request.body() {
                batch_core::api::Outgoing::Multipart { len, .. } => break (id, *len),
                other => panic!("expected the upload first, got {other:?}"),
            },
            Step::Wait { until, .. } => now = until,
            _ => {}
        }
    };
    assert!(len > bytes);
    // The body goes out slowly but steadily: 2 KiB every 20 s is no stall.
    let mut sent = 0;
    while sent < len {
        now = UnixMillis(now.as_millis() + 20_000);
        let n = (len - sent).min(2048);
        job.handle_sent(id, n, now).unwrap();
        sent += n;
        match job.poll(now) {
            Step::Wait { until, .. } => assert!(until > now),
            other => panic!("cut while sending: {other:?}"),
        }
    }
    // Then nothing: the answer must begin within one window.
    let out_at = now;
    let until = match job.poll(now) {
        Step::Wait { until, .. } => until,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        until.as_millis(),
        out_at.as_millis() + u64::try_from(window.as_millis()).unwrap()
    );
    assert!(matches!(job.poll(until), Step::Abort(a) if a == id));
    let step = job.poll(until);
    assert!(
        matches!(&step, Step::Event(JobEvent::Retrying { op: "upload", reason, .. }) if reason.contains("stalled")),
        "{step:?}"
    );
}

/// A shard of several MiB whose upload keeps failing is not sent again at a
/// second's interval: each retry waits at least a second per MiB of it.
#[test]
fn a_failed_upload_of_a_large_shard_waits_a_second_per_mib_before_resending() {
    let big: Vec<_> = (0..8)
        .map(|i| {
            let line = serde_json::json!({
                "custom_id": format!("big-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(512 * 1024)}]}
            });
            batch_core::input::BatchRequest::parse_line("test", i + 1, line.to_string().as_bytes())
                .unwrap()
        })
        .collect();
    let (mut job, plan, shards, _) = job_for(&big, ShardLimits::new(100, 64 << 20), |_| {});
    let mib = plan.shards()[0].bytes / (1024 * 1024);
    assert!(mib >= 4, "the shard is {mib} MiB");
    let mut h = Harness::new(SimApi::new(SimConfig::default()), shards, UnixMillis(T0));
    let opts = RunOpts::faults(|_, r| {
        if is_upload(r) {
            Fault::Reply {
                status: 503,
                headers: Vec::new(),
                body: b"{}".to_vec(),
            }
        } else {
            Fault::None
        }
    });
    h.run_with(&mut job, opts).done();
    assert_every_request_once(&h, &plan);
    let uploads = times_of(&h, |l| {
        l.method == Method::POST && l.path.ends_with("/files")
    });
    assert!(uploads.len() >= 3, "{uploads:?}");
    for w in uploads.windows(2) {
        assert!(
            w[1] - w[0] >= mib * 1000,
            "a {mib} MiB shard was sent again after {} ms",
            w[1] - w[0]
        );
    }
}
