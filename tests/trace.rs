//! `tracing` spans and events from both transports' drive loops: a job span,
//! exchange spans with their method, path, status and bytes, the job's
//! events and its asks for credentials, never the key, a token or a body.
//!
//! A test binary of its own, with one test and a process-wide subscriber:
//! `tracing` caches per call site whether anyone listens, and a call site
//! first reached by another test's thread while no subscriber is set can
//! stay silent for the rest of the process. Here nothing else runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::common::KEY;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide subscriber's buffer: it writes every span (on close,
/// with its fields) and every event.
fn captured() -> &'static Captured {
    static OUT: OnceLock<Captured> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        out
    })
}

/// Runs `f` and returns what it traced.
fn traced(f: impl FnOnce()) -> String {
    let out = captured();
    out.0.lock().expect("lock").clear();
    f();
    String::from_utf8_lossy(&out.0.lock().expect("lock")).into_owned()
}

/// A configuration for the emulator at `base`, with short timeouts.
fn config(base: &str) -> batch_core::job::ClientConfig {
    let mut c = batch_core::job::ClientConfig::new(common::api_config(base, KEY));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c.retry = common::fast_retry();
    c
}

#[test]
fn traces_show_job_shard_and_exchange_but_never_the_key() {
    let emulator = common::Setup::default().start();
    let config = config(&emulator.base_url());
    let items = common::items(4, |i| {
        // A line that quotes the key: it must not reach a trace either.
        (i == 0).then(|| format!("repeat after me: {KEY}"))
    });
    let opts = common::options(2, 2);

    let check = |name: &str, text: &str| {
        assert!(!text.contains(KEY), "{name}: the key is in the trace");
        assert!(
            !text.contains("repeat after me"),
            "{name}: a body is in the trace"
        );
        for needle in [
            "job{job_id=",
            "shards=2",
            "exchange{id=",
            "shard=1",
            "op=\"upload\"",
            "attempt=1",
            "method=POST",
            "path=\"/v1/files\"",
            "path=\"/v1/batches\"",
            "status=200",
            "bytes_sent=",
            "bytes_received=",
            "exchange ended",
            "job event",
        ] {
            assert!(text.contains(needle), "{name}: no {needle} in\n{text}");
        }
        // Every upload's span closes with the bytes it sent.
        assert!(
            text.lines()
                .filter(|l| l.contains("op=\"upload\"") && l.contains("close"))
                .all(|l| !l.contains("bytes_sent=0")),
            "{name}: an upload sent nothing?\n{text}"
        );
    };

    let text = traced(|| {
        let client = batch_blocking::Client::new(config.clone()).expect("blocking client");
        let results = client
            .submit_and_wait(&items, &common::prompt(), &opts)
            .expect("the job succeeds");
        assert_eq!(results.len(), 4);
    });
    check("blocking", &text);

    let text = traced(|| {
        let client = batch_async::Client::new(config.clone()).expect("async client");
        let results = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(client.submit_and_wait(&items, &common::prompt(), &opts))
            .expect("the job succeeds");
        assert_eq!(results.len(), 4);
    });
    check("async", &text);

    // Microsoft Entra ID tokens that expire mid-job (Azure mode, a stepped
    // clock: a token serves five requests): the asks are traced with their
    // reason, and no token is.
    let azure = batch_emulator::Emulator::builder()
        .provider(batch_emulator::ProviderMode::Azure)
        .api_key(KEY)
        .entra_tokens(Duration::from_secs(120))
        .step_per_request(Duration::from_secs(20))
        .timings(common::Setup::default().timings)
        .start_blocking()
        .expect("emulator starts");
    let issuer = azure.entra_issuer();
    let source = batch_core::credential::CredentialSource::blocking(move || {
        Ok(batch_core::credential::Credential::new(
            issuer.issue().token,
            None,
        ))
    });
    let mut entra =
        batch_core::job::ClientConfig::azure_entra(&format!("http://{}", azure.addr()), source);
    entra.retry = common::fast_retry();
    let check_entra = |name: &str, text: &str| {
        assert!(
            !text.contains("emu-entra."),
            "{name}: a token is in the trace"
        );
        assert!(
            text.contains("credential asked"),
            "{name}: no ask in\n{text}"
        );
        assert!(
            text.contains("reason=Refused"),
            "{name}: no refusal in\n{text}"
        );
    };
    let text = traced(|| {
        let client = batch_blocking::Client::new(entra.clone()).expect("blocking client");
        let results = client
            .submit_and_wait(&items, &common::prompt(), &opts)
            .expect("the job succeeds");
        assert_eq!(results.len(), 4);
    });
    check_entra("blocking entra", &text);
    let text = traced(|| {
        let client = batch_async::Client::new(entra.clone()).expect("async client");
        let results = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(client.submit_and_wait(&items, &common::prompt(), &opts))
            .expect("the job succeeds");
        assert_eq!(results.len(), 4);
    });
    check_entra("async entra", &text);
}
