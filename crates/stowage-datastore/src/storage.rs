//! The storage seam under the datastore: named objects (`.chunks/bb9f/bb9f8df6…`,
//! `vm/100/2026-…/index.json.blob`) in a local directory today, in an object store later, as
//! another implementation of [`Storage`] rather than a backend matched inside every method.
//!
//! Keys are relative paths with `/` between their parts; a prefix for [`Storage::list`] ends at
//! such a boundary (as an object store's delimiter listing does).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

/// Where a datastore's objects live. Each call names one object by its key.
pub trait Storage: Send + Sync {
    /// Where `key` is, for messages: a path, or an object store's URL.
    fn locate(&self, key: &str) -> PathBuf;

    /// Whether the object exists.
    fn exists(&self, key: &str) -> io::Result<bool>;

    /// Marks the object as in use now (garbage collection keeps what was marked after its
    /// start); `false` if it does not exist.
    fn mark(&self, key: &str) -> io::Result<bool>;

    /// The whole object into `out` (cleared first); an error of kind `NotFound` if it does not
    /// exist.
    fn get(&self, key: &str, out: &mut Vec<u8>) -> io::Result<()>;

    /// Stores an object that must not change once written (a chunk, named by its content):
    /// readers see all of it or nothing. An existing object of the key is left as it is, or
    /// replaced by the same bytes.
    fn put_if_absent(&self, key: &str, data: &[u8]) -> io::Result<()>;

    /// The keys of the objects directly below `prefix` (`.chunks/bb9f/`), in no order.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;

    /// Moves an object to a new key, replacing what is there.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;

    /// Removes an object; `false` if there was none.
    fn delete(&self, key: &str) -> io::Result<bool>;
}

/// A directory of the local file system: keys are paths below it.
pub struct LocalStorage {
    base: PathBuf,
    tmp_counter: AtomicU64,
}

impl LocalStorage {
    pub fn new(base: &Path) -> Self {
        LocalStorage {
            base: base.to_path_buf(),
            tmp_counter: AtomicU64::new(0),
        }
    }
}

fn not_found_is_false(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Storage for LocalStorage {
    fn locate(&self, key: &str) -> PathBuf {
        self.base.join(key)
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        not_found_is_false(fs::symlink_metadata(self.locate(key)).map(|_| ()))
    }

    fn mark(&self, key: &str) -> io::Result<bool> {
        let (now, omit) = (TimeSpec::UTIME_NOW, TimeSpec::UTIME_OMIT);
        let flags = UtimensatFlags::NoFollowSymlink;
        let path = self.locate(key);
        let result = utimensat(nix::fcntl::AT_FDCWD, &path, &now, &omit, flags);
        not_found_is_false(result.map_err(io::Error::from))
    }

    fn get(&self, key: &str, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        fs::File::open(self.locate(key))?.read_to_end(out)?;
        Ok(())
    }

    /// A temporary file beside the object, renamed into place. Not synced: a backup makes all of
    /// its chunks durable at once before its manifest is written (see `SnapshotWriter::finish`).
    fn put_if_absent(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let path = self.locate(key);
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = path.with_file_name(format!("{name}.tmp_{}_{n}", std::process::id()));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data))
            .and_then(|_| fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let dir = self.locate(prefix);
        let mut keys = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str() {
                let sep = if prefix.is_empty() || prefix.ends_with('/') {
                    ""
                } else {
                    "/"
                };
                keys.push(format!("{prefix}{sep}{name}"));
            }
        }
        Ok(keys)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.locate(from), self.locate(to))
    }

    fn delete(&self, key: &str) -> io::Result<bool> {
        not_found_is_false(fs::remove_file(self.locate(key)))
    }
}

/// Checks every [`Storage`] must pass, for the local one here and any other.
#[cfg(test)]
pub(crate) fn check_storage(storage: &dyn Storage, prefix: &str) {
    let key = |name: &str| format!("{prefix}{name}");
    let (a, b) = (key("a"), key("b"));
    assert!(!storage.exists(&a).unwrap());
    assert!(!storage.mark(&a).unwrap(), "marking a missing object");
    let mut out = vec![1, 2, 3];
    let err = storage.get(&a, &mut out).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    storage.put_if_absent(&a, b"first").unwrap();
    storage.put_if_absent(&a, b"first").unwrap();
    assert!(storage.exists(&a).unwrap());
    assert!(storage.mark(&a).unwrap());
    storage.get(&a, &mut out).unwrap();
    assert_eq!(out, b"first");
    storage.put_if_absent(&b, b"second").unwrap();
    let mut listed = storage.list(prefix).unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [a.clone(), b.clone()],
        "only the objects, no temporary files"
    );
    let c = key("c");
    storage.rename(&b, &c).unwrap();
    assert!(!storage.exists(&b).unwrap());
    storage.get(&c, &mut out).unwrap();
    assert_eq!(out, b"second");
    assert!(storage.delete(&c).unwrap());
    assert!(!storage.delete(&c).unwrap(), "deleting a missing object");
    assert_eq!(storage.list(prefix).unwrap(), [a]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_storage_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(".chunks/abcd")).unwrap();
        let storage = LocalStorage::new(dir.path());
        check_storage(&storage, ".chunks/abcd/");
        assert_eq!(
            storage.locate(".chunks/abcd/a"),
            dir.path().join(".chunks/abcd/a")
        );
    }
}
