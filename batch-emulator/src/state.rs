//! Shared server state: the records, the clock, faults, counters, and the
//! data folder (file bytes plus `state.json`, replaced atomically).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::clock::VirtualClock;
use crate::config::EmulatorConfig;
use crate::counters::Counters;
use crate::faults::{FaultConfig, FaultState};
use crate::model::{BatchRecord, FileRecord};
use crate::util::{Rng, base62, hash_parts, hex};

const STATE_FILE: &str = "state.json";
const STATE_FORMAT: u32 = 1;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The persisted records.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Db {
    pub(crate) format: u32,
    pub(crate) next_seq: u64,
    pub(crate) last_now_ms: u64,
    pub(crate) files: BTreeMap<String, FileRecord>,
    pub(crate) batches: BTreeMap<String, BatchRecord>,
    /// Anthropic Message Batches (the Anthropic mode's records).
    #[serde(default)]
    pub(crate) message_batches: BTreeMap<String, crate::anthropic::MessageBatchRecord>,
}

impl Db {
    fn next_rng(&mut self, seed: u64, kind: &str) -> (Rng, u64) {
        self.next_seq += 1;
        let seq = self.next_seq;
        (
            Rng::new(hash_parts(&[kind, &seed.to_string(), &seq.to_string()])),
            seq,
        )
    }

    /// A fresh `file-…` id and its sequence number.
    pub(crate) fn alloc_file_id(&mut self, seed: u64) -> (String, u64) {
        loop {
            let (mut rng, seq) = self.next_rng(seed, "file");
            let id = format!("file-{}", base62(&mut rng, 22));
            if !self.files.contains_key(&id) {
                return (id, seq);
            }
        }
    }

    /// A fresh `msgbatch_…` id and its sequence number.
    pub(crate) fn alloc_message_batch_id(&mut self, seed: u64) -> (String, u64) {
        loop {
            let (mut rng, seq) = self.next_rng(seed, "msgbatch");
            let id = format!("msgbatch_01{}", base62(&mut rng, 22));
            if !self.message_batches.contains_key(&id) {
                return (id, seq);
            }
        }
    }

    /// A fresh `batch_…` id and its sequence number.
    pub(crate) fn alloc_batch_id(&mut self, seed: u64) -> (String, u64) {
        loop {
            let (mut rng, seq) = self.next_rng(seed, "batch");
            let id = format!("batch_{}", hex(&mut rng, 32));
            if !self.batches.contains_key(&id) {
                return (id, seq);
            }
        }
    }
}

/// Everything the handlers and the lifecycle driver share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: EmulatorConfig,
    pub(crate) dir: PathBuf,
    pub(crate) clock: VirtualClock,
    pub(crate) db: Mutex<Db>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) counters: Mutex<Counters>,
    persist_lock: tokio::sync::Mutex<()>,
    pub(crate) advance_lock: tokio::sync::Mutex<()>,
    tmp_seq: AtomicU64,
    /// `http://HOST:PORT`, set once the server is bound (absolute URLs in
    /// answers, such as Anthropic's `results_url`, start with it).
    pub(crate) origin: std::sync::OnceLock<String>,
}

impl Shared {
    /// Opens (or creates) the data folder and loads any previous state.
    pub(crate) fn open(cfg: EmulatorConfig, dir: PathBuf) -> io::Result<Shared> {
        std::fs::create_dir_all(dir.join("files"))?;
        std::fs::create_dir_all(dir.join("batches"))?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let db = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(bytes) => {
                let db: Db = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{STATE_FILE} is unreadable: {e}"),
                    )
                })?;
                if db.format != STATE_FORMAT {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{STATE_FILE} has format {}, expected {STATE_FORMAT}",
                            db.format
                        ),
                    ));
                }
                db
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Db {
                format: STATE_FORMAT,
                ..Db::default()
            },
            Err(e) => return Err(e),
        };
        let start_ms = cfg
            .start_time
            .map(|s| u64::try_from(s).unwrap_or(0).saturating_mul(1000));
        let clock = VirtualClock::new(
            cfg.speed,
            start_ms,
            cfg.step_per_request.is_some(),
            db.last_now_ms,
        );
        let faults = FaultState::new(cfg.faults.clone(), cfg.seed);
        Ok(Shared {
            cfg,
            dir,
            clock,
            db: Mutex::new(db),
            faults: Mutex::new(faults),
            counters: Mutex::new(Counters::default()),
            persist_lock: tokio::sync::Mutex::new(()),
            advance_lock: tokio::sync::Mutex::new(()),
            tmp_seq: AtomicU64::new(0),
            origin: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn seed(&self) -> u64 {
        self.cfg.seed
    }

    pub(crate) fn file_path(&self, id: &str) -> PathBuf {
        self.dir.join("files").join(id)
    }

    pub(crate) fn batch_input_path(&self, id: &str) -> PathBuf {
        self.dir.join("batches").join(format!("{id}.jsonl"))
    }

    /// A fresh path in the data folder's `tmp/`.
    pub(crate) fn tmp_path(&self, label: &str) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::SeqCst);
        self.dir.join("tmp").join(format!("{label}-{n}"))
    }

    pub(crate) fn set_faults(&self, config: FaultConfig) {
        *lock(&self.faults) = FaultState::new(config, self.cfg.seed);
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    /// Writes `state.json` atomically (temporary file, then rename). Later
    /// callers always write a snapshot at least as new as earlier ones.
    pub(crate) async fn persist(&self) -> io::Result<()> {
        let _guard = self.persist_lock.lock().await;
        let bytes = {
            let mut db = lock(&self.db);
            db.last_now_ms = db.last_now_ms.max(self.clock.now_ms());
            serde_json::to_vec(&*db).map_err(io::Error::other)?
        };
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomic(&dir, STATE_FILE, &bytes))
            .await
            .map_err(io::Error::other)?
    }
}

/// Writes `dir/name` through `dir/name.tmp` and a rename.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.flush()?;
    }
    std::fs::rename(&tmp, dir.join(name))
}
