//! By batch id, from a fresh client: a batch created by one client is read,
//! polled, cancelled and collected by another client that only knows its id,
//! on both transports, and the merged outcomes equal what the creating
//! client gets.

use std::time::Duration;

use batch_core::api::{self, Batch, BatchStatus};
use batch_core::input::Item;
use batch_core::job::{BatchJob, BatchOptions, JobOutcome, JobResult, JobStatus};
use batch_emulator::{EmulatorHandle, Timings};

use crate::common::*;

/// What the scenarios need of a client, over both transports. Errors are
/// their `Display` text; an ended job's results come along.
trait ById {
    fn submit(&self, items: &[Item]) -> BatchJob {
        self.submit_with(items, &options(100, 1))
    }
    fn submit_with(&self, items: &[Item], opts: &BatchOptions) -> BatchJob;
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)>;
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)>;
    fn retrieve_batch(&self, id: &str) -> Result<Batch, String>;
    fn cancel_batch(&self, id: &str) -> Result<Batch, String>;
    fn poll_batch(&self, id: &str) -> Result<JobStatus, String>;
    fn batch_results(&self, id: &str) -> Result<Vec<JobResult>, String>;
    /// The streamed outcomes, and the summary's `requests` and `complete`.
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, u64, bool), String>;
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String>;
    /// The same file through the level-1 builder and `execute`.
    fn file_content(&self, file_id: &str) -> Vec<u8>;
}

fn client_config(base: &str) -> batch_core::job::ClientConfig {
    let mut c = batch_core::job::ClientConfig::new(api_config(base, KEY));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c.retry = fast_retry();
    c
}

fn split(e: batch_core::job::ClientError) -> (String, Vec<JobResult>) {
    let text = e.to_string();
    match e {
        batch_core::job::ClientError::Ended { results, .. } => (text, results),
        _ => (text, Vec::new()),
    }
}

impl ById for batch_blocking::Client {
    fn submit_with(&self, items: &[Item], opts: &BatchOptions) -> BatchJob {
        self.submit_batch(items, &prompt(), opts)
            .expect("the creating client submits")
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)> {
        batch_blocking::Client::get_results(self, job).map_err(split)
    }
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)> {
        batch_blocking::Client::cancel(self, job).map_err(split)
    }
    fn retrieve_batch(&self, id: &str) -> Result<Batch, String> {
        batch_blocking::Client::retrieve_batch(self, id).map_err(|e| e.to_string())
    }
    fn cancel_batch(&self, id: &str) -> Result<Batch, String> {
        batch_blocking::Client::cancel_batch(self, id).map_err(|e| e.to_string())
    }
    fn poll_batch(&self, id: &str) -> Result<JobStatus, String> {
        batch_blocking::Client::poll_batch(self, id).map_err(|e| e.to_string())
    }
    fn batch_results(&self, id: &str) -> Result<Vec<JobResult>, String> {
        batch_blocking::Client::batch_results(self, id).map_err(|e| e.to_string())
    }
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, u64, bool), String> {
        let mut got = Vec::new();
        let s = batch_blocking::Client::stream_batch_results(
            self,
            id,
            &mut |r| got.push(r),
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?;
        Ok((got, s.requests, s.complete))
    }
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let n = batch_blocking::Client::download_file(self, file_id, &mut out)
            .map_err(|e| e.to_string())?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }
    fn file_content(&self, file_id: &str) -> Vec<u8> {
        let req = api::file_content(self.api(), file_id, None).expect("request");
        let (head, body) = self.execute(req).expect("content");
        assert!(head.status.is_success());
        body
    }
}

/// The async client on a runtime of its own.
struct AsyncClient {
    client: batch_async::Client,
    rt: tokio::runtime::Runtime,
}

impl AsyncClient {
    fn new(base: &str) -> AsyncClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        AsyncClient {
            client: batch_async::Client::new(client_config(base)).expect("async client"),
            rt,
        }
    }
}

impl ById for AsyncClient {
    fn submit_with(&self, items: &[Item], opts: &BatchOptions) -> BatchJob {
        self.rt
            .block_on(self.client.submit_batch(items, &prompt(), opts))
            .expect("the creating client submits")
    }
    fn get_results(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)> {
        self.rt
            .block_on(self.client.get_results(job))
            .map_err(split)
    }
    fn cancel(&self, job: &mut BatchJob) -> Result<Vec<JobResult>, (String, Vec<JobResult>)> {
        self.rt.block_on(self.client.cancel(job)).map_err(split)
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
    fn stream_batch_results(&self, id: &str) -> Result<(Vec<JobResult>, u64, bool), String> {
        let mut got = Vec::new();
        let s = self
            .rt
            .block_on(
                self.client
                    .stream_batch_results(id, &mut |r| got.push(r), &mut |_| {}),
            )
            .map_err(|e| e.to_string())?;
        Ok((got, s.requests, s.complete))
    }
    fn download_file(&self, file_id: &str) -> Result<Vec<u8>, String> {
        let mut out: Vec<u8> = Vec::new();
        let n = self
            .rt
            .block_on(self.client.download_file(file_id, &mut out))
            .map_err(|e| e.to_string())?;
        assert_eq!(n, out.len() as u64);
        Ok(out)
    }
    fn file_content(&self, file_id: &str) -> Vec<u8> {
        let req = api::file_content(self.client.api(), file_id, None).expect("request");
        let (head, body) = self.rt.block_on(self.client.execute(req)).expect("content");
        assert!(head.status.is_success());
        body
    }
}

/// Runs `scenario` with two fresh clients of each transport (the creator
/// and the reader) against one emulator per transport.
fn each_transport(setup: &Setup, scenario: impl Fn(&str, &dyn ById, &dyn ById) + Sync) {
    let scenario = &scenario;
    std::thread::scope(|s| {
        let b = s.spawn(move || {
            let emu: EmulatorHandle = setup.start();
            let creator = batch_blocking::Client::new(client_config(&emu.base_url())).expect("c");
            let reader = batch_blocking::Client::new(client_config(&emu.base_url())).expect("r");
            scenario("blocking", &creator, &reader);
        });
        let a = s.spawn(move || {
            let emu: EmulatorHandle = setup.start();
            let creator = AsyncClient::new(&emu.base_url());
            let reader = AsyncClient::new(&emu.base_url());
            scenario("async", &creator, &reader);
        });
        for h in [b, a] {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
    });
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

fn assert_once(who: &str, results: &[JobResult], n: usize) {
    let mut ids: Vec<&str> = results.iter().map(|r| r.custom_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), results.len(), "{who}: a request reported twice");
    assert_eq!(results.len(), n, "{who}: every request once");
}

#[test]
fn a_fresh_client_reads_and_collects_a_batch_by_id() {
    // Every fifth request fails, so the error file is merged in too.
    let items = items(12, |i| {
        (i % 5 == 4).then(|| format!("q {i} [[emulator:fail=400]]"))
    });
    each_transport(&Setup::default(), |who, creator, reader| {
        let mut handle = creator.submit(&items);
        let batch_id = handle.batch_ids()[0].clone();
        let expected = creator
            .get_results(&mut handle)
            .expect("the creator collects");
        assert_once(who, &expected, 12);

        let batch = reader.retrieve_batch(&batch_id).expect("retrieve");
        assert_eq!(batch.id, batch_id);
        assert_eq!(batch.status, BatchStatus::Completed);

        let status = reader.poll_batch(&batch_id).expect("poll");
        assert_eq!(status.state, BatchStatus::Completed, "{who}");
        assert_eq!(status.requests, 12);
        assert_eq!(status.batch_ids, vec![batch_id.clone()]);

        let got = reader.batch_results(&batch_id).expect("collect by id");
        assert_once(who, &got, 12);
        assert_eq!(by_custom_id(&got), by_custom_id(&expected), "{who}");
        assert!(
            got.iter()
                .all(|r| r.batch_id.as_deref() == Some(batch_id.as_str()))
        );

        let (streamed, requests, complete) = reader
            .stream_batch_results(&batch_id)
            .expect("stream by id");
        assert_eq!(by_custom_id(&streamed), by_custom_id(&expected), "{who}");
        assert_eq!((requests, complete), (12, true));

        // The output file, streamed, is the file the level-1 request reads.
        let out_id = batch.output_file_id.clone().expect("an output file");
        let bytes = reader.download_file(&out_id).expect("download");
        assert!(!bytes.is_empty());
        assert_eq!(bytes, reader.file_content(&out_id), "{who}");
        if let Some(err_id) = batch.error_file_id.as_deref() {
            assert_eq!(
                reader.download_file(err_id).expect("download"),
                reader.file_content(err_id)
            );
        }

        let missing = reader
            .retrieve_batch("batch_doesnotexist")
            .expect_err("unknown id");
        assert!(missing.contains("404"), "{who}: {missing}");
        // A job for an unknown batch ends with the server's refusal.
        let missing = reader
            .batch_results("batch_doesnotexist")
            .expect_err("unknown id");
        assert!(missing.contains("batch_doesnotexist"), "{who}: {missing}");
        let missing = reader
            .download_file("file-doesnotexist")
            .expect_err("unknown file");
        assert!(missing.contains("404"), "{who}: {missing}");
    });
}

#[test]
fn a_fresh_client_cancels_a_batch_by_id_and_collects_what_it_ran() {
    // Slow requests: the batch is still running when the reader cancels it.
    let setup = Setup {
        timings: Timings {
            per_request: Duration::from_secs(600),
            ..Timings::default()
        },
        ..Setup::default()
    };
    let items = items(8, |_| None);
    each_transport(&setup, |who, creator, reader| {
        let mut handle = creator.submit(&items);
        let batch_id = handle.batch_ids()[0].clone();

        // Once it runs (a batch cancelled while validating has no files).
        for _ in 0..500 {
            let b = reader.retrieve_batch(&batch_id).expect("retrieve");
            if b.status != BatchStatus::Validating {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let batch = reader.cancel_batch(&batch_id).expect("cancel by id");
        assert_eq!(batch.id, batch_id);
        assert!(
            matches!(
                batch.status,
                BatchStatus::Cancelling | BatchStatus::Cancelled
            ),
            "{who}: {:?}",
            batch.status
        );
        // Waiting for the cancel to land and collecting is a by-id job.
        let mut by_id = BatchJob::for_batch(&batch_id, &options(100, 1), 1);
        let got = reader.cancel(&mut by_id).expect("cancelled and collected");
        assert_once(who, &got, 8);

        let (reason, expected) = creator
            .get_results(&mut handle)
            .expect_err("a cancelled batch ends the creator's collect");
        assert!(reason.contains("cancelled"), "{who}: {reason}");
        assert_eq!(by_custom_id(&got), by_custom_id(&expected), "{who}");
        let status = reader.poll_batch(&batch_id).expect("poll");
        assert_eq!(status.state, BatchStatus::Cancelled);
    });
}

/// Each outcome's code (`succeeded`, `failed`, or why it was not
/// processed), checking that outcome `i` is request `i` of the input.
fn codes_in_input_order(who: &str, results: &[JobResult], items: &[Item]) -> Vec<String> {
    assert_eq!(results.len(), items.len(), "{who}: every request once");
    let mut sorted: Vec<&JobResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.index);
    sorted
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r.index, i as u64, "{who}");
            assert_eq!(
                r.custom_id, items[i].custom_id,
                "{who}: numbered in input order"
            );
            match &r.outcome {
                JobOutcome::Succeeded(_) => "succeeded".to_owned(),
                JobOutcome::Failed(_) => "failed".to_owned(),
                JobOutcome::NotProcessed(np) => {
                    assert!(!np.message.is_empty(), "{who}: {np:?}");
                    np.code.clone()
                }
                other => panic!("{who}: {other:?}"),
            }
        })
        .collect()
}

#[test]
fn a_batch_cancelled_while_validating_names_every_request_by_id() {
    // Validation takes long enough for the cancel to land first: no request
    // runs, and the batch has neither an output nor an error file.
    let setup = Setup {
        timings: Timings {
            validating: Duration::from_secs(1_000_000),
            ..Timings::default()
        },
        ..Setup::default()
    };
    let items = items(8, |_| None);
    each_transport(&setup, |who, creator, reader| {
        let handle = creator.submit(&items);
        let batch_id = handle.batch_ids()[0].clone();
        let batch = reader.cancel_batch(&batch_id).expect("cancel by id");
        assert!(
            matches!(
                batch.status,
                BatchStatus::Cancelling | BatchStatus::Cancelled
            ),
            "{who}: {:?}",
            batch.status
        );
        let mut by_id = BatchJob::for_batch(&batch_id, &options(100, 1), 1);
        let (reason, got) = reader
            .get_results(&mut by_id)
            .expect_err("a cancelled batch ends the collect");
        assert!(reason.contains("cancelled"), "{who}: {reason}");
        let codes = codes_in_input_order(who, &got, &items);
        assert!(
            codes.iter().all(|c| c == "batch_cancelled"),
            "{who}: {codes:?}"
        );
        let batch = reader.retrieve_batch(&batch_id).expect("retrieve");
        assert!(batch.output_file_id.is_none() && batch.error_file_id.is_none());
        // A second read by id gives the same outcomes.
        let again = reader
            .get_results(&mut BatchJob::for_batch(&batch_id, &options(100, 1), 2))
            .expect_err("cancelled")
            .1;
        assert_eq!(by_custom_id(&again), by_custom_id(&got), "{who}");
    });
}

#[test]
fn an_expired_batch_names_every_request_by_id() {
    let setup = Setup::with_faults("expire");
    let items = items(12, |_| None);
    each_transport(&setup, |who, creator, reader| {
        let mut handle = creator.submit(&items);
        let batch_id = handle.batch_ids()[0].clone();
        let (reason, expected) = creator
            .get_results(&mut handle)
            .expect_err("an expired batch ends the creator's collect");
        assert!(reason.contains("expired"), "{who}: {reason}");
        let mut by_id = BatchJob::for_batch(&batch_id, &options(100, 1), 1);
        let (reason, got) = reader
            .get_results(&mut by_id)
            .expect_err("an expired batch ends the collect by id");
        assert!(reason.contains("expired"), "{who}: {reason}");
        let codes = codes_in_input_order(who, &got, &items);
        assert!(
            codes.iter().any(|c| c == "batch_expired") && codes.iter().any(|c| c == "succeeded"),
            "{who}: {codes:?}"
        );
        assert!(
            codes
                .iter()
                .all(|c| c == "batch_expired" || c == "succeeded"),
            "{who}: {codes:?}"
        );
        // The same outcomes, and now at the same positions, as the creator's.
        assert_eq!(canonical(&got), canonical(&expected), "{who}");
    });
}

#[test]
fn a_batch_that_failed_validation_names_each_line_s_reason_by_id() {
    // An unknown model: every line fails validation, each with its own error.
    let items = items(6, |_| None);
    let opts = BatchOptions::new("no-such-model")
        .poll_interval(POLL)
        .max_wait(MAX_WAIT);
    each_transport(&Setup::default(), |who, creator, reader| {
        let handle = creator.submit_with(&items, &opts);
        let batch_id = handle.batch_ids()[0].clone();
        let mut by_id = BatchJob::for_batch(&batch_id, &options(100, 1), 1);
        let (reason, got) = reader
            .get_results(&mut by_id)
            .expect_err("a failed batch ends the collect by id");
        assert!(reason.contains("model_not_found"), "{who}: {reason}");
        let codes = codes_in_input_order(who, &got, &items);
        assert!(
            codes.iter().all(|c| c == "model_not_found"),
            "{who}: {codes:?}"
        );
        for r in &got {
            let JobOutcome::NotProcessed(np) = &r.outcome else {
                unreachable!()
            };
            let line = format!("line {} of its input file", r.index + 1);
            assert!(np.message.contains(&line), "{who}: {}", np.message);
        }
    });
}
