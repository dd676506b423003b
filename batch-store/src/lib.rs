//! # batch-store
//!
//! [`FileStore`]: the file-backed [`JobStore`] for `batch-core` job handles.
//! One directory, one `NAME.job.json` file per job. Both transports use it
//! the same way (its writes are small, so plain blocking file IO serves
//! async callers too, as a `JobIo` does):
//!
//! ```no_run
//! use batch_core::job::{BatchJob, StoreError};
//! use batch_store::FileStore;
//!
//! // Process A, after `submit_batch` returned `handle`:
//! fn keep(handle: &BatchJob) -> Result<(), StoreError> {
//!     let store = FileStore::open("jobs")?;
//!     handle.save(&store, "nightly")
//! }
//! // Process B, any time later (then `client.get_results(&mut handle)`):
//! fn reopen() -> Result<BatchJob, StoreError> {
//!     let store = FileStore::open("jobs")?;
//!     BatchJob::load(&store, "nightly")
//! }
//! ```
//!
//! Each save writes a temporary file in the same directory, syncs it, and
//! renames it over the old one (then syncs the directory on Unix), so a
//! crash leaves the old job or the new one, never a torn file. Files are
//! created `0600` on Unix: they hold the requests' content.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use batch_core::job::is_plain_name;
pub use batch_core::job::{JobStore, StoredJob};

/// The suffix of a stored job's file.
const SUFFIX: &str = ".job.json";

/// A [`JobStore`] in a directory: one `NAME.job.json` per job.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir`, created (with its parents) if missing.
    ///
    /// # Errors
    /// Fails if the directory cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(FileStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of job `name`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if `name` is not a plain name
    /// (see [`is_plain_name`]).
    pub fn path_of(&self, name: &str) -> io::Result<PathBuf> {
        if !is_plain_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain job name (letters, digits, '-', '_', '.')"),
            ));
        }
        Ok(self.dir.join(format!("{name}{SUFFIX}")))
    }
}

impl JobStore for FileStore {
    fn save(&self, name: &str, job: &StoredJob) -> io::Result<()> {
        let path = self.path_of(name)?;
        let bytes = serde_json::to_vec_pretty(job).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(".{name}{SUFFIX}.tmp"));
        let result = write_new(&tmp, &bytes).and_then(|()| fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_dir(&self.dir)
    }

    fn load(&self, name: &str) -> io::Result<Option<StoredJob>> {
        let path = self.path_of(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let file_name = entry?.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if let Some(name) = file_name.strip_suffix(SUFFIX) {
                if is_plain_name(name) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Writes `bytes` to a fresh file at `path` (mode `0600` on Unix) and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f: File = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a rename in `dir` durable (Unix); a no-op elsewhere.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use batch_core::input::{Item, SystemPrompt};
    use batch_core::job::{BatchJob, BatchOptions, ShardLimits};

    fn handle() -> BatchJob {
        let items: Vec<Item> = (0..5).map(|i| Item::new(format!("id-{i}"), "q")).collect();
        let opts = BatchOptions::new("m").limits(ShardLimits::new(2, 1 << 20));
        BatchJob::from_items(&items, &SystemPrompt::Text("s".into()), &opts, 9).expect("handle")
    }

    #[test]
    fn saves_load_and_list_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("jobs")).unwrap();
        assert!(store.load("a").unwrap().is_none());
        let h = handle();
        h.save(&store, "b").unwrap();
        h.save(&store, "a").unwrap();
        // A second save replaces the first.
        h.save(&store, "a").unwrap();
        assert_eq!(store.list().unwrap(), ["a", "b"]);
        let back = BatchJob::load(&store, "a").unwrap();
        assert_eq!(back.plan().digest(), h.plan().digest());
        assert_eq!(back.shard_bytes(), h.shard_bytes());
        // No temporary file is left behind.
        let files: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
    }

    #[test]
    fn names_are_plain() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let err = handle().save(&store, "../escape").expect_err("not plain");
        assert!(err.to_string().contains("not a plain job name"), "{err}");
        assert!(store.load("a/b").is_err());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_missing_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        fs::write(store.path_of("x").unwrap(), b"{not json").unwrap();
        let err = store.load("x").expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        handle().save(&store, "p").unwrap();
        let mode = fs::metadata(store.path_of("p").unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
