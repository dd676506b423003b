//! The library client with an Anthropic configuration, end to end through
//! both transports against the emulator's Anthropic mode: `submit_and_wait`
//! and `submit_batch` plan Message Batches (with the options' `max_tokens`),
//! and the operations on a batch by id (`retrieve_batch`, `list`,
//! `poll_batch`, `batch_results`, `stream_batch_results`, `cancel_batch`)
//! follow the Message Batches protocol; `download_file`, which has no
//! Anthropic equivalent, is a clear error that sends nothing.

use std::time::Duration;

use batch_core::api::{ApiConfig, Batch, BatchStatus, List};
use batch_core::input::Item;
use batch_core::job::{BatchJob, BatchOptions, ClientConfig, JobResult, JobStatus, ShardLimits};
use batch_emulator::{Emulator, EmulatorHandle, FaultConfig, ProviderMode, Timings};

use crate::common::*;

/// The model of every request (one the emulator's Anthropic mode serves).
const CLAUDE: &str = "claude-haiku-4-5";

fn start(speed: f64, timings: Timings) -> EmulatorHandle {
    Emulator::builder()
        .provider(ProviderMode::Anthropic)
        .speed(speed)
        .seed(7)
        .faults(FaultConfig::parse("").expect("fault spec"))
        .api_key(KEY)
        .timings(timings)
        .start_blocking()
        .expect("emulator starts")
}

fn client_config(emu: &EmulatorHandle) -> ClientConfig {
    let mut c = ClientConfig::new(ApiConfig::anthropic(KEY).with_base_url(emu.base_url()));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c.retry = fast_retry();
    c
}

/// Message Batches options: short polls, a bounded wait, at most
/// `per_shard` requests a batch, and the token limit Anthropic requires.
fn options(per_shard: u64) -> BatchOptions {
    let mut o = BatchOptions::new(CLAUDE)
        .poll_interval(POLL)
        .max_wait(MAX_WAIT)
        .limits(ShardLimits::new(per_shard, 100 * 1024 * 1024))
        .max_tokens(64);
    o.max_parallel = 2;
    o
}

/// What the scenarios need of a client, over both transports; errors are
/// their `Display` text.
trait Anthropic {
    fn submit_and_wait(
        &self,
        items: &[Item],
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, String>;
    fn submit_batch(&self, items: &[Item], opts: &BatchOptions) -> BatchJob;
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, String>;
    fn retrieve_batch(&self, id: &str) -> Result<Batch, String>;
    fn cancel_batch(&self, id: &str) -> Result<Batch, String>;
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, String>;
    fn poll_batch(&self, id: &str) -> Result<JobStatus, String>;
    fn batch_results(&self, id: &str) -> Result<Vec<JobResult>, String>;
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, bool), String>;
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String>;
}

impl Anthropic for batch_blocking::Client {
    fn submit_and_wait(
        &self,
        items: &[Item],
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, String> {
        batch_blocking::Client::submit_and_wait(self, items, &prompt(), opts)
            .map_err(|e| e.to_string())
    }
    fn submit_batch(&self, items: &[Item], opts: &BatchOptions) -> BatchJob {
        batch_blocking::Client::submit_batch(self, items, &prompt(), opts).expect("submitted")
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, String> {
        batch_blocking::Client::get_results(self, job).map_err(|e| e.to_string())
    }
    fn retrieve_batch(&self, id: &str) -> Result<Batch, String> {
        batch_blocking::Client::retrieve_batch(self, id).map_err(|e| e.to_string())
    }
    fn cancel_batch(&self, id: &str) -> Result<Batch, String> {
        batch_blocking::Client::cancel_batch(self, id).map_err(|e| e.to_string())
    }
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, String> {
        batch_blocking::Client::list(self, limit, after).map_err(|e| e.to_string())
    }
    fn poll_batch(&self, id: &str) -> Result<JobStatus, String> {
        batch_blocking::Client::poll_batch(self, id).map_err(|e| e.to_string())
    }
    fn batch_results(&self, id: &str) -> Result<Vec<JobResult>, String> {
        batch_blocking::Client::batch_results(self, id).map_err(|e| e.to_string())
    }
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, bool), String> {
        let mut got = Vec::new();
        let s = batch_blocking::Client::stream_batch_results(
            self,
            id,
            &mut |r| got.push(r),
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?;
        Ok((got, s.complete))
    }
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        batch_blocking::Client::download_file(self, file_id, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// The async client on a runtime of its own.
struct AsyncClient {
    client: batch_async::Client,
    rt: tokio::runtime::Runtime,
}

impl AsyncClient {
    fn new(config: ClientConfig) -> AsyncClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        AsyncClient {
            client: batch_async::Client::new(config).expect("async client"),
            rt,
        }
    }
}

impl Anthropic for AsyncClient {
    fn submit_and_wait(
        &self,
        items: &[Item],
        opts: &BatchOptions,
    ) -> Result<Vec<JobResult>, String> {
        self.rt
            .block_on(self.client.submit_and_wait(items, &prompt(), opts))
            .map_err(|e| e.to_string())
    }
    fn submit_batch(&self, items: &[Item], opts: &BatchOptions) -> BatchJob {
        self.rt
            .block_on(self.client.submit_batch(items, &prompt(), opts))
            .expect("submitted")
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, String> {
        self.rt
            .block_on(self.client.get_results(job))
            .map_err(|e| e.to_string())
    }
    fn retrieve_batch(&self, id: &str) -> Result<Batch, String> {
        self.rt
            .block_on(self.client.retrieve_batch(id))
            .map_err(|e| e.to_string())
    }
    fn cancel_batch(&self, id: &str) -> Result<Batch, String> {
        self.rt
            .block_on(self.client.cancel_batch(id))
            .map_err(|e| e.to_string())
    }
    fn list(&self, limit: Option<u32>, after: Option<&str>) -> Result<List<Batch>, String> {
        self.rt
            .block_on(self.client.list(limit, after))
            .map_err(|e| e.to_string())
    }
    fn poll_batch(&self, id: &str) -> Result<JobStatus, String> {
        self.rt
            .block_on(self.client.poll_batch(id))
            .map_err(|e| e.to_string())
    }
    fn batch_results(&self, id: &str) -> Result<Vec<JobResult>, String> {
        self.rt
            .block_on(self.client.batch_results(id))
            .map_err(|e| e.to_string())
    }
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, bool), String> {
        let mut got = Vec::new();
        let s = self
            .rt
            .block_on(
                self.client
                    .stream_batch_results(id, &mut |r| got.push(r), &mut |_| {}),
            )
            .map_err(|e| e.to_string())?;
        Ok((got, s.complete))
    }
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String> {
        let mut out: Vec<u8> = Vec::new();
        self.rt
            .block_on(self.client.download_file(file_id, &mut out))
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Runs `scenario` with a creating and a reading client of each transport,
/// against one emulator per transport.
fn each_transport(
    speed: f64,
    timings: Timings,
    scenario: impl Fn(&str, &EmulatorHandle, &dyn Anthropic, &dyn Anthropic) + Sync,
) {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let b = s.spawn(move || {
            let emu = start(speed, timings);
            let creator = batch_blocking::Client::new(client_config(&emu)).expect("client");
            let reader = batch_blocking::Client::new(client_config(&emu)).expect("client");
            scenario("anthropic/blocking", &emu, &creator, &reader);
        });
        let a = s.spawn(move || {
            let emu = start(speed, timings);
            let creator = AsyncClient::new(client_config(&emu));
            let reader = AsyncClient::new(client_config(&emu));
            scenario("anthropic/async", &emu, &creator, &reader);
        });
        for h in [b, a] {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
}

/// No request was refused for its shape or sent to a path Anthropic does
/// not serve.
fn assert_no_refusal(who: &str, emu: &EmulatorHandle) {
    let c = emu.counters();
    for status in ["400", "401", "404"] {
        assert_eq!(
            c.responses.get(status),
            None,
            "{who}: {status} answers: {:?}",
            c.responses
        );
    }
}

/// Outcomes by `custom_id`, without the position (a by-id job numbers them
/// in the order it reads them), canonically rendered.
fn by_custom_id(results: &[JobResult]) -> String {
    let mut rs: Vec<JobResult> = results
        .iter()
        .cloned()
        .map(|mut r| {
            r.index = 0;
            r
        })
        .collect();
    rs.sort_by(|a, b| a.custom_id.cmp(&b.custom_id));
    canonical(&rs)
}

#[test]
fn submit_and_wait_with_an_anthropic_config_runs_message_batches() {
    let items = items(45, |_| None);
    each_transport(5000.0, Timings::default(), |who, emu, client, _| {
        let results = client
            .submit_and_wait(&items, &options(20))
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_each_once(who, &results, &items);
        assert_echoes(who, &results, &items);
        for r in &results {
            assert!(
                r.batch_id
                    .as_deref()
                    .is_some_and(|b| b.starts_with("msgbatch_")),
                "{who}: {:?}",
                r.batch_id
            );
        }
        let c = emu.counters();
        assert_eq!(c.batches_created, 3, "{who}: one Message Batch a shard");
        assert_eq!(c.files_uploaded, 0, "{who}: no files");
        assert_no_refusal(who, emu);
    });
}

#[test]
fn submit_without_a_token_limit_is_refused_before_anything_is_sent() {
    let items = items(3, |_| None);
    each_transport(5000.0, Timings::default(), |who, emu, client, _| {
        let mut opts = options(20);
        opts.max_tokens = None;
        let err = client
            .submit_and_wait(&items, &opts)
            .expect_err("Anthropic requires max_tokens");
        assert!(err.contains("max_tokens"), "{who}: {err}");
        assert_eq!(emu.counters().batches_created, 0, "{who}");
    });
}

#[test]
fn a_message_batch_is_read_listed_polled_and_collected_by_id() {
    let items = items(12, |_| None);
    each_transport(5000.0, Timings::default(), |who, emu, creator, reader| {
        let mut handle = creator.submit_batch(&items, &options(100));
        let batch_id = handle.batch_ids()[0].clone();
        assert!(batch_id.starts_with("msgbatch_"), "{who}: {batch_id}");
        let expected = creator
            .get_results(&mut handle)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_each_once(who, &expected, &items);

        let batch = reader
            .retrieve_batch(&batch_id)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(batch.id, batch_id);
        assert_eq!(batch.status, BatchStatus::Completed, "{who}");
        assert_eq!(batch.request_counts.map(|c| c.total), Some(12), "{who}");

        let page = reader
            .list(Some(10), None)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(
            page.data.iter().any(|b| b.id == batch_id),
            "{who}: {:?}",
            page.data
        );
        let after = page.last_id.clone().expect("a last id");
        let older = reader
            .list(Some(10), Some(&after))
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(older.data.iter().all(|b| b.id != after), "{who}");

        let status = reader
            .poll_batch(&batch_id)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(status.state, BatchStatus::Completed, "{who}");
        assert_eq!(status.batch_ids, vec![batch_id.clone()], "{who}");

        let got = reader
            .batch_results(&batch_id)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(got.len(), 12, "{who}");
        assert_eq!(by_custom_id(&got), by_custom_id(&expected), "{who}");

        let (streamed, complete) = reader
            .stream_batch_results(&batch_id)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(complete, "{who}");
        assert_eq!(by_custom_id(&streamed), by_custom_id(&expected), "{who}");

        let before = emu.counters().requests_total;
        let err = reader
            .download_file("file-anything")
            .expect_err("Message Batches have no files");
        assert!(err.contains("no files to download"), "{who}: {err}");
        assert_eq!(emu.counters().requests_total, before, "{who}: nothing sent");
        assert_no_refusal(who, emu);
    });
}

#[test]
fn a_message_batch_is_cancelled_by_id() {
    // One-second requests at speed 200: 400 of them take two real seconds,
    // far longer than the cancel takes to arrive.
    let timings = Timings {
        per_request: Duration::from_secs(1),
        cancelling: Duration::from_secs(1),
        ..Timings::default()
    };
    let items = items(400, |_| None);
    each_transport(200.0, timings, |who, emu, creator, reader| {
        let handle = creator.submit_batch(&items, &options(400));
        let batch_id = handle.batch_ids()[0].clone();
        let answer = reader
            .cancel_batch(&batch_id)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(answer.id, batch_id);
        assert!(
            matches!(
                answer.status,
                BatchStatus::Cancelling | BatchStatus::Cancelled
            ),
            "{who}: {:?}",
            answer.status
        );
        // The batch ends cancelled: retrieved until it has ended (a
        // generous bound, for a loaded machine).
        let mut last = answer;
        for _ in 0..1200 {
            if last.status.is_terminal() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            last = reader
                .retrieve_batch(&batch_id)
                .unwrap_or_else(|e| panic!("{who}: {e}"));
        }
        assert_eq!(last.status, BatchStatus::Cancelled, "{who}");
        assert_eq!(emu.counters().batches_cancelled, 1, "{who}");
        assert_no_refusal(who, emu);
    });
}
