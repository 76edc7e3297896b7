//! The pool of threads that writes restored files' content: the restore's walk creates each
//! file (in archive order, so directories and names are handled in one place) and hands its
//! content over in pieces; the pool writes the pieces at their offsets, several at once, and
//! whoever is last with a file sets its length and applies its metadata.
//!
//! Memory: at most `2 × threads` pieces queued, plus one being filled and one being written per
//! thread, each at most [`PIECE`] bytes.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::apply::ApplyCtx;
use crate::error::RestoreError;
use crate::writer::Target;

/// Largest piece of content handed to the pool at once.
pub(crate) const PIECE: usize = 1 << 20;

/// Content of `target` from `offset` on.
pub(crate) struct Piece {
    pub target: Arc<Target>,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// The first error a pool thread met; the restore stops at its next step.
type Failure = Arc<Mutex<Option<RestoreError>>>;

#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Option<Sender<Piece>>,
    /// Piece buffers that went through the pool, to be filled again.
    spare: Receiver<Vec<u8>>,
    failure: Failure,
    workers: Vec<JoinHandle<ApplyCtx>>,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes at {}", self.data.len(), self.offset)
    }
}

impl Pool {
    pub fn new(threads: usize, is_root: bool) -> Pool {
        let threads = threads.max(1);
        let (jobs, queue) = bounded::<Piece>(2 * threads);
        let (recycle, spare) = bounded::<Vec<u8>>(3 * threads + 2);
        let failure = Failure::default();
        let workers = (0..threads)
            .map(|_| {
                let (queue, recycle, failure) = (queue.clone(), recycle.clone(), failure.clone());
                std::thread::Builder::new()
                    .name("restore-writer".into())
                    .spawn(move || work(&queue, &recycle, &failure, is_root))
                    .expect("a thread can be started")
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            spare,
            failure,
            workers,
        }
    }

    /// An empty buffer for the next piece.
    pub fn buffer(&self) -> Vec<u8> {
        match self.spare.try_recv() {
            Ok(mut buf) => {
                buf.clear();
                buf
            }
            Err(_) => Vec::with_capacity(PIECE),
        }
    }

    /// Queues a piece, or reports what went wrong in the pool so far.
    pub fn send(&self, piece: Piece) -> Result<(), RestoreError> {
        self.check()?;
        let jobs = self.jobs.as_ref().expect("the pool is open until joined");
        if jobs.send(piece).is_err() {
            self.check()?;
        }
        Ok(())
    }

    /// The first error of a pool thread, if there was one.
    pub fn check(&self) -> Result<(), RestoreError> {
        match self.failure.lock().ok().and_then(|mut f| f.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until every queued piece is written and every file finished; adds what the
    /// threads had to skip and left for the end to `ctx`, or returns the first error.
    pub fn join(mut self, ctx: &mut ApplyCtx) -> Result<(), RestoreError> {
        self.jobs = None;
        for worker in std::mem::take(&mut self.workers) {
            let done = worker.join().map_err(|_| RestoreError::Unbalanced {
                path: ".".into(),
                detail: "a restore writer thread panicked",
            })?;
            ctx.stats.add(&done.stats);
            ctx.deferred_flags.extend(done.deferred_flags);
        }
        self.check()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(
    queue: &Receiver<Piece>,
    recycle: &Sender<Vec<u8>>,
    failure: &Failure,
    is_root: bool,
) -> ApplyCtx {
    let mut ctx = ApplyCtx::new(is_root);
    for Piece {
        target,
        offset,
        data,
    } in queue
    {
        let written = target.write_piece(offset, &data);
        let _ = recycle.try_send(data);
        let result = written.and_then(|()| match Arc::into_inner(target) {
            Some(t) => t.finish(&mut ctx),
            None => Ok(()),
        });
        if let Err(e) = result {
            if let Ok(mut first) = failure.lock() {
                first.get_or_insert(e);
            }
        }
    }
    ctx
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::fs::MetadataExt;

    use stowage_archive::{Metadata, Mtime, Stat};

    use super::PIECE;
    use crate::restore::{RestoreOptions, Restorer};

    fn metadata(mode: u64, mtime_secs: i128) -> Metadata {
        Metadata {
            stat: Stat {
                mode: 0o100000 | mode,
                flags: 0,
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                mtime: Mtime::from_nanos(mtime_secs * 1_000_000_000 + 123),
            },
            ..Metadata::default()
        }
    }

    /// Contents that cover every piece case: empty, smaller than a block, exactly a piece,
    /// a byte more, several pieces ending in a hole, all zeros, and data after a hole.
    fn contents() -> Vec<Vec<u8>> {
        let pattern = |len: usize| (0..len).map(|i| (i % 251) as u8 + 1).collect::<Vec<u8>>();
        let mut ends_in_zeros = pattern(3 * PIECE + 5);
        ends_in_zeros[2 * PIECE..].fill(0);
        let mut hole_inside = pattern(2 * PIECE + 100);
        hole_inside[4096..PIECE + 8192].fill(0);
        vec![
            Vec::new(),
            pattern(10),
            pattern(PIECE),
            pattern(PIECE + 1),
            ends_in_zeros,
            vec![0; 5 * PIECE / 2],
            hole_inside,
        ]
    }

    #[test]
    fn pooled_files_get_their_content_then_their_metadata() {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let files = contents();
        let mut restorer = Restorer::open(dir.path(), RestoreOptions::default())
            .unwrap()
            .with_writers(2);
        for (i, content) in files.iter().enumerate() {
            let name = format!("f{i}");
            let meta = metadata(0o640, 1_000_000 + i as i128);
            let mut w = restorer
                .create_file(OsStr::new(&name), &meta, content.len() as u64)
                .unwrap();
            // Uneven writes, so pieces are cut from several calls.
            for part in content.chunks(300_001) {
                w.put(part).unwrap();
            }
            w.finish().unwrap();
        }
        restorer.finish(None).unwrap();
        for (i, content) in files.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            assert!(std::fs::read(&path).unwrap() == *content, "content of f{i}");
            let m = std::fs::metadata(&path).unwrap();
            assert_eq!(m.len(), content.len() as u64, "length of f{i}");
            assert_eq!(m.mode() & 0o7777, 0o640, "mode of f{i}");
            assert_eq!(
                (m.mtime(), m.mtime_nsec()),
                (1_000_000 + i as i64, 123),
                "mtime of f{i}"
            );
        }
        // The all-zero file stays a hole.
        assert_eq!(
            std::fs::metadata(dir.path().join("f5")).unwrap().blocks(),
            0
        );
    }

    #[test]
    fn owner_and_mode_are_right_whether_or_not_set_at_creation() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let is_root = uid == 0;
        // A setgid target whose group differs from ours passes that group on to new files:
        // a file that is to have our group must get it set.
        let sgid = dir.path().join("sgid");
        std::fs::create_dir(&sgid).unwrap();
        if is_root {
            nix::unistd::chown(&sgid, None, Some(nix::unistd::Gid::from_raw(4242))).unwrap();
        }
        std::fs::set_permissions(&sgid, PermissionsExt::from_mode(0o2777)).unwrap();
        let modes = [
            0o644, 0o600, 0o664, 0o777, 0o4755, 0o2750, 0o1777, 0o444, 0o000,
        ];
        for target in [dir.path(), sgid.as_path()] {
            let mut restorer = Restorer::open(target, RestoreOptions::default())
                .unwrap()
                .with_writers(2);
            for (i, mode) in modes.iter().enumerate() {
                let mut meta = metadata(*mode, 7);
                meta.stat.gid = gid;
                if is_root && i % 2 == 1 {
                    (meta.stat.uid, meta.stat.gid) = (1000 + i as u32, 2000 + i as u32);
                }
                let mut w = restorer
                    .create_file(OsStr::new(&format!("m{i}")), &meta, 3)
                    .unwrap();
                w.put(b"abc").unwrap();
                w.finish().unwrap();
            }
            restorer.finish(None).unwrap();
            for (i, mode) in modes.iter().enumerate() {
                let m = std::fs::metadata(target.join(format!("m{i}"))).unwrap();
                assert_eq!(
                    m.mode() & 0o7777,
                    *mode as u32,
                    "mode of m{i} in {target:?}"
                );
                if is_root {
                    let want = match i % 2 {
                        1 => (1000 + i as u32, 2000 + i as u32),
                        _ => (uid, gid),
                    };
                    assert_eq!((m.uid(), m.gid()), want, "owner of m{i} in {target:?}");
                }
            }
        }
    }

    #[test]
    fn a_default_acl_on_the_target_does_not_change_the_restored_mode() {
        use stowage_archive::{Acl, AclDefault};
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        // Default ACL u::rwx,g::---,o::---: new files get mode & 0700 whatever the umask.
        let acl = Acl {
            default: Some(AclDefault {
                user_obj_perms: 7,
                group_obj_perms: 0,
                other_perms: 0,
                mask_perms: stowage_archive::metadata::perms::NO_MASK,
            }),
            ..Acl::default()
        };
        let value = crate::posix_acl::default_xattr(&acl).unwrap();
        let target = std::fs::File::open(dir.path()).unwrap();
        let handle = crate::xattr::Handle::Fd(std::os::fd::AsFd::as_fd(&target));
        if crate::xattr::set(handle, b"system.posix_acl_default", &value).is_err() {
            return eprintln!("skipped: no ACLs on this file system");
        }
        let mut restorer = Restorer::open(dir.path(), RestoreOptions::default())
            .unwrap()
            .with_writers(2);
        let mut w = restorer
            .create_file(OsStr::new("f"), &metadata(0o644, 9), 1)
            .unwrap();
        w.put(b"x").unwrap();
        w.finish().unwrap();
        restorer.finish(None).unwrap();
        let m = std::fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o644);
    }

    #[test]
    fn a_short_pooled_file_is_refused_removed_and_the_pool_still_finishes() {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let mut restorer = Restorer::open(dir.path(), RestoreOptions::default())
            .unwrap()
            .with_writers(2);
        let mut w = restorer
            .create_file(OsStr::new("short"), &metadata(0o600, 5), 3 * PIECE as u64)
            .unwrap();
        w.put(&vec![7u8; 2 * PIECE]).unwrap();
        let e = w.finish().unwrap_err();
        assert!(e.to_string().contains("short"), "{e}");
        let mut w = restorer
            .create_file(OsStr::new("long"), &metadata(0o600, 5), 10)
            .unwrap();
        assert!(w.put(&[1u8; 11]).is_err(), "more than announced");
        drop(w);
        restorer.finish(None).unwrap();
        // Neither is left: a file whose content did not all arrive is removed.
        for name in ["short", "long"] {
            assert!(!dir.path().join(name).exists(), "{name}");
        }
    }
}
