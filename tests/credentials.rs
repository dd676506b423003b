//! Credentials that expire mid-job: the emulator answers as Azure OpenAI
//! and accepts Microsoft Entra ID bearer tokens it issued, each valid for
//! two minutes of its virtual clock. The clock is stepped (20 virtual
//! seconds before each request), so a token serves five requests and dies
//! at the sixth whatever the machine's speed, and every job below outlives
//! several tokens. (Five, not fewer: with two exchanges in flight, a token
//! must outlast the two requests still going out with the one before it,
//! or a fresh token could be refused before any answer accepted it, which
//! the job takes as final.) Both transports run each scenario, on both
//! Azure API layouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use batch_core::credential::{Credential, CredentialError, CredentialSource};
use batch_core::job::{ClientConfig, ClientSettings, Job, JobConfig, JobOutcome};
use batch_emulator::{Emulator, EmulatorHandle, EntraIssuer, ProviderMode, Timings};

use crate::common::*;

/// The emulator's token lifetime, in virtual time.
const TTL: Duration = Duration::from_secs(120);

fn start() -> EmulatorHandle {
    Emulator::builder()
        .provider(ProviderMode::Azure)
        .api_key(KEY)
        .entra_tokens(TTL)
        .step_per_request(Duration::from_secs(20))
        .start_time(1_700_000_000)
        .seed(7)
        .timings(Timings {
            per_request: Duration::from_millis(100),
            ..Timings::default()
        })
        .start_blocking()
        .expect("emulator starts")
}

/// A source that hands out the emulator's tokens without saying when they
/// expire (so the job learns it from the `401`), counting its calls; from
/// call `fail_from` on (if any), it fails.
fn source(issuer: EntraIssuer, calls: Arc<AtomicU32>, fail_from: Option<u32>) -> CredentialSource {
    CredentialSource::blocking(move || {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if fail_from.is_some_and(|f| n >= f) {
            return Err(CredentialError::new("the identity service is unavailable"));
        }
        Ok(Credential::new(issuer.issue().token, None))
    })
}

/// Azure's preset with Entra ID (`dated`: the `api-version` layout), the
/// suite's fast retries.
fn client_config(emu: &EmulatorHandle, dated: bool, source: CredentialSource) -> ClientConfig {
    let origin = format!("http://{}", emu.addr());
    let mut c = if dated {
        ClientConfig::azure_dated_entra(&origin, "2024-10-21", source)
    } else {
        ClientConfig::azure_entra(&origin, source)
    };
    c.retry = fast_retry();
    c.io_timeout = Duration::from_secs(20);
    c
}

/// The job settings a client with `config` gives its jobs, with the
/// suite's polls, seed and bounded wait.
fn job_config(config: &ClientConfig) -> JobConfig {
    let mut cfg = ClientSettings::new(config)
        .expect("client settings")
        .job_config();
    assert!(cfg.credential.is_some(), "a source makes the job ask");
    cfg.poll_interval = POLL;
    cfg.max_wait = Some(MAX_WAIT);
    cfg.seed = JOB_SEED;
    cfg.max_parallel = 2;
    cfg
}

fn now() -> batch_core::UnixMillis {
    use batch_blocking::Clock;
    batch_blocking::SystemClock.now()
}

/// Runs `scenario` for both transports and both layouts, side by side.
fn each(scenario: impl Fn(bool, bool) + Sync) {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let runs: Vec<_> = [(true, false), (true, true), (false, false), (false, true)]
            .into_iter()
            .map(|(blocking, dated)| s.spawn(move || scenario(blocking, dated)))
            .collect();
        for h in runs {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
}

#[test]
fn a_token_that_expires_mid_job_is_refreshed_and_the_job_goes_on() {
    let items = items(20, |_| None);
    let handle = plan(&items, 10, 2);
    each(|blocking, dated| {
        let who = format!("blocking={blocking} dated={dated}");
        let emu = start();
        let calls = Arc::new(AtomicU32::new(0));
        let config = client_config(&emu, dated, source(emu.entra_issuer(), calls.clone(), None));
        let mut job = Job::new(job_config(&config), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_on(blocking, config, &mut job, &mut io);

        assert!(summary.complete, "{who}: {summary:?} {:?}", emu.counters());
        assert_eq!(summary.succeeded, 20, "{who}: {summary:?}");
        assert_each_once(&who, &io.results, &items);
        let c = emu.counters();
        // Tokens did expire under the job, and each refusal was followed by
        // a new token rather than the end of the job.
        assert!(c.entra_tokens_expired > 0, "{who}: {c:?}");
        let asked = calls.load(Ordering::SeqCst);
        assert!(asked >= 2, "{who}: the source was called {asked} times");
        assert_eq!(u64::from(asked), c.entra_tokens_issued, "{who}");
        // A refused create did nothing: nothing was done twice.
        assert_eq!(c.files_uploaded, 2, "{who}: {c:?}");
        assert_eq!(c.batches_created, 2, "{who}: {c:?}");
        // The 401s are exactly the expired tokens: no other request was refused.
        assert_eq!(
            c.responses.get("401").copied().unwrap_or(0),
            c.entra_tokens_expired,
            "{who}: {c:?}"
        );
    });
}

#[test]
fn a_failing_credential_source_stops_the_job_with_its_error_and_a_resume_finishes() {
    let items = items(20, |_| None);
    let handle = plan(&items, 10, 2);
    each(|blocking, dated| {
        let who = format!("blocking={blocking} dated={dated}");
        let emu = start();
        // The first token works; the source fails when the job needs another.
        let calls = Arc::new(AtomicU32::new(0));
        let config = client_config(&emu, dated, source(emu.entra_issuer(), calls, Some(2)));
        let mut job = Job::new(job_config(&config), handle.plan().clone(), now());
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_on(blocking, config, &mut job, &mut io);

        assert!(!summary.complete, "{who}: {summary:?}");
        let error = summary.error.clone().unwrap_or_default();
        assert!(
            error.contains("the credential source failed: the identity service is unavailable"),
            "{who}: {error}"
        );
        // Every request still has exactly one outcome: not processed, with
        // the reason, to be replaced by a resumed run.
        assert_each_once(&who, &io.results, &items);
        for r in &io.results {
            let JobOutcome::NotProcessed(np) = &r.outcome else {
                panic!("{who}: {r:?}");
            };
            assert_eq!(np.code, "job_stopped", "{who}");
            assert!(np.message.contains("identity service"), "{who}: {np:?}");
        }
        // No token (they all start `emu-entra.`) in what the job reports.
        let shown = format!("{summary:?}{:?}{:?}", io.results, io.events());
        assert!(!shown.contains("emu-entra."), "{who}: a token in {shown}");

        // A later run with a working source picks the job up from its
        // checkpoint: no upload or batch is made twice.
        let checkpoint = io.checkpoints.last().cloned().expect("a checkpoint");
        let calls = Arc::new(AtomicU32::new(0));
        let config = client_config(&emu, dated, source(emu.entra_issuer(), calls, None));
        let mut job = Job::resume(
            job_config(&config),
            handle.plan().clone(),
            checkpoint,
            now(),
        )
        .expect("resume");
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = run_on(blocking, config, &mut job, &mut io);
        assert!(summary.complete, "{who}: {summary:?}");
        assert_eq!(summary.succeeded, 20, "{who}: {summary:?}");
        assert_each_once(&who, &io.results, &items);
        let c = emu.counters();
        assert_eq!(c.files_uploaded, 2, "{who}: {c:?}");
        assert_eq!(c.batches_created, 2, "{who}: {c:?}");
    });
}

#[test]
fn a_token_from_the_convenience_client_is_reused_across_operations() {
    // submit, then collect, through the one-call API: the second operation
    // starts with the token the first one got (while it is valid).
    let items = items(4, |_| None);
    for blocking in [true, false] {
        let emu = Emulator::builder()
            .provider(ProviderMode::Azure)
            .api_key(KEY)
            .entra_tokens(Duration::from_secs(24 * 3600))
            .speed(5000.0)
            .start_blocking()
            .expect("emulator starts");
        let calls = Arc::new(AtomicU32::new(0));
        let config = client_config(&emu, false, source(emu.entra_issuer(), calls.clone(), None));
        let opts = options(10, 1);
        let results = if blocking {
            let client = batch_blocking::Client::new(config).expect("client");
            let mut job = client
                .submit_batch(&items, &prompt(), &opts)
                .expect("submitted");
            client.get_results(&mut job).expect("results")
        } else {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let client = batch_async::Client::new(config).expect("client");
                let mut job = client
                    .submit_batch(&items, &prompt(), &opts)
                    .await
                    .expect("submitted");
                client.get_results(&mut job).await.expect("results")
            })
        };
        assert_eq!(results.len(), 4);
        assert!(results.iter().all(|r| r.is_success()), "{results:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "blocking={blocking}");
        assert_eq!(emu.counters().responses.get("401"), None);
    }
}
