//! The journal: a folder that holds a run's whole state, so that the same
//! command run again resumes it.
//!
//! The job itself is stored the way a library user stores a job handle: a
//! `batch_core` `StoredJob` per round, saved by `batch_store`'s `FileStore`
//! (the journal folder is the store). The results are the CLI's own.
//!
//! ```text
//! JOURNAL/
//!   round-0.job.json    the job: its id, options and seed, each shard file's name, length,
//!                       line count and FNV-1a hash, the provider (preset, base URL, auth
//!                       header, api-version, extra header names and query; never the key),
//!                       the last checkpoint, and the CLI's own data (input path, length and
//!                       hash, the flags that shape the plan, the plan's digest, the round);
//!                       written to a temp file, fsynced, renamed, folder fsynced
//!   shards/shard-00000.jsonl ...   the request lines of each shard, as uploaded
//!   summary.json        the round's summary, once it is done
//!   results.spill       every result delivered, rendered as its final output line (append-only)
//!   results.index       16 bytes per input request: offset u64 LE, length u32 LE,
//!                       outcome u8, 3 zero bytes; all zero means "no result yet"
//!   round-N.job.json    a retry round (--retry-failed): its job, as round-0.job.json
//!   rounds/N/           that round's shards/, map.bin (u64 LE input index per line),
//!                       summary.json
//!   emulator/           the built-in emulator's data, with --emulator
//!   lock                the pid of the process driving the job
//! ```
//!
//! Everything needed to finish the job is in the journal: the input file
//! is only read to plan it (and, on `run`, to check it did not change), so
//! `results --journal DIR` works after the input is moved or deleted.
//! A journal written by an earlier version (`plan.json`, `checkpoint.json`
//! and `rounds/N/plan.json`) is converted when a command next takes it.
//!
//! A result is appended to the spill, then its slot in the index is pointed
//! at it with a positioned write: a redelivered result (after a resume or in
//! a retry round) simply overwrites its slot. Appends are gathered and
//! written a MiB at a time, index records a few thousand at a time, the
//! spill's bytes always before the records that point at them. Before each
//! checkpoint both are written and synced (the core's `JobIo::persist`
//! contract), so nothing held back is ever needed after a crash: the
//! checkpoint does not count it, and the job fetches it again.
//! The output file is assembled by reading slots 0..n in order and copying
//! their bytes, a run of lines that lie one after the other in the spill at
//! a time, so memory stays flat whatever the size of the results.

use std::cell::{Cell, RefCell};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use batch_core::api::CompletionWindow;
use batch_core::job::{
    BatchOptions, Checkpoint, JobPlan, JobStore, PlanDigest, ShardHash, ShardLimits, StoredJob,
    StoredProvider, StoredShardFile, StoredSource,
};
use batch_store::FileStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The format version of `plan.json`, the job file of earlier versions.
const LEGACY_PLAN_VERSION: u32 = 1;

/// The job of a journal as the commands use it: round 0's stored job.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlanFile {
    pub(crate) job_id: String,
    /// The input file, as an absolute path.
    pub(crate) input: PathBuf,
    pub(crate) input_len: u64,
    /// FNV-1a 64 of the input's bytes, in hex.
    pub(crate) input_hash: String,
    pub(crate) options: PlanOptions,
    pub(crate) digest: PlanDigest,
    /// The model of the first request, for the cost estimate.
    pub(crate) model: Option<String>,
    /// The round in progress: 0 is the first submission, N the Nth retry.
    pub(crate) round: u32,
    /// When the job was planned (Unix milliseconds).
    pub(crate) created_at: u64,
    /// The API base URL the job's batches live on.
    pub(crate) base_url: String,
    /// Whether the batches live on the built-in emulator (data in `emulator/`).
    pub(crate) emulator: bool,
    /// The seed stored with the job.
    pub(crate) seed: u64,
    /// Round 0's shard files, as recorded (empty for a journal of an
    /// earlier version not yet converted).
    pub(crate) shards: Vec<StoredShardFile>,
    /// The service the batches live on, once the job is committed.
    pub(crate) provider: Option<StoredProvider>,
}

/// The CLI's own data in round 0's stored job (its `app`).
#[derive(Serialize, Deserialize)]
struct JobApp {
    input: PathBuf,
    input_len: u64,
    input_hash: String,
    options: PlanOptions,
    digest: PlanDigest,
    model: Option<String>,
    round: u32,
    created_at: u64,
    base_url: String,
    emulator: bool,
}

/// `plan.json` of a journal of an earlier version: its version and job id,
/// then the same fields as [`JobApp`].
#[derive(Deserialize)]
struct LegacyPlanFile {
    version: u32,
    job_id: String,
    #[serde(flatten)]
    app: JobApp,
}

impl PlanFile {
    /// The plan of job `job_id` from the CLI's data, with no shard files or
    /// provider yet (a legacy plan has neither).
    fn of_app(job_id: String, app: JobApp, seed: u64) -> PlanFile {
        PlanFile {
            job_id,
            input: app.input,
            input_len: app.input_len,
            input_hash: app.input_hash,
            options: app.options,
            digest: app.digest,
            model: app.model,
            round: app.round,
            created_at: app.created_at,
            base_url: app.base_url,
            emulator: app.emulator,
            seed,
            shards: Vec::new(),
            provider: None,
        }
    }
}

/// The options that shape the plan; a resumed run must use the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanOptions {
    pub(crate) model: Option<String>,
    pub(crate) system: Option<String>,
    pub(crate) endpoint: String,
    pub(crate) max_requests_per_batch: u64,
    pub(crate) max_bytes_per_batch: u64,
    /// `--max-tokens`: the `max_tokens` of short lines of a Message Batches
    /// job that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    /// Completion window, metadata and file expiries (defaults when absent).
    #[serde(default)]
    pub(crate) batch: crate::settings::BatchSettings,
    /// Request lines say `/chat/completions`, not `/v1/chat/completions`
    /// (Azure OpenAI's dated API versions).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) unversioned_urls: bool,
}

impl PlanOptions {
    /// The same options as the library's batch options (what a library
    /// user reading the stored job sees).
    fn batch_options(&self) -> BatchOptions {
        let mut o = BatchOptions::new(self.model.clone().unwrap_or_default())
            .endpoint(batch_core::Endpoint::parse(&self.endpoint))
            .limits(ShardLimits::new(
                self.max_requests_per_batch,
                self.max_bytes_per_batch,
            ))
            .completion_window(CompletionWindow::parse(&self.batch.completion_window));
        for (k, v) in &self.batch.metadata {
            o = o.metadata(k.clone(), v.clone());
        }
        if let Some(s) = self.batch.output_expires_after {
            o = o.output_expires_after(s);
        }
        if let Some(s) = self.batch.file_expires_after {
            o = o.file_expires_after(s);
        }
        o
    }
}

/// A retry round's job: `round-N.job.json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RoundFile {
    pub(crate) job_id: String,
    pub(crate) round: u32,
    pub(crate) requests: u64,
    pub(crate) input_hash: String,
    pub(crate) digest: PlanDigest,
    /// The round's shard files.
    pub(crate) shards: Vec<StoredShardFile>,
}

/// The CLI's own data in a retry round's stored job; also the
/// `rounds/N/plan.json` of earlier versions.
#[derive(Serialize, Deserialize)]
struct RoundApp {
    round: u32,
    requests: u64,
    input_hash: String,
    digest: PlanDigest,
    #[serde(default, skip_serializing)]
    job_id: String,
}

/// A journal folder.
#[derive(Clone, Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
}

/// A journal taken by this process; see [`Journal::lock`]. The OS lock is
/// released when this is dropped, or when the process ends however it ends.
#[derive(Debug)]
pub(crate) struct JournalLock {
    _file: File,
    created: bool,
}

impl JournalLock {
    /// Whether taking the lock created the journal folder (so a refused
    /// input leaves nothing behind).
    pub(crate) fn created(&self) -> bool {
        self.created
    }
}

/// The stored job's name of round `round`.
fn round_name(round: u32) -> String {
    format!("round-{round}")
}

impl Journal {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal as a job store (nothing is created by reading it).
    fn store(&self) -> FileStore {
        FileStore::at(&self.dir)
    }

    /// Takes the journal for this process, so that two processes never
    /// drive the same job: an exclusive OS lock (`flock` on unix,
    /// `LockFileEx` on Windows) on the file `lock`, held until the process
    /// ends. The OS drops the lock of a process that dies, whatever kills
    /// it, so there is no stale lock to take over. The file holds the
    /// owner's pid, for the message a second process prints; the file itself
    /// is never removed (removing it would let two processes lock two
    /// different files).
    ///
    /// Creates the journal folder (mode 0700 on unix) if needed, and
    /// converts a journal of an earlier version.
    pub(crate) fn lock(&self) -> Result<JournalLock, CliError> {
        let path = self.dir.join("lock");
        let io_err = |e: io::Error| {
            CliError::failed(format!(
                "cannot lock the journal {}: {e}",
                self.dir.display()
            ))
        };
        let created = !self.dir.exists();
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        create_private_dir_all(&self.dir).map_err(io_err)?;
        let mut file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let owner = read_owner(&path)
                    .map(|pid| format!("process {pid}"))
                    .unwrap_or_else(|| "another process".to_owned());
                return Err(CliError::usage(format!(
                    "the journal {} is in use by {owner}; wait for it to end, or use another \
                     --journal",
                    self.dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io_err)?;
        self.convert_legacy()?;
        Ok(JournalLock {
            _file: file,
            created,
        })
    }

    /// The file of round `round`'s stored job.
    pub(crate) fn job_path(&self, round: u32) -> PathBuf {
        self.dir.join(format!("{}.job.json", round_name(round)))
    }

    /// `plan.json` of a journal of an earlier version.
    fn legacy_plan_path(&self) -> PathBuf {
        self.dir.join("plan.json")
    }

    /// The folder of round `round`'s own files: the journal itself for round 0.
    pub(crate) fn round_dir(&self, round: u32) -> PathBuf {
        if round == 0 {
            self.dir.clone()
        } else {
            self.dir.join("rounds").join(round.to_string())
        }
    }

    pub(crate) fn shards_dir(&self, round: u32) -> PathBuf {
        self.round_dir(round).join("shards")
    }

    /// The name a shard file of round `round` is recorded under (its path
    /// inside the journal).
    pub(crate) fn shard_record_name(round: u32, file_name: &str) -> String {
        if round == 0 {
            format!("shards/{file_name}")
        } else {
            format!("rounds/{round}/shards/{file_name}")
        }
    }

    pub(crate) fn emulator_dir(&self) -> PathBuf {
        self.dir.join("emulator")
    }

    /// The stored job of round `round`, if there is one.
    pub(crate) fn stored(&self, round: u32) -> Result<Option<StoredJob>, CliError> {
        self.store().load(&round_name(round)).map_err(|e| {
            CliError::failed(format!(
                "the journal is damaged: {} cannot be read: {e}",
                self.job_path(round).display()
            ))
        })
    }

    /// Saves the stored job of round `round` (atomically, synced).
    pub(crate) fn save_stored(&self, round: u32, job: &StoredJob) -> Result<(), CliError> {
        self.save_stored_io(round, job).map_err(|e| {
            CliError::failed(format!(
                "cannot write {}: {e}",
                self.job_path(round).display()
            ))
        })
    }

    /// [`save_stored`](Self::save_stored) with the bare IO error (a
    /// checkpoint's, which the job reports itself).
    pub(crate) fn save_stored_io(&self, round: u32, job: &StoredJob) -> io::Result<()> {
        self.store().save(&round_name(round), job)
    }

    /// The job in this journal, if there is one: round 0's stored job, or
    /// the `plan.json` of an earlier version (read only; [`lock`](Self::lock)
    /// converts it).
    pub(crate) fn read_plan(&self) -> Result<Option<PlanFile>, CliError> {
        if let Some(job) = self.stored(0)? {
            return self.plan_of(job).map(Some);
        }
        let Some(legacy) = read_json::<LegacyPlanFile>(&self.legacy_plan_path())? else {
            return Ok(None);
        };
        if legacy.version != LEGACY_PLAN_VERSION {
            return Err(CliError::failed(format!(
                "{} has format {}, this version of openai-batch reads {LEGACY_PLAN_VERSION}: \
                 finish the job with the version that started it, or start it again with a \
                 new --journal",
                self.legacy_plan_path().display(),
                legacy.version
            )));
        }
        Ok(Some(PlanFile::of_app(legacy.job_id, legacy.app, 0)))
    }

    fn plan_of(&self, job: StoredJob) -> Result<PlanFile, CliError> {
        let damaged = |why: &str| {
            CliError::failed(format!(
                "the journal is damaged: {} {why}",
                self.job_path(0).display()
            ))
        };
        let app: JobApp = job
            .app
            .clone()
            .ok_or_else(|| damaged("was not written by openai-batch"))
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| damaged(&format!("has bad CLI data: {e}")))
            })?;
        let StoredSource::ShardFiles { shards } = job.source else {
            return Err(damaged("names no shard files"));
        };
        Ok(PlanFile {
            shards,
            provider: job.provider,
            ..PlanFile::of_app(job.job_id, app, job.seed)
        })
    }

    /// Round 0's stored job for `plan`, with `checkpoint`.
    fn stored_of(plan: &PlanFile, checkpoint: Option<Checkpoint>) -> Result<StoredJob, CliError> {
        let app = JobApp {
            input: plan.input.clone(),
            input_len: plan.input_len,
            input_hash: plan.input_hash.clone(),
            options: plan.options.clone(),
            digest: plan.digest.clone(),
            model: plan.model.clone(),
            round: plan.round,
            created_at: plan.created_at,
            base_url: plan.base_url.clone(),
            emulator: plan.emulator,
        };
        let mut job = StoredJob::new(
            plan.job_id.clone(),
            StoredSource::ShardFiles {
                shards: plan.shards.clone(),
            },
            plan.options.batch_options(),
            plan.seed,
        );
        job.checkpoint = checkpoint;
        job.provider = plan.provider.clone();
        job.app = Some(
            serde_json::to_value(app)
                .map_err(|e| CliError::failed(format!("cannot encode the job: {e}")))?,
        );
        Ok(job)
    }

    /// Saves round 0's job as `plan` says, keeping its checkpoint.
    pub(crate) fn write_plan(&self, plan: &PlanFile) -> Result<(), CliError> {
        let checkpoint = self.stored(0)?.and_then(|j| j.checkpoint);
        self.save_stored(0, &Self::stored_of(plan, checkpoint)?)
    }

    /// The job of retry round `round`, if it was planned.
    pub(crate) fn read_round(&self, round: u32) -> Result<Option<RoundFile>, CliError> {
        let Some(job) = self.stored(round)? else {
            return Ok(None);
        };
        let damaged = || {
            CliError::failed(format!(
                "the journal is damaged: {} is not a round of openai-batch",
                self.job_path(round).display()
            ))
        };
        let app: RoundApp = job
            .app
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(damaged)?;
        let StoredSource::ShardFiles { shards } = job.source else {
            return Err(damaged());
        };
        Ok(Some(RoundFile {
            job_id: job.job_id,
            round: app.round,
            requests: app.requests,
            input_hash: app.input_hash,
            digest: app.digest,
            shards,
        }))
    }

    /// Saves the job of retry round `rf.round`, with no checkpoint yet.
    pub(crate) fn write_round(&self, rf: &RoundFile, plan: &PlanFile) -> Result<(), CliError> {
        let app = RoundApp {
            round: rf.round,
            requests: rf.requests,
            input_hash: rf.input_hash.clone(),
            digest: rf.digest.clone(),
            job_id: String::new(),
        };
        let mut options = plan.options.batch_options();
        options.model = String::new();
        let mut job = StoredJob::new(
            rf.job_id.clone(),
            StoredSource::ShardFiles {
                shards: rf.shards.clone(),
            },
            options,
            plan.seed,
        );
        job.provider = plan.provider.clone();
        job.app = Some(
            serde_json::to_value(app)
                .map_err(|e| CliError::failed(format!("cannot encode the round: {e}")))?,
        );
        self.save_stored(rf.round, &job)
    }

    /// The last checkpoint of round `round`'s job.
    pub(crate) fn read_checkpoint(&self, round: u32) -> Result<Option<Checkpoint>, CliError> {
        match self.stored(round)? {
            Some(job) => Ok(job.checkpoint),
            // A journal of an earlier version, read before it is converted.
            None => read_json(&self.round_dir(round).join("checkpoint.json")),
        }
    }

    pub(crate) fn read_summary<T: DeserializeOwned>(
        &self,
        round: u32,
    ) -> Result<Option<T>, CliError> {
        read_json(&self.round_dir(round).join("summary.json"))
    }

    pub(crate) fn write_summary<T: Serialize>(&self, round: u32, s: &T) -> Result<(), CliError> {
        write_json_atomic(&self.round_dir(round).join("summary.json"), s)
    }

    /// The paths of recorded shard files.
    pub(crate) fn shard_paths(&self, files: &[StoredShardFile]) -> Result<Vec<PathBuf>, CliError> {
        let store = self.store();
        files
            .iter()
            .map(|f| {
                store.shard_path(f).map_err(|e| {
                    CliError::failed(format!("the journal is damaged: shard file {e}"))
                })
            })
            .collect()
    }

    /// The recorded shard files, read as one stream, each checked against
    /// its recorded length and hash as it ends.
    pub(crate) fn shard_reader(
        &self,
        files: &[StoredShardFile],
    ) -> Result<ShardFilesReader, CliError> {
        Ok(ShardFilesReader {
            paths: self.shard_paths(files)?,
            files: files.to_vec(),
            next: 0,
            current: None,
        })
    }

    /// Converts a journal of an earlier version (`plan.json`,
    /// `checkpoint.json`, `rounds/N/plan.json` and `checkpoint.json`) into
    /// stored jobs: the shard files stay where they are and are recorded
    /// with their length and hash. The rounds are saved first and round 0
    /// last, so a conversion cut short is done again; the old files are
    /// removed once round 0 is saved.
    fn convert_legacy(&self) -> Result<(), CliError> {
        if self.job_path(0).exists() {
            return Ok(());
        }
        let Some(mut plan) = self.read_plan()? else {
            return Ok(());
        };
        let mut old = vec![self.legacy_plan_path(), self.dir.join("checkpoint.json")];
        for round in 1..=plan.round {
            let dir = self.round_dir(round);
            let Some(app) = read_json::<RoundApp>(&dir.join("plan.json"))? else {
                continue;
            };
            let rf = RoundFile {
                job_id: app.job_id,
                round,
                requests: app.requests,
                input_hash: app.input_hash,
                shards: self.record_files(round, app.digest.shards)?,
                digest: app.digest,
            };
            self.write_round(&rf, &plan)?;
            let checkpoint = read_json::<Checkpoint>(&dir.join("checkpoint.json"))?;
            if checkpoint.is_some() {
                let mut job = self.stored(round)?.ok_or_else(|| {
                    CliError::failed(format!("cannot read {}", self.job_path(round).display()))
                })?;
                job.checkpoint = checkpoint;
                self.save_stored(round, &job)?;
            }
            old.extend(["plan.json", "checkpoint.json", "input.jsonl"].map(|f| dir.join(f)));
        }
        plan.shards = self.record_files(0, plan.digest.shards)?;
        plan.seed = 0;
        let checkpoint = read_json::<Checkpoint>(&self.dir.join("checkpoint.json"))?;
        self.save_stored(0, &Self::stored_of(&plan, checkpoint)?)?;
        for path in old {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CliError::failed(format!(
                        "cannot remove {} after converting the journal: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Records the `count` shard files of round `round` as they are on disk.
    fn record_files(&self, round: u32, count: u64) -> Result<Vec<StoredShardFile>, CliError> {
        (0..count)
            .map(|i| {
                let name = crate::input::shard_file_name(u32::try_from(i).unwrap_or(u32::MAX));
                let path = self.shards_dir(round).join(&name);
                let read_err = |e: io::Error| {
                    CliError::failed(format!(
                        "the journal is damaged: cannot read {}: {e}",
                        path.display()
                    ))
                };
                let mut f = io::BufReader::new(File::open(&path).map_err(read_err)?);
                let mut hash = ShardHash::new();
                let (mut bytes, mut lines) = (0u64, 0u64);
                loop {
                    let buf = io::BufRead::fill_buf(&mut f).map_err(read_err)?;
                    if buf.is_empty() {
                        break;
                    }
                    hash.update(buf);
                    lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
                    bytes += buf.len() as u64;
                    let n = buf.len();
                    io::BufRead::consume(&mut f, n);
                }
                Ok(StoredShardFile::from_parts(
                    Self::shard_record_name(round, &name),
                    bytes,
                    lines,
                    &hash,
                ))
            })
            .collect()
    }

    /// Checks that `plan`, rebuilt from the recorded shard `files`, has
    /// the same shards as they do.
    pub(crate) fn check_shards(
        &self,
        files: &[StoredShardFile],
        plan: &JobPlan,
    ) -> Result<(), CliError> {
        let shards = plan.shards();
        if shards.len() != files.len() {
            return Err(CliError::failed(format!(
                "the journal is damaged: {} shard files rebuild {} shards",
                files.len(),
                shards.len()
            )));
        }
        for (s, f) in shards.iter().zip(files) {
            if s.bytes != f.bytes {
                return Err(CliError::failed(format!(
                    "the journal is damaged: {} has {} bytes, the plan rebuilt from it says {}",
                    f.file, f.bytes, s.bytes
                )));
            }
        }
        Ok(())
    }
}

/// The journal's shard files of one round read as one stream, each checked
/// against its recorded length and hash when it ends.
pub(crate) struct ShardFilesReader {
    paths: Vec<PathBuf>,
    files: Vec<StoredShardFile>,
    next: usize,
    current: Option<(File, u64, ShardHash)>,
}

impl Read for ShardFilesReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(path) = self.paths.get(self.next) else {
                return Ok(0);
            };
            if self.current.is_none() {
                let f = File::open(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("the journal is damaged: {}: {e}", path.display()),
                    )
                })?;
                self.current = Some((f, 0, ShardHash::new()));
            }
            let Some((f, len, hash)) = self.current.as_mut() else {
                continue;
            };
            let n = f.read(buf)?;
            if n > 0 {
                hash.update(&buf[..n]);
                *len += n as u64;
                return Ok(n);
            }
            let rec = &self.files[self.next];
            if *len != rec.bytes || hash.hex() != rec.fnv64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the journal is damaged: {} changed after it was planned ({len} bytes, \
                         {} recorded; the hash {})",
                        path.display(),
                        rec.bytes,
                        if hash.hex() == rec.fnv64 {
                            "is the same"
                        } else {
                            "differs"
                        }
                    ),
                ));
            }
            self.current = None;
            self.next += 1;
        }
    }
}

/// The pid in the lock file of a journal in use. The owner writes it just
/// after taking the lock, so an empty file or the pid of the previous owner
/// may be read in between: the file is read until it holds a pid that stays
/// the same for a moment (a tenth of a second at most in all).
fn read_owner(path: &Path) -> Option<u32> {
    let read = || {
        fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    };
    let mut last = None;
    for _ in 0..10 {
        let now = read();
        if now.is_some() && now == last {
            return now;
        }
        last = now;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    last
}

/// Creates `dir` and its missing parents. On unix they are made 0700: the
/// journal holds every prompt and every response.
pub(crate) fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Options that create files 0600 on unix (see [`create_private_dir_all`]).
pub(crate) fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates (or truncates) a journal file for writing, 0600 on unix.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Reads a JSON file, `None` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, CliError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CliError::failed(format!(
                "the journal is damaged: {} cannot be read: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::failed(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes `value` as JSON to `path` atomically: a temporary file, fsync,
/// rename over `path`, fsync of the folder.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), CliError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
}

/// Writes `bytes` to `path` atomically (see [`write_json_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = create_private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The outcome recorded in a result slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Empty = 0,
    Succeeded = 1,
    Failed = 2,
    /// Failed, and worth another try (`--retry-failed`).
    FailedRetryable = 3,
    NotProcessed = 4,
    /// Not processed, and worth another try.
    NotProcessedRetryable = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Kind {
        match b {
            1 => Kind::Succeeded,
            2 => Kind::Failed,
            3 => Kind::FailedRetryable,
            4 => Kind::NotProcessed,
            5 => Kind::NotProcessedRetryable,
            _ => Kind::Empty,
        }
    }

    pub(crate) fn is_retryable(self) -> bool {
        matches!(self, Kind::FailedRetryable | Kind::NotProcessedRetryable)
    }
}

const SLOT: u64 = 16;

/// Result bytes gathered before they are written to the spill, at most (a
/// longer line is written on its own).
const PENDING_SPILL: usize = 1 << 20;

/// Index records gathered before they are written, at most.
const PENDING_INDEX: usize = 4096;

/// How much of a line is read to check its `custom_id` when assembling
/// (all of it when the id is longer).
const ID_HEAD: usize = 256;

/// A run of consecutive spill lines longer than this is copied by the
/// kernel rather than read into memory (see [`ResultStore::assemble`]).
const COPY_MIN: u64 = 1 << 20;

/// Writes not yet made: results are gathered and written a block at a
/// time, not a syscall or two per line. The spill's bytes always go out
/// before the index records that point at them.
#[derive(Debug, Default)]
struct Pending {
    /// Spill bytes not yet written; they end at the store's `spill_len`.
    spill: Vec<u8>,
    /// Index records not yet written, with their slots, in the order put
    /// (a slot put twice: the later record wins).
    index: Vec<(u64, [u8; SLOT as usize])>,
    /// The records of consecutive slots, as one write.
    staging: Vec<u8>,
}

impl Pending {
    /// Writes the gathered spill bytes, which end at `end`.
    fn write_spill(&mut self, file: &File, cursor: &Cell<Option<u64>>, end: u64) -> io::Result<()> {
        if self.spill.is_empty() {
            return Ok(());
        }
        write_at(file, cursor, end - self.spill.len() as u64, &self.spill)?;
        self.spill.clear();
        Ok(())
    }

    /// Writes the gathered index records, one positioned write per run
    /// of consecutive slots.
    fn write_index(&mut self, file: &File) -> io::Result<()> {
        let mut i = 0;
        while i < self.index.len() {
            let from = self.index[i].0;
            self.staging.clear();
            let mut j = i;
            while j < self.index.len() && self.index[j].0 == from + (j - i) as u64 {
                self.staging.extend_from_slice(&self.index[j].1);
                j += 1;
            }
            write_all_at(file, from * SLOT, &self.staging)?;
            i = j;
        }
        self.index.clear();
        Ok(())
    }
}

/// `results.spill` and `results.index`.
#[derive(Debug)]
pub(crate) struct ResultStore {
    spill: File,
    /// The spill's length, with the bytes not yet written.
    spill_len: u64,
    index: File,
    slots: u64,
    pending: RefCell<Pending>,
    /// Where the spill's file cursor is, when known: appending then needs
    /// no seek.
    spill_cursor: Cell<Option<u64>>,
}

impl ResultStore {
    /// Opens the store of a journal for `slots` requests, creating it if needed.
    pub(crate) fn open(dir: &Path, slots: u64) -> Result<ResultStore, CliError> {
        let open = |name: &str| {
            let path = dir.join(name);
            private_options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| CliError::failed(format!("cannot open {}: {e}", path.display())))
        };
        let spill = open("results.spill")?;
        let index = open("results.index")?;
        let meta = |f: &File, name: &str| {
            f.metadata()
                .map(|m| m.len())
                .map_err(|e| CliError::failed(format!("cannot read {name}: {e}")))
        };
        let spill_len = meta(&spill, "results.spill")?;
        let index_len = meta(&index, "results.index")?;
        if index_len != slots * SLOT {
            if index_len != 0 {
                return Err(CliError::failed(format!(
                    "the journal is damaged: results.index has {index_len} bytes for {slots} requests"
                )));
            }
            index
                .set_len(slots * SLOT)
                .map_err(|e| CliError::failed(format!("cannot size results.index: {e}")))?;
        }
        Ok(ResultStore {
            spill,
            spill_len,
            index,
            slots,
            pending: RefCell::new(Pending::default()),
            spill_cursor: Cell::new(None),
        })
    }

    /// Appends `line` to the spill and points slot `slot` at it. The
    /// bytes may be held back until a later put, [`sync`](Self::sync) or
    /// read; they are durable only after `sync`.
    pub(crate) fn put(&mut self, slot: u64, kind: Kind, line: &[u8]) -> io::Result<()> {
        if slot >= self.slots {
            return Err(io::Error::other(format!(
                "result for request {slot} of {}",
                self.slots
            )));
        }
        let len =
            u32::try_from(line.len()).map_err(|_| io::Error::other("a result line over 4 GiB"))?;
        let offset = self.spill_len;
        let mut rec = [0u8; SLOT as usize];
        rec[..8].copy_from_slice(&offset.to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12] = kind as u8;
        let p = self.pending.get_mut();
        if p.spill.len() + line.len() > PENDING_SPILL {
            p.write_spill(&self.spill, &self.spill_cursor, offset)?;
        }
        if line.len() >= PENDING_SPILL {
            write_at(&self.spill, &self.spill_cursor, offset, line)?;
        } else {
            p.spill.extend_from_slice(line);
        }
        self.spill_len += u64::from(len);
        if p.index.len() >= PENDING_INDEX {
            p.write_spill(&self.spill, &self.spill_cursor, self.spill_len)?;
            p.write_index(&self.index)?;
        }
        p.index.push((slot, rec));
        Ok(())
    }

    /// Writes what the puts held back (the spill first), without syncing.
    fn flush(&self) -> io::Result<()> {
        let mut p = self.pending.borrow_mut();
        p.write_spill(&self.spill, &self.spill_cursor, self.spill_len)?;
        p.write_index(&self.index)
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.flush()?;
        self.spill.sync_data()?;
        self.index.sync_data()
    }

    /// The number of slots.
    pub(crate) fn len(&self) -> u64 {
        self.slots
    }

    /// Reads the slots `from..from + n` (at most 4096 at a time) into `out`
    /// as (offset, length, kind).
    pub(crate) fn slots(&self, from: u64, out: &mut Vec<(u64, u32, Kind)>) -> io::Result<()> {
        self.flush()?;
        out.clear();
        let n = (self.slots - from.min(self.slots)).min(4096);
        let mut buf = vec![0u8; usize::try_from(n * SLOT).unwrap_or(0)];
        read_exact_at(&self.index, from * SLOT, &mut buf)?;
        for rec in buf.chunks_exact(SLOT as usize) {
            let offset = u64::from_le_bytes(rec[..8].try_into().unwrap_or([0; 8]));
            let len = u32::from_le_bytes(rec[8..12].try_into().unwrap_or([0; 4]));
            out.push((offset, len, Kind::from_byte(rec[12])));
        }
        Ok(())
    }

    /// The `custom_id` of the line of `len` bytes at `offset` of the
    /// spill, reading only its head when the id fits in it.
    fn custom_id_at(&self, offset: u64, len: u32, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
        // Off unix the reads move the file's cursor.
        self.spill_cursor.set(None);
        let len = len as usize;
        buf.resize(len.min(ID_HEAD), 0);
        read_exact_at(&self.spill, offset, buf)?;
        if let Some(id) = first_custom_id(buf) {
            return Ok(Some(id));
        }
        if buf.len() == len {
            return Ok(None);
        }
        buf.resize(len, 0);
        read_exact_at(&self.spill, offset, buf)?;
        Ok(first_custom_id(buf))
    }

    /// Copies the spill's bytes `from..to` to `out`: inside the kernel
    /// when `out` is a file (`copy_file_range` on Linux, through
    /// `std::io::copy`), not through this process's memory.
    fn copy_spill(&self, from: u64, to: u64, out: &mut impl Write) -> io::Result<()> {
        self.spill_cursor.set(None);
        let mut f = &self.spill;
        f.seek(SeekFrom::Start(from))?;
        let n = io::copy(&mut f.take(to - from), out)?;
        if n != to - from {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "results.spill ended early",
            ));
        }
        Ok(())
    }

    /// Writes `run` to `out` once its lines' ids are checked: a short run
    /// is read whole (one read) and its ids checked in what was read; a
    /// long one was checked line by line and is copied by
    /// [`copy_spill`](Self::copy_spill).
    fn write_run(
        &self,
        run: &mut Run,
        buf: &mut Vec<u8>,
        out: &mut impl Write,
    ) -> Result<(), CliError> {
        let io = |e: io::Error| CliError::failed(format!("cannot assemble the results: {e}"));
        if run.long {
            return self.copy_spill(run.from, run.to, out).map_err(io);
        }
        buf.resize(usize::try_from(run.to - run.from).unwrap_or(usize::MAX), 0);
        // Off unix the read moves the file's cursor.
        self.spill_cursor.set(None);
        read_exact_at(&self.spill, run.from, buf).map_err(io)?;
        let mut at = 0;
        for (i, len, want) in run.unchecked.drain(..) {
            let line = &buf[at..at + len as usize];
            check_id(i, &want, first_custom_id(line))?;
            at += len as usize;
        }
        out.write_all(buf).map_err(io)
    }

    /// Counts the outcomes and writes every slot's line, in order, to `out`.
    /// `expected` gives the `custom_id` each slot must hold, in input order
    /// (see [`ShardIds`]): a slot holding another request's result is an
    /// error, not a wrong output file.
    ///
    /// The lines are written a run at a time, a run being lines that lie
    /// one after the other in the spill. A run of up to [`COPY_MIN`] bytes
    /// is read at once; a longer one (results that came in input order) is
    /// copied by the kernel after each line's `custom_id` is read from its
    /// head.
    ///
    /// # Errors
    /// Fails if a slot is empty, points outside the spill, or holds the
    /// result of another request (a damaged journal), or on IO errors.
    pub(crate) fn assemble(
        &self,
        mut expected: impl Iterator<Item = Result<String, CliError>>,
        out: &mut impl Write,
    ) -> Result<Counts, CliError> {
        let damaged = |i: u64, why: &str| {
            CliError::failed(format!(
                "the journal is damaged: the result of request {} {why}; the results were not \
                 written",
                i + 1
            ))
        };
        let io = |e: io::Error| CliError::failed(format!("cannot assemble the results: {e}"));
        let mut counts = Counts::default();
        let mut slots = Vec::new();
        let mut buf = Vec::new();
        let mut run: Option<Run> = None;
        let mut i = 0;
        while i < self.slots {
            self.slots(i, &mut slots).map_err(io)?;
            for &(offset, len, kind) in &slots {
                match kind {
                    Kind::Empty => return Err(damaged(i, "is missing")),
                    Kind::Succeeded => counts.succeeded += 1,
                    Kind::Failed | Kind::FailedRetryable => counts.failed += 1,
                    Kind::NotProcessed | Kind::NotProcessedRetryable => counts.not_processed += 1,
                }
                let end = offset + u64::from(len);
                if len == 0 || end > self.spill_len {
                    return Err(damaged(i, "points outside results.spill"));
                }
                let want = expected
                    .next()
                    .transpose()?
                    .ok_or_else(|| damaged(i, "has no request in the shard files"))?;
                let r = match run.take() {
                    Some(mut r) if r.to == offset => {
                        r.to = end;
                        r
                    }
                    other => {
                        if let Some(mut r) = other {
                            self.write_run(&mut r, &mut buf, out)?;
                        }
                        Run {
                            from: offset,
                            to: end,
                            long: false,
                            unchecked: Vec::new(),
                        }
                    }
                };
                let r = run.insert(r);
                if r.long {
                    check_id(
                        i,
                        &want,
                        self.custom_id_at(offset, len, &mut buf).map_err(io)?,
                    )?;
                } else {
                    r.unchecked.push((i, len, want));
                    if r.to - r.from > COPY_MIN {
                        let mut at = r.from;
                        for (j, len, want) in r.unchecked.drain(..) {
                            check_id(j, &want, self.custom_id_at(at, len, &mut buf).map_err(io)?)?;
                            at += u64::from(len);
                        }
                        r.long = true;
                    }
                }
                i += 1;
            }
        }
        if expected.next().transpose()?.is_some() {
            return Err(CliError::failed(
                "the journal is damaged: the shard files hold more requests than results.index; \
                 the results were not written",
            ));
        }
        if let Some(mut r) = run {
            self.write_run(&mut r, &mut buf, out)?;
        }
        Ok(counts)
    }

    /// The slot kinds, in order, for choosing the requests of a retry round.
    pub(crate) fn kinds(&self) -> KindIter<'_> {
        KindIter {
            store: self,
            next: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Drop for ResultStore {
    /// Writes what the puts held back, as a store that wrote every line at
    /// once would have it (durable only once synced, either way).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Lines that lie one after the other in the spill, not yet written out.
struct Run {
    from: u64,
    to: u64,
    /// Over [`COPY_MIN`] bytes: each line's id was checked as it came, and
    /// the run is copied without being read.
    long: bool,
    /// Each line's slot, length and expected `custom_id`, while not `long`.
    unchecked: Vec<(u64, u32, String)>,
}

/// Fails unless slot `i`'s line holds the result of `want`.
fn check_id(i: u64, want: &str, found: Option<String>) -> Result<(), CliError> {
    if found.as_deref() == Some(want) {
        return Ok(());
    }
    Err(CliError::failed(format!(
        "the journal is damaged: the result of request {} ({want:?}): slot {} of results.index \
         holds {}; the results were not written",
        i + 1,
        i + 1,
        match &found {
            Some(id) => format!("the result of {id:?}"),
            None => "a line with no custom_id".to_owned(),
        }
    )))
}

/// Iterates over the kinds of all slots, a block at a time.
pub(crate) struct KindIter<'a> {
    store: &'a ResultStore,
    next: u64,
    buf: Vec<(u64, u32, Kind)>,
    pos: usize,
}

impl Iterator for KindIter<'_> {
    type Item = io::Result<Kind>;
    fn next(&mut self) -> Option<io::Result<Kind>> {
        if self.pos == self.buf.len() {
            if self.next >= self.store.slots {
                return None;
            }
            if let Err(e) = self.store.slots(self.next, &mut self.buf) {
                return Some(Err(e));
            }
            self.next += self.buf.len() as u64;
            self.pos = 0;
        }
        let k = self.buf[self.pos].2;
        self.pos += 1;
        Some(Ok(k))
    }
}

/// The `custom_id` of a JSON line that starts with it, as both the shard
/// lines (encoded by the core) and the result lines (rendered here) do.
pub(crate) fn first_custom_id(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"{\"custom_id\":")?;
    let mut de = serde_json::Deserializer::from_slice(rest);
    String::deserialize(&mut de).ok()
}

/// The `custom_id` of every request of round 0's shard files, in order:
/// the input's requests, in input order.
pub(crate) struct ShardIds {
    paths: std::vec::IntoIter<PathBuf>,
    reader: Option<(PathBuf, io::BufReader<File>)>,
    buf: Vec<u8>,
}

impl ShardIds {
    /// The ids of the shard files at `paths`, in order.
    pub(crate) fn new(paths: Vec<PathBuf>) -> Self {
        ShardIds {
            paths: paths.into_iter(),
            reader: None,
            buf: Vec::new(),
        }
    }
}

impl Iterator for ShardIds {
    type Item = Result<String, CliError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        loop {
            if self.reader.is_none() {
                let path = self.paths.next()?;
                match File::open(&path) {
                    Ok(f) => self.reader = Some((path, io::BufReader::new(f))),
                    Err(e) => {
                        return Some(Err(CliError::failed(format!(
                            "cannot read {}: {e}",
                            path.display()
                        ))));
                    }
                }
            }
            let (path, r) = self.reader.as_mut()?;
            self.buf.clear();
            match r.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.reader = None,
                Ok(_) => {
                    // A Message Batch's shard lines after the first start
                    // with `,` (the create body is framed around them).
                    let line = self.buf.strip_prefix(b",").unwrap_or(&self.buf);
                    return Some(first_custom_id(line).ok_or_else(|| {
                        CliError::failed(format!(
                            "the journal is damaged: a line of {} has no custom_id",
                            path.display()
                        ))
                    }));
                }
                Err(e) => {
                    return Some(Err(CliError::failed(format!(
                        "cannot read {}: {e}",
                        path.display()
                    ))));
                }
            }
        }
    }
}

/// Outcomes counted over the final results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) not_processed: u64,
}

/// The temporary file the output is written to before its rename.
pub(crate) fn partial_path(output: &Path) -> PathBuf {
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".partial");
    PathBuf::from(tmp)
}

/// Writes the output file through a temporary file and a rename.
pub(crate) fn write_output(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<Counts, CliError>,
) -> Result<Counts, CliError> {
    let tmp = partial_path(path);
    let io = |e: io::Error| CliError::failed(format!("cannot write {}: {e}", path.display()));
    let f = File::create(&tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let counts = fill(&mut w)?;
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    Ok(counts)
}

/// Fills `buf` from `file` at `offset` (on unix without moving the file's
/// cursor).
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Writes `bytes` at `offset` of `file` (on unix without moving the
/// file's cursor).
fn write_all_at(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(bytes, offset)
    }
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }
}

/// Writes `bytes` at `offset` of `file`, seeking only when its cursor is
/// not already there, and notes where the cursor ends.
fn write_at(file: &File, cursor: &Cell<Option<u64>>, offset: u64, bytes: &[u8]) -> io::Result<()> {
    // Unknown until the write succeeds.
    if cursor.take() != Some(offset) {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
    }
    let mut f = file;
    f.write_all(bytes)?;
    cursor.set(Some(offset + bytes.len() as u64));
    Ok(())
}

/// `rounds/N/map.bin`: the input index of each request of a retry round.
#[derive(Debug)]
pub(crate) struct IndexMap {
    file: File,
}

impl IndexMap {
    pub(crate) fn open(path: &Path) -> Result<IndexMap, CliError> {
        File::open(path)
            .map(|file| IndexMap { file })
            .map_err(|e| CliError::failed(format!("cannot open {}: {e}", path.display())))
    }

    /// The input index of request `i` of the round.
    pub(crate) fn get(&self, i: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        (&self.file).seek(SeekFrom::Start(i * 8))?;
        (&self.file).read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, rest: &str) -> Vec<u8> {
        format!("{{\"custom_id\":\"{id}\",\"outcome\":\"{rest}\"}}\n").into_bytes()
    }

    fn ids(list: &[&str]) -> impl Iterator<Item = Result<String, CliError>> {
        list.iter()
            .map(|s| Ok((*s).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn results_are_assembled_in_slot_order_and_overwrites_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ResultStore::open(dir.path(), 3).expect("open");
        store.put(2, Kind::Succeeded, &line("c", "1")).expect("put");
        store
            .put(0, Kind::FailedRetryable, &line("a", "0"))
            .expect("put");
        store
            .put(1, Kind::NotProcessed, &line("b", ""))
            .expect("put");
        store.put(0, Kind::Succeeded, &line("a", "1")).expect("put");
        store.sync().expect("sync");
        drop(store);
        let store = ResultStore::open(dir.path(), 3).expect("reopen");
        let mut out = Vec::new();
        let counts = store
            .assemble(ids(&["a", "b", "c"]), &mut out)
            .expect("assemble");
        assert_eq!(
            out,
            [line("a", "1"), line("b", ""), line("c", "1")].concat()
        );
        assert_eq!(
            counts,
            Counts {
                succeeded: 2,
                failed: 0,
                not_processed: 1
            }
        );
        let kinds: Vec<Kind> = store.kinds().map(|k| k.expect("kind")).collect();
        assert_eq!(
            kinds,
            [Kind::Succeeded, Kind::NotProcessed, Kind::Succeeded]
        );
    }

    /// Assembling reads the spill in order without seeking: lines read in
    /// order, lines put after a read, and lines out of order all come back
    /// whole, from the same open store.
    #[test]
    fn assembly_reads_ahead_and_sees_later_puts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 300u64;
        let mut store = ResultStore::open(dir.path(), n).expect("open");
        let big = "x".repeat(10_000);
        let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let want = |i: u64, v: &str| line(&names[i as usize], v);
        // In slot order: read without seeking.
        for i in 0..n {
            store.put(i, Kind::Succeeded, &want(i, &big)).expect("put");
        }
        let ids_all = || names.clone().into_iter().map(Ok::<String, CliError>);
        let mut out = Vec::new();
        store.assemble(ids_all(), &mut out).expect("assemble");
        let expect: Vec<u8> = (0..n).flat_map(|i| want(i, &big)).collect();
        assert_eq!(out, expect);
        // Odd slots again, backwards: the spill is now out of slot order.
        for i in (1..n).rev().filter(|i| i % 2 == 1) {
            store.put(i, Kind::Succeeded, &want(i, "odd")).expect("put");
        }
        let mut out = Vec::new();
        store.assemble(ids_all(), &mut out).expect("assemble");
        let expect: Vec<u8> = (0..n)
            .flat_map(|i| want(i, if i % 2 == 1 { "odd" } else { &big }))
            .collect();
        assert_eq!(out, expect);
        // A put after a read lands at the spill's end and is read back.
        store.put(4, Kind::Failed, &want(4, "late")).expect("put");
        let mut out = Vec::new();
        let counts = store.assemble(ids_all(), &mut out).expect("assemble");
        let expect: Vec<u8> = (0..n)
            .flat_map(|i| {
                let v = match i {
                    4 => "late",
                    _ if i % 2 == 1 => "odd",
                    _ => &big,
                };
                want(i, v)
            })
            .collect();
        assert_eq!(out, expect);
        assert_eq!(counts.failed, 1);
    }

    /// Results in input order make one long run, copied without being
    /// read; each line's id is still checked, a wrong one anywhere in it
    /// is found, and puts not yet synced are written when the store is
    /// dropped.
    #[test]
    fn a_long_run_is_checked_line_by_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 400u64;
        let big = "y".repeat(8_000);
        let names: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
        let mut store = ResultStore::open(dir.path(), n).expect("open");
        for i in 0..n {
            let id = if i == 250 {
                "stray"
            } else {
                &names[i as usize]
            };
            store.put(i, Kind::Succeeded, &line(id, &big)).expect("put");
        }
        drop(store);
        let mut store = ResultStore::open(dir.path(), n).expect("reopen");
        let ids_all = || names.clone().into_iter().map(Ok::<String, CliError>);
        let err = store
            .assemble(ids_all(), &mut Vec::new())
            .expect_err("slot 251 holds another id");
        assert!(
            matches!(&err, CliError::Failed(m) if m.contains("request 251 (\"id-250\")")
                && m.contains("holds the result of \"stray\"")),
            "{err:?}"
        );
        store
            .put(250, Kind::Succeeded, &line(&names[250], &big))
            .expect("put");
        let mut out = Vec::new();
        store.assemble(ids_all(), &mut out).expect("assemble");
        let expect: Vec<u8> = names.iter().flat_map(|id| line(id, &big)).collect();
        assert_eq!(out, expect);
    }

    #[test]
    fn a_missing_result_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ResultStore::open(dir.path(), 2).expect("open");
        store.put(0, Kind::Succeeded, &line("a", "")).expect("put");
        let err = store
            .assemble(ids(&["a", "b"]), &mut Vec::new())
            .expect_err("slot 1 is empty");
        assert!(matches!(err, CliError::Failed(m) if m.contains("request 2 is missing")));
    }

    #[test]
    fn a_slot_holding_another_requests_result_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ResultStore::open(dir.path(), 2).expect("open");
        store.put(0, Kind::Succeeded, &line("a", "")).expect("put");
        store.put(1, Kind::Succeeded, &line("a", "")).expect("put");
        let err = store
            .assemble(ids(&["a", "b"]), &mut Vec::new())
            .expect_err("slot 2 holds a's result");
        assert!(
            matches!(&err, CliError::Failed(m) if m.contains("request 2 (\"b\")")
                && m.contains("slot 2 of results.index holds the result of \"a\"")),
            "{err:?}"
        );
        let err = store
            .assemble(ids(&["a", "a", "c"]), &mut Vec::new())
            .expect_err("a request has no slot");
        assert!(matches!(&err, CliError::Failed(m) if m.contains("more requests")));
    }

    #[test]
    fn the_first_custom_id_is_read_without_the_rest() {
        assert_eq!(
            first_custom_id(br#"{"custom_id":"a\"b","method":"POST"}"#).as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            first_custom_id(br#"{"method":"POST","custom_id":"a"}"#),
            None
        );
    }

    #[test]
    fn atomic_writes_replace_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2]).expect("write");
        write_json_atomic(&p, &vec![3]).expect("write");
        let v: Option<Vec<u32>> = read_json(&p).expect("read");
        assert_eq!(v, Some(vec![3]));
        assert!(!dir.path().join("x.json.tmp").exists());
    }
}
