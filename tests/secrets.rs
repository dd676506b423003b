//! The API key never shows: not in events, errors, summaries, results or
//! any `Debug` output, whether the job succeeds, is refused, or cannot
//! connect.

use std::sync::Mutex;

use batch_core::job::{Job, JobEvent};

use crate::common::*;

fn assert_hidden(who: &str, text: &str) {
    assert!(!text.is_empty(), "{who}: nothing to check");
    assert!(
        !text.contains(KEY),
        "{who}: the key shows in:\n{}",
        &text[text.find(KEY).unwrap_or(0).saturating_sub(300)..]
    );
    assert!(!text.contains("e2e-secret"), "{who}: part of the key shows");
}

#[test]
fn the_key_shows_nowhere_when_the_job_runs() {
    let items = items(300, |i| {
        (i % 10 == 0).then(|| format!("q {i} [[emulator:fail=400]]"))
    });
    let texts = both(
        &Setup::with_faults("429-every=9,cut-content-every=2"),
        |t, emu| {
            let mut out = vec![t.client_debug()];
            let mut job = t
                .submit_batch(&items, &prompt(), &options(100, 2))
                .expect("submit");
            out.push(format!("{job:?}"));
            let log = Mutex::new(Vec::new());
            let summary = t
                .stream_results(
                    &mut job,
                    &mut |r| log.lock().expect("log").push(format!("{r:?}")),
                    &mut |e| log.lock().expect("log").push(format!("{e:?}")),
                )
                .unwrap_or_else(|e| panic!("{}: {e:?}", t.name()));
            out.push(format!("{summary:?}"));
            out.push(format!("{job:?}"));
            out.extend(log.into_inner().expect("log"));
            // The job and its requests, as the driver sees them.
            let handle = plan(&items, 100, 2);
            let mut j = Job::new(
                job_config(&emu.base_url(), 2),
                handle.plan().clone(),
                t.now(),
            );
            out.push(format!("{j:?}"));
            for _ in 0..4 {
                out.push(format!("{:?}", j.poll(t.now())));
            }
            out.push(format!("{:?}", j.checkpoint()));
            let report = drive(t, emu, &handle, 2, |_| {});
            out.push(format!("{report:?}"));
            (t.name(), out.join("\n"))
        },
    );
    for (who, text) in texts {
        // The requests did go out with the key: the emulator insists on it.
        assert!(
            text.contains("Sensitive"),
            "{who}: the Authorization header is not marked sensitive"
        );
        assert_hidden(who, &text);
    }
}

#[test]
fn the_key_shows_nowhere_when_it_is_refused() {
    let setup = Setup {
        api_key: "sk-e2e-the-key-the-server-wants".into(),
        ..Setup::default()
    };
    let items = items(10, |_| None);
    let texts = both_with_key(&setup, KEY, |t, emu| {
        let mut out = Vec::new();
        let got = t.submit_and_wait(&items, &prompt(), &options(100, 1));
        let Err(fail) = got else {
            panic!("{}: a refused key still ran the job", t.name());
        };
        out.push(fail.texts());
        let Fail::Ended {
            reason, results, ..
        } = &fail
        else {
            panic!("{}: {fail:?}", t.name());
        };
        assert!(
            reason.to_string().contains("authentication failed"),
            "{reason}"
        );
        assert_eq!(results.len(), 10);
        out.push(format!("{results:?}"));
        let listed = t.list(None, None).expect_err("list with a refused key");
        out.push(listed.texts());
        let report = drive(t, emu, &plan(&items, 100, 1), 1, |_| {});
        assert!(
            report
                .summary
                .error
                .as_deref()
                .is_some_and(|e| e.contains("401")),
            "{:?}",
            report.summary
        );
        out.push(format!("{report:?}"));
        (t.name(), out.join("\n"))
    });
    for (who, text) in texts {
        assert!(text.contains("Incorrect API key"), "{who}: {text}");
        assert_hidden(who, &text);
    }
}

#[test]
fn the_key_shows_nowhere_when_nothing_answers() {
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/v1", l.local_addr().expect("addr"))
    };
    let items = items(10, |_| None);
    let handle = plan(&items, 100, 1);
    let transports: [Box<dyn Transport>; 2] = [
        Box::new(Blocking::new(&dead, KEY)),
        Box::new(Async::new(&dead, KEY)),
    ];
    for t in &transports {
        let mut cfg = job_config(&dead, 1);
        cfg.retry.max_attempts = 3;
        let mut job = Job::new(cfg, handle.plan().clone(), t.now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = t.run(&mut job, &mut io).expect("the job ends");
        let events = io.events();
        let retries: Vec<&JobEvent> = events
            .iter()
            .filter(|e| matches!(e, JobEvent::Retrying { reason, .. } if reason.starts_with("not sent")))
            .collect();
        assert_eq!(retries.len(), 2, "{}: {events:?}", t.name());
        assert_eq!(summary.not_processed, 10, "{}", t.name());
        let text = format!("{summary:?}\n{events:?}\n{:?}\n{job:?}", io.results);
        assert!(text.contains("gave up"), "{}: {text}", t.name());
        assert_hidden(t.name(), &text);
        let err = t.list(None, None).expect_err("nothing answers");
        assert_hidden(t.name(), &err.texts());
    }
}
