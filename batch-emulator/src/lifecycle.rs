//! The batch lifecycle, driven by the virtual clock. All transitions live in
//! this module.
//!
//! Rules:
//! * `validating` lasts `validate_ms` (+ a stall fault); then the input file
//!   is checked and the batch becomes `failed` (with `errors`) or
//!   `in_progress`.
//! * `in_progress` processes one request per `per_request_ms`, in input
//!   order; `request_counts` follow. When all are processed it becomes
//!   `finalizing`, and `finalize_ms` later `completed` with its files.
//! * `cancelling` lasts `cancel_ms`, then `cancelled`: requests processed
//!   before the cancel are answered, the rest go to the error file as
//!   `batch_cancelled`.
//! * At `expires_at` (or half way through processing with the `expire`
//!   fault) a batch still validating or in progress becomes `expired`; the
//!   unprocessed requests go to the error file as `batch_expired`.
//! * Every timestamp is the scheduled virtual time of its transition, so a
//!   big jump of the clock replays the whole chain with the same values.
//! * Work that reads or writes files (validation, result files) runs outside
//!   the state lock; its result is applied only if the batch is still in the
//!   status it was planned for.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::model::{BatchErrorItem, BatchRecord, FileRecord, Status, Usage, secs};
use crate::respond::{Ctx, respond};
use crate::state::{Shared, lock};
use crate::util::{Fnv, Rng, derived_hex_id, hash_parts};
use crate::validate::{Limits, ValidInput, validate_input};

/// Work that needs file IO.
#[derive(Debug)]
enum Job {
    Validate {
        batch_id: String,
        at_ms: u64,
        input: PathBuf,
        endpoint: String,
    },
    Finish(Box<FinishSpec>),
}

/// Everything needed to write a batch's result files.
#[derive(Clone, Debug)]
struct FinishSpec {
    batch_id: String,
    from: Status,
    to: Status,
    at_ms: u64,
    processed: u64,
    input: PathBuf,
    endpoint: String,
    in_progress_ms: u64,
    per_request_ms: u64,
    output_id: (String, u64),
    error_id: (String, u64),
    output_path: PathBuf,
    error_path: PathBuf,
    tmp_dir: PathBuf,
    seed: u64,
    garbage: bool,
    output_expires_after: Option<i64>,
}

/// What writing the result files produced.
#[derive(Debug)]
struct Finished {
    output: Option<FileRecord>,
    error: Option<FileRecord>,
    completed: u64,
    failed: u64,
    usage: Usage,
}

/// Brings every batch up to the clock's current time. Serialized: only one
/// caller advances at a time.
pub(crate) async fn advance_all(shared: &Arc<Shared>) {
    let _guard = shared.advance_lock.lock().await;
    crate::anthropic::advance(shared).await;
    // Each round applies IO results; a chain such as validate → in progress
    // → finalizing → completed needs at most a few rounds.
    for _ in 0..6 {
        let now = shared.clock.now_ms();
        let (jobs, changed, doomed) = plan(shared, now);
        for path in doomed {
            let _ = tokio::fs::remove_file(path).await;
        }
        if jobs.is_empty() {
            if changed {
                let _ = shared.persist().await;
            }
            return;
        }
        for job in jobs {
            run_job(shared, job).await;
        }
        let _ = shared.persist().await;
    }
}

/// Applies the transitions that need no IO and lists the jobs that do.
/// Also drops files past their `expires_at` (returning their paths).
fn plan(shared: &Shared, now: u64) -> (Vec<Job>, bool, Vec<PathBuf>) {
    let mut db = lock(&shared.db);
    let mut jobs = Vec::new();
    let mut changed = false;
    let now_secs = secs(now);
    let expired_files: Vec<String> = db
        .files
        .values()
        .filter(|f| f.expires_at.is_some_and(|e| e <= now_secs))
        .map(|f| f.id.clone())
        .collect();
    let mut doomed = Vec::new();
    for id in expired_files {
        db.files.remove(&id);
        doomed.push(shared.file_path(&id));
        changed = true;
    }
    let ids: Vec<String> = db
        .batches
        .values()
        .filter(|b| !b.status.is_terminal())
        .map(|b| b.id.clone())
        .collect();
    for id in ids {
        // Pure steps first; stop at the first one that needs IO.
        for _ in 0..4 {
            let Some(b) = db.batches.get_mut(&id) else {
                break;
            };
            match step(b, now) {
                Step::Idle => break,
                Step::Changed => changed = true,
                Step::Validate { at_ms } => {
                    jobs.push(Job::Validate {
                        batch_id: id.clone(),
                        at_ms,
                        input: shared.batch_input_path(&id),
                        endpoint: b.endpoint.clone(),
                    });
                    break;
                }
                Step::Finish {
                    to,
                    at_ms,
                    processed,
                } => {
                    let from = b.status;
                    let endpoint = b.endpoint.clone();
                    let in_progress_ms = b.in_progress_ms.unwrap_or(at_ms);
                    let per_request_ms = b.timings.per_request_ms;
                    let output_expires_after = b.output_expires_after;
                    let seed = shared.seed();
                    let output_id = db.alloc_file_id(seed);
                    let error_id = db.alloc_file_id(seed);
                    let garbage = lock(&shared.faults).on_output_file();
                    jobs.push(Job::Finish(Box::new(FinishSpec {
                        output_path: shared.file_path(&output_id.0),
                        error_path: shared.file_path(&error_id.0),
                        tmp_dir: shared.dir.join("tmp"),
                        batch_id: id.clone(),
                        from,
                        to,
                        at_ms,
                        processed,
                        input: shared.batch_input_path(&id),
                        endpoint,
                        in_progress_ms,
                        per_request_ms,
                        output_id,
                        error_id,
                        seed,
                        garbage,
                        output_expires_after,
                    })));
                    break;
                }
            }
        }
    }
    (jobs, changed, doomed)
}

enum Step {
    Idle,
    Changed,
    Validate {
        at_ms: u64,
    },
    Finish {
        to: Status,
        at_ms: u64,
        processed: u64,
    },
}

/// One pure transition of one batch at virtual time `now`.
fn step(b: &mut BatchRecord, now: u64) -> Step {
    let t = b.timings;
    match b.status {
        Status::Validating => {
            let v_end = b.created_ms + t.validate_ms + b.stall_ms;
            if !b.never_expires && b.expires_ms < v_end && now >= b.expires_ms {
                b.status = Status::Expired;
                b.expired_ms = Some(b.expires_ms);
                b.final_counts = Some((0, 0));
                return Step::Changed;
            }
            if now < v_end {
                return Step::Idle;
            }
            Step::Validate { at_ms: v_end }
        }
        Status::InProgress => {
            let start = b.in_progress_ms.unwrap_or(b.created_ms);
            let p_end = start + b.total * t.per_request_ms;
            let forced = b
                .faults
                .expire
                .then(|| start + (b.total / 2) * t.per_request_ms);
            let expiry = forced.map_or(b.expires_ms, |f| f.min(b.expires_ms));
            if !b.never_expires && expiry < p_end && now >= expiry {
                return Step::Finish {
                    to: Status::Expired,
                    at_ms: expiry,
                    processed: b.processed_at(expiry),
                };
            }
            if now >= p_end {
                b.status = Status::Finalizing;
                b.finalizing_ms = Some(p_end);
                return Step::Changed;
            }
            Step::Idle
        }
        Status::Finalizing => {
            let f_end = b.finalizing_ms.unwrap_or(b.created_ms) + t.finalize_ms;
            if now >= f_end {
                Step::Finish {
                    to: Status::Completed,
                    at_ms: f_end,
                    processed: b.total,
                }
            } else {
                Step::Idle
            }
        }
        Status::Cancelling => {
            let c_end = b.cancelling_ms.unwrap_or(b.created_ms) + t.cancel_ms;
            if now < c_end {
                return Step::Idle;
            }
            if b.in_progress_ms.is_none() {
                // Cancelled before validation finished: nothing ran.
                b.status = Status::Cancelled;
                b.cancelled_ms = Some(c_end);
                b.final_counts = Some((0, 0));
                return Step::Changed;
            }
            Step::Finish {
                to: Status::Cancelled,
                at_ms: c_end,
                processed: b.processed_at_stop.unwrap_or(0),
            }
        }
        Status::Failed | Status::Completed | Status::Expired | Status::Cancelled => Step::Idle,
    }
}

async fn run_job(shared: &Arc<Shared>, job: Job) {
    match job {
        Job::Validate {
            batch_id,
            at_ms,
            input,
            endpoint,
        } => {
            let limits = Limits {
                max_requests: shared.cfg.max_requests_per_batch,
                max_embedding_inputs: shared.cfg.max_embedding_inputs,
                any_model: shared.cfg.accept_any_model,
            };
            let result =
                tokio::task::spawn_blocking(move || validate_input(&input, &endpoint, limits))
                    .await;
            let outcome = match result {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => Err(vec![io_error_item(&e)]),
                Err(e) => Err(vec![io_error_item(&e)]),
            };
            let mut db = lock(&shared.db);
            if let Some(b) = db.batches.get_mut(&batch_id) {
                if b.status == Status::Validating {
                    apply_validation(b, at_ms, outcome);
                }
            }
        }
        Job::Finish(spec) => {
            let spec2 = (*spec).clone();
            let result = tokio::task::spawn_blocking(move || write_results(&spec2)).await;
            let finished = match result {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => return fail_unwritable(shared, &spec, &e),
                Err(e) => return fail_unwritable(shared, &spec, &e),
            };
            let mut written = 0;
            let mut db = lock(&shared.db);
            let still = db
                .batches
                .get(&spec.batch_id)
                .is_some_and(|b| b.status == spec.from);
            if !still {
                drop(db);
                let _ = std::fs::remove_file(&spec.output_path);
                let _ = std::fs::remove_file(&spec.error_path);
                return;
            }
            if let Some(f) = &finished.output {
                db.files.insert(f.id.clone(), f.clone());
                written += 1;
            }
            if let Some(f) = &finished.error {
                db.files.insert(f.id.clone(), f.clone());
                written += 1;
            }
            if let Some(b) = db.batches.get_mut(&spec.batch_id) {
                b.status = spec.to;
                match spec.to {
                    Status::Completed => b.completed_ms = Some(spec.at_ms),
                    Status::Expired => {
                        b.expired_ms = Some(spec.at_ms);
                        b.processed_at_stop = Some(spec.processed);
                    }
                    _ => b.cancelled_ms = Some(spec.at_ms),
                }
                b.output_file_id = finished.output.map(|f| f.id);
                b.error_file_id = finished.error.map(|f| f.id);
                b.final_counts = Some((finished.completed, finished.failed));
                b.usage = finished.usage;
            }
            drop(db);
            shared.count(|c| c.result_files_written += written);
        }
    }
}

/// The result files could not be written (the data folder was tampered
/// with, or the disk is full): the batch fails instead of retrying forever.
fn fail_unwritable(shared: &Shared, spec: &FinishSpec, e: &dyn std::fmt::Display) {
    let _ = std::fs::remove_file(&spec.output_path);
    let _ = std::fs::remove_file(&spec.error_path);
    let mut db = lock(&shared.db);
    if let Some(b) = db.batches.get_mut(&spec.batch_id) {
        if b.status == spec.from {
            b.status = Status::Failed;
            b.failed_ms = Some(spec.at_ms);
            b.final_counts = Some((0, 0));
            b.errors = Some(vec![BatchErrorItem {
                code: "server_error".to_owned(),
                message: format!("The emulator could not write the result files: {e}"),
                param: None,
                line: None,
            }]);
        }
    }
}

fn io_error_item(e: &dyn std::fmt::Display) -> BatchErrorItem {
    BatchErrorItem {
        code: "server_error".to_owned(),
        message: format!("The input file could not be read: {e}"),
        param: None,
        line: None,
    }
}

fn apply_validation(
    b: &mut BatchRecord,
    at_ms: u64,
    outcome: Result<ValidInput, Vec<BatchErrorItem>>,
) {
    match outcome {
        Ok(v) if b.faults.token_limit => {
            let snapshot = v
                .snapshot
                .unwrap_or_else(|| "gpt-4o-mini-2024-07-18".to_owned());
            let model = v.model.unwrap_or_else(|| "gpt-4o-mini".to_owned());
            b.status = Status::Failed;
            b.failed_ms = Some(at_ms);
            b.errors = Some(vec![BatchErrorItem {
                code: "token_limit_exceeded".to_owned(),
                message: format!(
                    "Enqueued token limit reached for {model} in organization org-emulator. \
                     Limit: 90,000 enqueued tokens. Please try again once some in_progress \
                     batches have been completed."
                ),
                param: None,
                line: None,
            }]);
            b.model = Some(snapshot);
        }
        Ok(v) => {
            b.status = Status::InProgress;
            b.in_progress_ms = Some(at_ms);
            b.total = v.total;
            b.model = v.snapshot;
            b.fail_positions = v.fail_positions;
        }
        Err(errors) => {
            b.status = Status::Failed;
            b.failed_ms = Some(at_ms);
            b.errors = Some(errors);
        }
    }
}

/// One line of an output or error file (`BatchRequestOutput`), keys in the
/// API's order.
#[derive(Serialize)]
struct ResultLine<'a> {
    id: &'a str,
    custom_id: &'a str,
    response: Option<ResultResponse<'a>>,
    error: Option<ResultError<'a>>,
}

#[derive(Serialize)]
struct ResultResponse<'a> {
    status_code: u16,
    request_id: &'a str,
    body: &'a Value,
}

#[derive(Serialize)]
struct ResultError<'a> {
    code: &'a str,
    message: &'a str,
}

/// Lines collected in a temporary file, with their offsets for reordering.
pub(crate) struct Spool {
    path: PathBuf,
    out: BufWriter<File>,
    offsets: Vec<(u64, u32)>,
    pos: u64,
}

impl Spool {
    pub(crate) fn new(path: PathBuf) -> io::Result<Spool> {
        let out = BufWriter::new(File::create(&path)?);
        Ok(Spool {
            path,
            out,
            offsets: Vec::new(),
            pos: 0,
        })
    }

    pub(crate) fn push(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        let len = line.len() as u64 + 1;
        self.offsets
            .push((self.pos, u32::try_from(len).map_err(io::Error::other)?));
        self.pos += len;
        Ok(())
    }

    /// Writes the lines to `dest` in a seeded order (never input order for
    /// more than one line), with an optional garbage line; returns the size
    /// and strong ETag, or `None` when there are no lines.
    pub(crate) fn finish(
        mut self,
        dest: &Path,
        rng: &mut Rng,
        garbage: bool,
    ) -> io::Result<Option<(u64, String)>> {
        self.out.flush()?;
        drop(self.out);
        if self.offsets.is_empty() {
            let _ = std::fs::remove_file(&self.path);
            return Ok(None);
        }
        let mut order = self.offsets;
        let n = order.len();
        rng.shuffle(&mut order);
        if n > 1 && order.windows(2).all(|w| w[0].0 < w[1].0) {
            order.swap(0, n - 1);
        }
        let garbage_at = garbage.then(|| rng.below(n as u64 + 1) as usize);
        let mut src = File::open(&self.path)?;
        let tmp = dest.with_extension("partial");
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut hash = Fnv::default();
        let mut size = 0u64;
        let mut buf = Vec::new();
        let mut emit = |out: &mut BufWriter<File>, bytes: &[u8]| -> io::Result<()> {
            out.write_all(bytes)?;
            hash.update(bytes);
            size += bytes.len() as u64;
            Ok(())
        };
        for (i, (off, len)) in order.iter().enumerate() {
            if garbage_at == Some(i) {
                emit(
                    &mut out,
                    b"{\"id\": \"batch_req_garbage\", this line is not JSON\n",
                )?;
            }
            buf.resize(*len as usize, 0);
            src.seek(SeekFrom::Start(*off))?;
            src.read_exact(&mut buf)?;
            emit(&mut out, &buf)?;
        }
        if garbage_at == Some(n) {
            emit(
                &mut out,
                b"{\"id\": \"batch_req_garbage\", this line is not JSON\n",
            )?;
        }
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, dest)?;
        let _ = std::fs::remove_file(&self.path);
        Ok(Some((
            size,
            format!("\"{:016x}-{:x}\"", hash.finish(), size),
        )))
    }
}

/// Reads the input snapshot and writes the output and error files.
fn write_results(spec: &FinishSpec) -> io::Result<Finished> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(&spec.input)?);
    let mut output = Spool::new(spec.tmp_dir.join(format!("{}.out", spec.batch_id)))?;
    let mut errors = Spool::new(spec.tmp_dir.join(format!("{}.err", spec.batch_id)))?;
    let mut usage = Usage::default();
    let (mut completed, mut failed) = (0u64, 0u64);
    let (stop_code, stop_message) = match spec.to {
        Status::Expired => (
            "batch_expired",
            "This request could not be executed before the completion window expired.",
        ),
        _ => (
            "batch_cancelled",
            "This request was not executed because the batch was cancelled.",
        ),
    };
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
        let line: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        let custom_id = line
            .get("custom_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body = line.get("body").cloned().unwrap_or(Value::Null);
        let req_id = derived_hex_id("batch_req_", &[&spec.batch_id, custom_id]);
        if p >= spec.processed {
            let record = ResultLine {
                id: &req_id,
                custom_id,
                response: None,
                error: Some(ResultError {
                    code: stop_code,
                    message: stop_message,
                }),
            };
            errors.push(&serde_json::to_vec(&record).map_err(io::Error::other)?)?;
            failed += 1;
            continue;
        }
        let ran_at = spec.in_progress_ms + (p + 1) * spec.per_request_ms;
        let outcome = respond(
            &spec.endpoint,
            &body,
            Ctx {
                batch_id: &spec.batch_id,
                custom_id,
                created: secs(ran_at),
            },
        );
        let request_id = derived_hex_id("req_", &["req", &spec.batch_id, custom_id]);
        let record = ResultLine {
            id: &req_id,
            custom_id,
            response: Some(ResultResponse {
                status_code: outcome.status,
                request_id: &request_id,
                body: &outcome.body,
            }),
            error: None,
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        if outcome.status == 200 {
            usage.input_tokens += outcome.input_tokens;
            usage.output_tokens += outcome.output_tokens;
            output.push(&bytes)?;
            completed += 1;
        } else {
            errors.push(&bytes)?;
            failed += 1;
        }
    }
    let mut rng = Rng::new(hash_parts(&[
        "order",
        &spec.seed.to_string(),
        &spec.batch_id,
    ]));
    let created_at = secs(spec.at_ms);
    let expires_at = spec.output_expires_after.map(|s| created_at + s);
    let record = |(id, seq): &(String, u64), kind: &str, (bytes, etag): (u64, String)| FileRecord {
        id: id.clone(),
        seq: *seq,
        bytes,
        created_at,
        expires_at,
        filename: format!("{}_{kind}.jsonl", spec.batch_id),
        purpose: "batch_output".to_owned(),
        etag,
    };
    let out_file = output
        .finish(&spec.output_path, &mut rng, spec.garbage)?
        .map(|m| record(&spec.output_id, "output", m));
    let err_file = errors
        .finish(&spec.error_path, &mut rng, false)?
        .map(|m| record(&spec.error_id, "error", m));
    Ok(Finished {
        output: out_file,
        error: err_file,
        completed,
        failed,
        usage,
    })
}
