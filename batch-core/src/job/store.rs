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
//!
//! A store may keep a big job's shards as files beside its document
//! ([`StoredSource::ShardFiles`], each named with its length and hash; what
//! `batch-store`'s `FileStore` does), so the document stays small. A program
//! that plans and drives jobs itself stores them the same way
//! ([`StoredJob::new`], with the service in [`StoredProvider`] and its own
//! data in [`StoredJob::app`]): the `openai-batch` CLI's journal does.

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
    /// The service the job's batches live on, without credentials (see
    /// [`StoredProvider`]); `None` when the storing program did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<StoredProvider>,
    /// The storing program's own data about the job, kept as is (the
    /// `openai-batch` CLI keeps its flags and input file's digest here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<serde_json::Value>,
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
    /// The shard files kept by the store beside the job document, named
    /// with their length and hash, so that a big job's document stays
    /// small and its requests are never copied into it. Read them back
    /// with [`StoredJob::inline_shards`] (what [`BatchJob::load`] does
    /// through [`JobStore::read_shard`]).
    ShardFiles {
        /// Each shard's file, in order.
        shards: Vec<StoredShardFile>,
    },
}

/// One shard file of [`StoredSource::ShardFiles`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredShardFile {
    /// Its path inside the store, `/`-separated plain names (no `..`, not
    /// absolute), e.g. `nightly.shards/shard-00000.jsonl`.
    pub file: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// How many request lines it holds.
    pub requests: u64,
    /// FNV-1a 64 of its bytes, 16 lower-case hex digits (see [`ShardHash`]).
    pub fnv64: String,
}

impl StoredShardFile {
    /// The record of `bytes` stored as `file`.
    pub fn new(file: impl Into<String>, bytes: &[u8]) -> StoredShardFile {
        let mut h = ShardHash::new();
        h.update(bytes);
        StoredShardFile {
            file: file.into(),
            bytes: bytes.len() as u64,
            requests: bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64,
            fnv64: h.hex(),
        }
    }

    /// The record of a file already written, from its length, line count
    /// and hash.
    pub fn from_parts(
        file: impl Into<String>,
        bytes: u64,
        requests: u64,
        hash: &ShardHash,
    ) -> Self {
        StoredShardFile {
            file: file.into(),
            bytes,
            requests,
            fnv64: hash.hex(),
        }
    }

    /// Whether [`file`](Self::file) is a relative path of plain names
    /// (each one [`is_plain_name`]), so a store never reads outside itself.
    pub fn has_plain_path(&self) -> bool {
        !self.file.is_empty() && self.file.split('/').all(is_plain_name)
    }

    /// Checks `bytes` against the recorded length and hash.
    ///
    /// # Errors
    /// [`StoreError::ShardFile`] naming the file and what differs.
    pub fn check(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let differs = |detail: String| StoreError::ShardFile {
            file: self.file.clone(),
            detail,
        };
        if bytes.len() as u64 != self.bytes {
            return Err(differs(format!(
                "it has {} bytes, the job says {}",
                bytes.len(),
                self.bytes
            )));
        }
        let mut h = ShardHash::new();
        h.update(bytes);
        if h.hex() != self.fnv64 {
            return Err(differs("its content changed (the hash differs)".into()));
        }
        Ok(())
    }
}

/// FNV-1a 64, the hash of [`StoredShardFile::fnv64`], fed in pieces.
#[derive(Clone, Copy, Debug)]
pub struct ShardHash(u64);

impl Default for ShardHash {
    fn default() -> Self {
        ShardHash::new()
    }
}

impl ShardHash {
    /// The hash of nothing.
    pub fn new() -> ShardHash {
        ShardHash(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far, 16 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The service a stored job's batches live on, as plain data without
/// credentials: the key is never stored, and neither is the value of an
/// extra header whose name suggests a credential (`authorization`,
/// `*key*`, `*token*`, `*secret*`): only its name, so the program that
/// loads the job can ask for it again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredProvider {
    /// The preset's name: `openai`, `azure`, `groq` or `custom`
    /// ([`ProviderKind::as_str`](crate::api::ProviderKind::as_str)).
    pub preset: String,
    /// The base URL the batches were created on (empty when not recorded,
    /// e.g. a local emulator on a port that changes).
    #[serde(default)]
    pub base_url: String,
    /// The header the key travels in: `None` for `Authorization: Bearer`.
    #[serde(default)]
    pub auth_header: Option<String>,
    /// Azure OpenAI's dated `api-version`, if any.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Extra headers, in order: `(name, value)`, the value `None` for a
    /// credential header.
    #[serde(default)]
    pub headers: Vec<(String, Option<String>)>,
    /// Query parameters added to every request other than `api-version`.
    #[serde(default)]
    pub query: Vec<(String, String)>,
}

impl StoredProvider {
    /// The stored form of `config`'s provider and base URL (the key and
    /// credential header values are left out).
    pub fn from_config(config: &crate::api::ApiConfig) -> StoredProvider {
        let p = &config.provider;
        StoredProvider {
            preset: p.kind.as_str().to_owned(),
            base_url: config.base_url.clone(),
            auth_header: match &p.auth {
                crate::api::AuthScheme::Header(name) => Some(name.clone()),
                _ => None,
            },
            api_version: p.api_version().map(str::to_owned),
            headers: p
                .headers
                .iter()
                .map(|(n, v)| {
                    let value = (!crate::api::Provider::is_secret_header(n)).then(|| v.clone());
                    (n.clone(), value)
                })
                .collect(),
            query: p
                .query
                .iter()
                .filter(|(n, _)| n != crate::api::Provider::API_VERSION)
                .cloned()
                .collect(),
        }
    }
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
    /// A shard file of [`StoredSource::ShardFiles`] is missing, unreadable
    /// or not what the job recorded.
    #[error("stored shard file {file}: {detail}")]
    ShardFile {
        /// The file, as recorded.
        file: String,
        /// What is wrong.
        detail: String,
    },
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
    /// The bytes of a shard file of job `name` ([`StoredSource::ShardFiles`]),
    /// checked against its recorded length and hash. A store that keeps
    /// shards inline in the document (the default) has none.
    ///
    /// # Errors
    /// Fails if the file cannot be read or differs from its record
    /// ([`std::io::ErrorKind::InvalidData`]); the default fails with
    /// [`std::io::ErrorKind::Unsupported`].
    fn read_shard(&self, name: &str, shard: &StoredShardFile) -> std::io::Result<Vec<u8>> {
        let _ = name;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("this store keeps no shard files ({})", shard.file),
        ))
    }
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
            checkpoint: handle.checkpoint().cloned(),
            ..StoredJob::new(
                handle.plan().job_id(),
                source,
                handle.options().clone(),
                handle.seed(),
            )
        }
    }

    /// A job to store, with no checkpoint, provider or app data yet (set
    /// the public fields), for a program that plans and drives jobs
    /// itself (the CLI's journal) rather than through a [`BatchJob`].
    pub fn new(
        job_id: impl Into<String>,
        source: StoredSource,
        options: BatchOptions,
        seed: u64,
    ) -> StoredJob {
        StoredJob {
            version: STORED_JOB_VERSION,
            job_id: job_id.into(),
            source,
            options,
            seed,
            checkpoint: None,
            provider: None,
            app: None,
        }
    }

    /// The same job with [`StoredSource::ShardFiles`] read back into
    /// [`StoredSource::Shards`] by `read` (each file checked against its
    /// length and hash); any other source is returned as is.
    ///
    /// # Errors
    /// [`StoreError::ShardFile`] for a file `read` cannot give, that is
    /// not its recorded length or hash, or is not UTF-8 text.
    pub fn inline_shards(
        mut self,
        mut read: impl FnMut(&StoredShardFile) -> std::io::Result<Vec<u8>>,
    ) -> Result<StoredJob, StoreError> {
        if let StoredSource::ShardFiles { shards: files } = &self.source {
            let mut shards = Vec::with_capacity(files.len());
            for f in files {
                let fail = |detail: String| StoreError::ShardFile {
                    file: f.file.clone(),
                    detail,
                };
                let bytes = read(f).map_err(|e| fail(e.to_string()))?;
                f.check(&bytes)?;
                shards.push(String::from_utf8(bytes).map_err(|_| fail("it is not UTF-8".into()))?);
            }
            self.source = StoredSource::Shards { shards };
        }
        Ok(self)
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
            StoredSource::ShardFiles { .. } => {
                return Err(StoreError::ShardFile {
                    file: String::new(),
                    detail: "shard files are read through the store first \
                             (StoredJob::inline_shards)"
                        .into(),
                });
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
            .inline_shards(|f| store.read_shard(name, f))?
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
    fn the_provider_is_stored_without_credentials() {
        let mut cfg =
            crate::api::ApiConfig::azure_dated("https://r.example.com", "sk-secret", "2024-10-21");
        cfg.provider = cfg
            .provider
            .with_header("X-Gateway-Key", "hidden-value")
            .with_header("X-Team", "research")
            .with_query("tenant", "blue");
        let p = StoredProvider::from_config(&cfg);
        assert_eq!(p.preset, "azure");
        assert_eq!(p.base_url, "https://r.example.com/openai");
        assert_eq!(p.auth_header.as_deref(), Some("api-key"));
        assert_eq!(p.api_version.as_deref(), Some("2024-10-21"));
        assert_eq!(
            p.headers,
            [
                ("X-Gateway-Key".to_owned(), None),
                ("X-Team".to_owned(), Some("research".to_owned()))
            ]
        );
        assert_eq!(p.query, [("tenant".to_owned(), "blue".to_owned())]);
        let mut job = StoredJob::from_handle(&handle());
        job.provider = Some(p);
        let text = serde_json::to_string(&job).expect("json");
        assert!(!text.contains("sk-secret") && !text.contains("hidden-value"));
        let back: StoredJob = serde_json::from_str(&text).expect("back");
        assert_eq!(back, job);
    }

    #[test]
    fn shard_files_are_read_back_and_checked() {
        let h = handle();
        let files: Vec<StoredShardFile> = h
            .shard_bytes()
            .iter()
            .enumerate()
            .map(|(i, b)| StoredShardFile::new(format!("s/{i}.jsonl"), b))
            .collect();
        assert_eq!(files.iter().map(|f| f.requests).sum::<u64>(), 5);
        let job = StoredJob::new(
            h.plan().job_id(),
            StoredSource::ShardFiles {
                shards: files.clone(),
            },
            h.options().clone(),
            h.seed(),
        );
        // Without the files the handle cannot be built.
        assert!(matches!(
            job.clone().into_handle(),
            Err(StoreError::ShardFile { .. })
        ));
        let read = |f: &StoredShardFile| {
            let i: usize = f.file[2..3].parse().expect("index");
            Ok(h.shard_bytes()[i].clone())
        };
        let back = job.clone().inline_shards(read).expect("inline");
        assert_eq!(
            back.into_handle().expect("handle").shard_bytes(),
            h.shard_bytes()
        );
        let err = job
            .inline_shards(|_| Ok(b"{}\n".to_vec()))
            .expect_err("wrong bytes");
        assert!(err.to_string().contains("s/0.jsonl"), "{err}");
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("job-1.a_b"));
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(129)] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
