//! What a [`BatchJob`] must remember across processes, as plain data, and
//! the [`JobStore`] trait that persists it.
//!
//! `submit_batch` in one process, [`BatchJob::save`] to a store, then
//! [`BatchJob::load`] and `get_results` in another: the second process
//! rebuilds the same plan from the stored shard bytes (the checkpoint's
//! plan digest proves it is the same), continues from the stored checkpoint,
//! and collects every outcome once. The core defines the data and the
//! trait; the IO lives elsewhere (`batch-store` ships a file-backed store).
//!
//! Outcomes are not stored: the server's result files are their durable
//! copy. A shard the saving process already collected is collected again by
//! the loading one (see [`StoredJob::into_handle`]).

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::input::BatchRequest;
use crate::job::checkpoint::Checkpoint;
use crate::job::memory::{BatchJob, BatchOptions};
use crate::job::types::ShardEnd;

/// The format version of [`StoredJob`]; a store refuses any other.
pub const STORED_JOB_VERSION: u32 = 1;

/// A job handle as stored: how to rebuild its plan, its options and seed,
/// and its last checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredJob {
    /// [`STORED_JOB_VERSION`] when written.
    pub version: u32,
    /// The job's id (also in the checkpoint and each batch's metadata).
    pub job_id: String,
    /// Where the plan comes from.
    pub source: StoredSource,
    /// The options the handle was built with.
    pub options: BatchOptions,
    /// The seed of its job id and backoff jitter.
    pub seed: u64,
    /// The last checkpoint, once the job has started.
    pub checkpoint: Option<Checkpoint>,
}

/// Where a stored job's plan comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoredSource {
    /// The encoded shard files (JSONL text, one string per shard): the
    /// plan is rebuilt from their lines with the stored options.
    Shards {
        /// Each shard's file content.
        shards: Vec<String>,
    },
    /// A batch known by its id ([`BatchJob::for_batch`]).
    Batch {
        /// The batch.
        batch_id: String,
    },
}

/// Why a stored job could not be turned back into a handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Written by another format version.
    #[error("stored job version {found} is not supported (expected {expected})")]
    Version {
        /// Found.
        found: u32,
        /// Supported.
        expected: u32,
    },
    /// The stored shards do not rebuild the stored job (edited or corrupt).
    #[error("the stored shards do not rebuild job {job_id}: {detail}")]
    Mismatch {
        /// The job.
        job_id: String,
        /// What differs.
        detail: String,
    },
    /// A stored shard line is not a request.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The store could not be read or written.
    #[error("the job store failed: {0}")]
    Io(#[from] std::io::Error),
    /// No job is stored under this name.
    #[error("no job named {0:?} in the store")]
    NotFound(String),
}

/// Persists [`StoredJob`]s by name. Implementations write each save
/// atomically (a reader sees the old or the new job, never a mix).
///
/// Names are chosen by the caller: plain names of letters, digits, `-`,
/// `_` and `.` (not starting with `.`) are accepted by every store.
pub trait JobStore {
    /// Stores `job` under `name`, replacing what was there.
    ///
    /// # Errors
    /// Fails if the store cannot be written or `name` is not a plain name.
    fn save(&self, name: &str, job: &StoredJob) -> std::io::Result<()>;
    /// The job stored under `name`, if any.
    ///
    /// # Errors
    /// Fails if the store cannot be read or the stored bytes are not a job.
    fn load(&self, name: &str) -> std::io::Result<Option<StoredJob>>;
    /// The names of the stored jobs, sorted.
    ///
    /// # Errors
    /// Fails if the store cannot be read.
    fn list(&self) -> std::io::Result<Vec<String>>;
}

/// Whether `name` is a plain job name: 1 to 128 letters, digits, `-`, `_`
/// or `.`, not starting with `.`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl StoredJob {
    /// The stored form of `handle`.
    pub fn from_handle(handle: &BatchJob) -> StoredJob {
        let source = match handle.plan().batch_id() {
            Some(batch_id) => StoredSource::Batch {
                batch_id: batch_id.to_owned(),
            },
            None => StoredSource::Shards {
                shards: handle
                    .shard_bytes()
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            },
        };
        StoredJob {
            version: STORED_JOB_VERSION,
            job_id: handle.plan().job_id().to_owned(),
            source,
            options: handle.options().clone(),
            seed: handle.seed(),
            checkpoint: handle.checkpoint().cloned(),
        }
    }

    /// The handle again: the same plan, rebuilt from the stored shards, and
    /// the stored checkpoint. Shards whose batches ended and were collected
    /// are reopened, so this process collects their outcomes again from the
    /// server (the handle holds none yet); shards never submitted stay
    /// ended and have no outcome here.
    ///
    /// # Errors
    /// [`StoreError::Version`] for another format version;
    /// [`StoreError::Mismatch`] if the shards rebuild another plan than the
    /// checkpoint's; [`StoreError::Input`] for a shard line that is not a
    /// request.
    pub fn into_handle(self) -> Result<BatchJob, StoreError> {
        if self.version != STORED_JOB_VERSION {
            return Err(StoreError::Version {
                found: self.version,
                expected: STORED_JOB_VERSION,
            });
        }
        let mut handle = match &self.source {
            StoredSource::Batch { batch_id } => {
                BatchJob::for_batch(batch_id, &self.options, self.seed)
            }
            StoredSource::Shards { shards } => {
                let mut requests = Vec::new();
                for shard in shards {
                    for line in shard.lines().filter(|l| !l.trim().is_empty()) {
                        let n = requests.len() as u64 + 1;
                        requests.push(BatchRequest::parse_line("stored", n, line.as_bytes())?);
                    }
                }
                BatchJob::from_requests(&requests, &self.options, self.seed)?
            }
        };
        let mismatch = |detail: String| StoreError::Mismatch {
            job_id: self.job_id.clone(),
            detail,
        };
        if handle.plan().job_id() != self.job_id {
            return Err(mismatch(format!(
                "the plan's job id is {}",
                handle.plan().job_id()
            )));
        }
        if let StoredSource::Shards { shards } = &self.source {
            let rebuilt: Vec<&[u8]> = handle.shard_bytes().iter().map(Vec::as_slice).collect();
            let stored: Vec<&[u8]> = shards.iter().map(String::as_bytes).collect();
            if rebuilt != stored {
                return Err(mismatch("the shard boundaries or bytes differ".into()));
            }
        }
        if let Some(mut cp) = self.checkpoint {
            if cp.plan != handle.plan().digest() {
                return Err(mismatch("the checkpoint's plan digest differs".into()));
            }
            for s in &mut cp.shards {
                if s.end == Some(ShardEnd::Finished) && s.batch_id.is_some() {
                    s.end = None;
                    s.tally = Default::default();
                }
            }
            handle.restore_checkpoint(cp);
        }
        Ok(handle)
    }
}

impl BatchJob {
    /// Stores this handle under `name` in `store` (see [`StoredJob`]); call
    /// it after `submit_batch`, and again after any call that moved the job
    /// on, so another process can [`load`](Self::load) it.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the store fails.
    pub fn save(&self, store: &dyn JobStore, name: &str) -> Result<(), StoreError> {
        store.save(name, &StoredJob::from_handle(self))?;
        Ok(())
    }

    /// The handle stored under `name` in `store`, ready for `poll_status`,
    /// `get_results` or `cancel` in this process.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if nothing is stored under `name`; the
    /// errors of [`StoredJob::into_handle`]; [`StoreError::Io`] if the store
    /// fails.
    pub fn load(store: &dyn JobStore, name: &str) -> Result<BatchJob, StoreError> {
        store
            .load(name)?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?
            .into_handle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use crate::input::{Item, SystemPrompt};

    #[derive(Default)]
    struct MemStore(Mutex<BTreeMap<String, String>>);

    impl JobStore for MemStore {
        fn save(&self, name: &str, job: &StoredJob) -> std::io::Result<()> {
            let text = serde_json::to_string(job).map_err(std::io::Error::other)?;
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .insert(name.into(), text);
            Ok(())
        }
        fn load(&self, name: &str) -> std::io::Result<Option<StoredJob>> {
            let map = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            map.get(name)
                .map(|t| serde_json::from_str(t).map_err(std::io::Error::other))
                .transpose()
        }
        fn list(&self) -> std::io::Result<Vec<String>> {
            let map = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            Ok(map.keys().cloned().collect())
        }
    }

    fn handle() -> BatchJob {
        let items: Vec<Item> = (0..5).map(|i| Item::new(format!("id-{i}"), "q")).collect();
        let opts = BatchOptions::new("m").limits(crate::job::ShardLimits::new(2, 1 << 20));
        BatchJob::from_items(&items, &SystemPrompt::Text("s".into()), &opts, 9).expect("handle")
    }

    #[test]
    fn a_handle_round_trips_through_a_store() {
        let store = MemStore::default();
        let h = handle();
        h.save(&store, "job-a").expect("save");
        let back = BatchJob::load(&store, "job-a").expect("load");
        assert_eq!(back.plan().digest(), h.plan().digest());
        assert_eq!(back.shard_bytes(), h.shard_bytes());
        assert_eq!(back.options(), h.options());
        assert_eq!(store.list().expect("list"), ["job-a"]);
        assert!(matches!(
            BatchJob::load(&store, "nope"),
            Err(StoreError::NotFound(_))
        ));
        let by_id = BatchJob::for_batch("batch_1", &BatchOptions::new(""), 3);
        by_id.save(&store, "by-id").expect("save");
        let back = BatchJob::load(&store, "by-id").expect("load");
        assert_eq!(back.plan().batch_id(), Some("batch_1"));
    }

    #[test]
    fn edited_shards_or_versions_are_refused() {
        let mut h = handle();
        let api = crate::api::ApiBase::new(&crate::api::ApiConfig::new("sk-x")).expect("api");
        let job = h
            .job(api, crate::job::StopAfter::Submitted, crate::UnixMillis(5))
            .expect("job");
        h.restore_checkpoint(job.checkpoint());
        let stored = StoredJob::from_handle(&h);
        assert!(stored.clone().into_handle().is_ok());

        // An edited id rebuilds another plan than the checkpoint's.
        let mut edited = stored.clone();
        if let StoredSource::Shards { shards } = &mut edited.source {
            shards[0] = shards[0].replace("id-0", "id-x");
        }
        assert!(matches!(
            edited.into_handle(),
            Err(StoreError::Mismatch { .. })
        ));
        // Shards merged by hand are split again by the options' limits.
        let mut moved = stored.clone();
        if let StoredSource::Shards { shards } = &mut moved.source {
            let first = shards.remove(0);
            shards[0] = format!("{first}{}", shards[0]);
        }
        assert!(matches!(
            moved.into_handle(),
            Err(StoreError::Mismatch { .. })
        ));
        let mut other = stored;
        other.version = 99;
        assert!(matches!(
            other.into_handle(),
            Err(StoreError::Version { found: 99, .. })
        ));
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("job-1.a_b"));
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(129)] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
