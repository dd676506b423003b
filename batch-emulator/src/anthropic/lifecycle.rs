//! The Message Batch lifecycle on the virtual clock.
//!
//! * `in_progress` from creation (plus any `stall-validating` fault):
//!   one request per `per_request_ms`, in input order, then `finalize_ms`,
//!   then `ended` with every request `succeeded` or `errored`.
//! * A cancel while `in_progress` makes the batch `canceling` for
//!   `cancel_ms`; then it is `ended`: requests processed before the cancel
//!   keep their results, the rest are `canceled`.
//! * At `expires_at` (24 h after creation; half way through processing
//!   with the `expire` fault) a batch still `in_progress` is `ended`: the
//!   unprocessed requests are `expired`.
//! * `ended_at` is the scheduled virtual time of the transition, so a big
//!   jump of the clock gives the same values as a slow run.
//!
//! The results file is written outside the state lock (read the batch's
//! JSONL snapshot, answer each request, shuffle the lines with the seed)
//! and applied only if the batch is still in the status it was planned
//! for.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::model::{Counts, Processing};
use super::respond::{Ctx, respond};
use crate::lifecycle::Spool;
use crate::state::{Shared, lock};
use crate::util::{Rng, hash_parts};

/// Why the unprocessed requests of a finishing batch did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Canceled,
    Expired,
}

/// Everything needed to write one batch's results.
#[derive(Clone, Debug)]
struct Finish {
    batch_id: String,
    from: Processing,
    at_ms: u64,
    processed: u64,
    stop: Stop,
    input: PathBuf,
    results: PathBuf,
    spool: PathBuf,
    seed: u64,
    garbage: bool,
    any_model: bool,
}

/// The path of a batch's results file.
pub(crate) fn results_path(shared: &Shared, id: &str) -> PathBuf {
    shared
        .dir
        .join("batches")
        .join(format!("{id}.results.jsonl"))
}

/// Brings every Message Batch up to the clock's current time. Called by
/// the emulator's `advance_all`, under its lock.
pub(crate) async fn advance(shared: &Arc<Shared>) {
    for _ in 0..3 {
        let now = shared.clock.now_ms();
        let jobs = plan(shared, now);
        if jobs.is_empty() {
            return;
        }
        for job in jobs {
            run(shared, job).await;
        }
        let _ = shared.persist().await;
    }
}

fn plan(shared: &Shared, now: u64) -> Vec<Finish> {
    let db = lock(&shared.db);
    if db.message_batches.is_empty() {
        return Vec::new();
    }
    let mut jobs = Vec::new();
    for b in db.message_batches.values() {
        let (at_ms, processed, stop) = match b.status {
            Processing::Ended => continue,
            Processing::InProgress => {
                let end = b.processing_end_ms();
                let expiry = b.expiry_ms();
                if expiry < end && now >= expiry {
                    (expiry, b.processed_at(expiry), Stop::Expired)
                } else if now >= end {
                    (end, b.total, Stop::Expired)
                } else {
                    continue;
                }
            }
            Processing::Canceling => {
                let c_end = b.cancel_initiated_ms.unwrap_or(b.created_ms) + b.cancel_ms;
                if now < c_end {
                    continue;
                }
                (c_end, b.processed_at_stop.unwrap_or(0), Stop::Canceled)
            }
        };
        jobs.push(Finish {
            batch_id: b.id.clone(),
            from: b.status,
            at_ms,
            processed,
            stop,
            input: shared.batch_input_path(&b.id),
            results: results_path(shared, &b.id),
            spool: shared.dir.join("tmp").join(format!("{}.results", b.id)),
            seed: shared.seed(),
            garbage: false,
            any_model: shared.cfg.accept_any_model,
        });
    }
    drop(db);
    let mut faults = lock(&shared.faults);
    for job in &mut jobs {
        job.garbage = faults.on_output_file();
    }
    jobs
}

async fn run(shared: &Arc<Shared>, job: Finish) {
    let spec = job.clone();
    let written = tokio::task::spawn_blocking(move || write_results(&spec)).await;
    let counts = match written {
        Ok(Ok(c)) => Some(c),
        Ok(Err(_)) | Err(_) => None,
    };
    let mut db = lock(&shared.db);
    let Some(b) = db
        .message_batches
        .get_mut(&job.batch_id)
        .filter(|b| b.status == job.from)
    else {
        drop(db);
        let _ = std::fs::remove_file(&job.results);
        return;
    };
    b.status = Processing::Ended;
    b.ended_ms = Some(job.at_ms);
    if job.stop == Stop::Expired && job.processed < b.total {
        b.processed_at_stop = Some(job.processed);
    }
    let written = counts.is_some();
    match counts {
        Some(c) => {
            b.counts = Some(c);
            b.results_written = true;
        }
        None => {
            // The results could not be written (disk full, data folder
            // tampered with): the batch ends, its results answer 500.
            b.counts = Some(Counts {
                errored: b.total,
                ..Counts::default()
            });
            b.results_written = false;
        }
    }
    drop(db);
    if written {
        shared.count(|c| c.result_files_written += 1);
    }
}

/// Reads the snapshot and writes the results file; returns the tallies.
fn write_results(spec: &Finish) -> io::Result<Counts> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(&spec.input)?);
    let mut spool = Spool::new(spec.spool.clone())?;
    let mut counts = Counts::default();
    let mut cache = HashSet::new();
    let mut position = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let p = position;
        position += 1;
        let line: Value = serde_json::from_slice(&buf).map_err(io::Error::other)?;
        let custom_id = line
            .get("custom_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let result = if p < spec.processed {
            let params = line.get("params").unwrap_or(&Value::Null);
            let ctx = Ctx {
                batch_id: &spec.batch_id,
                custom_id,
                any_model: spec.any_model,
            };
            let outcome = respond(params, ctx, &mut cache);
            if outcome.succeeded {
                counts.succeeded += 1;
            } else {
                counts.errored += 1;
            }
            outcome.result
        } else if spec.stop == Stop::Canceled {
            counts.canceled += 1;
            json!({"type": "canceled"})
        } else {
            counts.expired += 1;
            json!({"type": "expired"})
        };
        let out = json!({"custom_id": custom_id, "result": result});
        spool.push(&serde_json::to_vec(&out).map_err(io::Error::other)?)?;
    }
    let mut rng = Rng::new(hash_parts(&[
        "order",
        &spec.seed.to_string(),
        &spec.batch_id,
    ]));
    spool.finish(&spec.results, &mut rng, spec.garbage)?;
    Ok(counts)
}
