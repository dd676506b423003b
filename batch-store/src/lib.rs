//! # batch-store
//!
//! [`FileStore`]: the file-backed [`JobStore`] for `batch-core` job handles.
//! One directory, one `NAME.job.json` document per job, and beside it the
//! job's shard files in `NAME.shards/` (a big job's requests are never
//! copied into the document: it names each file with its length and hash,
//! [`StoredSource::ShardFiles`]). Both transports use it
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
//! crash leaves the old job or the new one, never a torn file. Shard files
//! are written (the same way) before the document that names them, and
//! only when missing or different, so saving a job again after each call
//! rewrites only its small document. Files are created `0600` and folders
//! `0700` on Unix: they hold the requests' content.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use batch_core::job::{JobStore, StoredJob};
use batch_core::job::{StoredShardFile, StoredSource, is_plain_name};

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
        create_private_dir_all(&dir)?;
        Ok(FileStore { dir })
    }

    /// The path of a shard file recorded in a stored job.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if its path is not made of plain
    /// names (see [`StoredShardFile::has_plain_path`]).
    pub fn shard_path(&self, shard: &StoredShardFile) -> io::Result<PathBuf> {
        if !shard.has_plain_path() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not a plain relative path", shard.file),
            ));
        }
        Ok(shard
            .file
            .split('/')
            .fold(self.dir.clone(), |p, c| p.join(c)))
    }

    /// Writes the shards of [`StoredSource::Shards`] as files in
    /// `NAME.shards/` (each only if missing or different) and returns the
    /// job naming them instead.
    fn externalize(&self, name: &str, job: &StoredJob) -> io::Result<Option<StoredJob>> {
        let StoredSource::Shards { shards } = &job.source else {
            return Ok(None);
        };
        let folder = format!("{name}.shards");
        create_private_dir_all(&self.dir.join(&folder))?;
        let mut files = Vec::with_capacity(shards.len());
        let mut wrote = false;
        for (i, shard) in shards.iter().enumerate() {
            let record =
                StoredShardFile::new(format!("{folder}/shard-{i:05}.jsonl"), shard.as_bytes());
            let path = self.shard_path(&record)?;
            let same = fs::read(&path).is_ok_and(|old| record.check(&old).is_ok());
            if !same {
                write_atomic(&path, shard.as_bytes())?;
                wrote = true;
            }
            files.push(record);
        }
        if wrote {
            sync_dir(&self.dir.join(&folder))?;
        }
        let mut job = job.clone();
        job.source = StoredSource::ShardFiles { shards: files };
        Ok(Some(job))
    }

    /// A store in `dir` without creating it (a reader that must not leave
    /// a folder behind): [`load`](JobStore::load) finds no job there if it
    /// is missing.
    pub fn at(dir: impl AsRef<Path>) -> FileStore {
        FileStore {
            dir: dir.as_ref().to_path_buf(),
        }
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
        let external = self.externalize(name, job)?;
        let bytes =
            serde_json::to_vec(external.as_ref().unwrap_or(job)).map_err(io::Error::other)?;
        write_atomic(&path, &bytes)
    }

    fn read_shard(&self, _name: &str, shard: &StoredShardFile) -> io::Result<Vec<u8>> {
        let path = self.shard_path(shard)?;
        let bytes = fs::read(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
        })?;
        shard
            .check(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(bytes)
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

/// Writes `bytes` to `path` atomically: a temporary file beside it
/// (`.NAME.tmp`), synced, renamed over `path`, and the folder synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Creates `dir` and its missing parents, mode `0700` on Unix.
fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
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
        // No temporary file is left behind: two documents, two shard folders.
        let mut files: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["a.job.json", "a.shards", "b.job.json", "b.shards"]);
    }

    #[test]
    fn shards_are_files_beside_a_small_document() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let big = "x".repeat(10_000);
        let items: Vec<Item> = (0..40)
            .map(|i| Item::new(format!("id-{i}"), &big))
            .collect();
        let opts = BatchOptions::new("m").limits(ShardLimits::new(10, 1 << 20));
        let h = BatchJob::from_items(&items, &SystemPrompt::Text("s".into()), &opts, 9).unwrap();
        h.save(&store, "big").unwrap();
        let doc = fs::read_to_string(store.path_of("big").unwrap()).unwrap();
        assert!(doc.len() < 4_000, "the document holds {} bytes", doc.len());
        assert!(!doc.contains(&big));
        let stored = store.load("big").unwrap().unwrap();
        let StoredSource::ShardFiles { shards } = &stored.source else {
            panic!("{:?}", stored.source);
        };
        assert_eq!(shards.len(), 4);
        assert_eq!(shards[1].file, "big.shards/shard-00001.jsonl");
        assert_eq!(shards[1].requests, 10);
        let shard_file = store.shard_path(&shards[1]).unwrap();
        assert_eq!(fs::read(&shard_file).unwrap(), h.shard_bytes()[1]);
        // Saving again leaves the shard files alone.
        let written = fs::metadata(&shard_file).unwrap().modified().unwrap();
        h.save(&store, "big").unwrap();
        assert_eq!(
            fs::metadata(&shard_file).unwrap().modified().unwrap(),
            written
        );
        let back = BatchJob::load(&store, "big").unwrap();
        assert_eq!(back.shard_bytes(), h.shard_bytes());
        // An edited shard file is refused, naming the file.
        let edited = String::from_utf8(h.shard_bytes()[1].clone())
            .unwrap()
            .replace("id-12", "id-x2");
        fs::write(&shard_file, edited).unwrap();
        let err = BatchJob::load(&store, "big").expect_err("edited");
        assert!(
            err.to_string().contains("big.shards/shard-00001.jsonl")
                && err.to_string().contains("hash"),
            "{err}"
        );
        fs::remove_file(&shard_file).unwrap();
        let err = BatchJob::load(&store, "big").expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn shard_paths_stay_inside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        for bad in ["../x.jsonl", "/etc/passwd", "a//b", "a/../b", ""] {
            let rec = StoredShardFile::new(bad, b"");
            assert!(store.shard_path(&rec).is_err(), "{bad:?}");
        }
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
