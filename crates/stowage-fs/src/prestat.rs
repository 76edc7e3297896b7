//! Stats the regular files of the directories a change-detection walk is in, on a helper
//! thread, ahead of the walker.
//!
//! An unchanged re-backup costs one `statx` per file and little else, all of it on the walker's
//! thread while the other cores wait. Each directory the walker opens is handed over here (its
//! descriptor and its sorted names); the helper stats its regular files from the last one back
//! while the walker works forward from the first, comparing and encoding. Every name has a slot
//! that the first to come claims: the helper stats what it claims and fills the slot; the
//! walker takes a filled slot, or claims and stats it itself when the helper has not got there
//! (they meet about half way in a directory the walker goes through at once, and the helper
//! does all of one the walker leaves for a subdirectory first). The walker never waits for
//! the helper: only a name the helper is statting at that very moment is statted twice. The helper
//! works on the directory opened last (the one the walker is in), then goes back to earlier
//! ones that still have names left.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

use nix::sys::stat::FileStat;
use stowage_archive::FileType;

use crate::capture::statx_at;

/// What a stat found: the stat and the inode flags it shows, or `None` if it failed (the
/// walker then captures the entry the usual way, which reports the error).
pub(crate) type Stat = Option<(FileStat, u64)>;

const FREE: u8 = 0;
const BY_HELPER: u8 = 1;
const BY_WALKER: u8 = 2;

struct Slot {
    claim: AtomicU8,
    value: OnceLock<Stat>,
}

/// One directory's names and their stats.
pub(crate) struct DirStats {
    fd: Arc<OwnedFd>,
    /// Names to stat (regular files by the listing), with their place in the directory.
    names: Vec<(usize, CString)>,
    /// By place in the directory: the slot of each name in `names`.
    slots: Vec<Option<Slot>>,
    /// How many of `names` the helper has taken, from the last one back.
    taken: AtomicUsize,
    /// The walker has left the directory.
    done: AtomicBool,
}

impl DirStats {
    /// The stat of entry `i` of the directory, if the helper has done it; `None` tells the
    /// walker to stat it itself. The walker never waits: should the helper be in the middle of
    /// this very name (or have been preempted there), the walker stats it too.
    pub fn take(&self, i: usize) -> Option<Stat> {
        let slot = self.slots.get(i)?.as_ref()?;
        match slot
            .claim
            .compare_exchange(FREE, BY_WALKER, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(_) => slot.value.get().copied(),
        }
    }

    /// The walker has left the directory: the helper stops working on it.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Stats the next free name; false once there is none left.
    fn work_one(&self) -> bool {
        if self.done.load(Ordering::Relaxed) {
            return false;
        }
        loop {
            let taken = self.taken.fetch_add(1, Ordering::Relaxed);
            let Some((i, name)) = self
                .names
                .len()
                .checked_sub(taken + 1)
                .map(|k| &self.names[k])
            else {
                return false;
            };
            let Some(slot) = self.slots[*i].as_ref() else {
                continue;
            };
            if slot
                .claim
                .compare_exchange(FREE, BY_HELPER, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue; // the walker got there first
            }
            let _ = slot.value.set(statx_at(self.fd.as_fd(), name));
            return true;
        }
    }
}

struct Shared {
    /// Directories with names left, the one opened last on top.
    stack: Mutex<Vec<Arc<DirStats>>>,
    /// Directories handed over so far: the helper notices a new one without taking the lock.
    pushed: AtomicUsize,
    /// The helper waits on `wake` (only then does a new directory need a wake-up call).
    sleeping: AtomicBool,
    wake: Condvar,
    closed: AtomicBool,
}

/// How long the helper looks for new work before it goes to sleep (directories come every few
/// microseconds while a walk runs; a wake-up costs more than that).
const IDLE_SPINS: u32 = 2000;

/// The helper thread; stops when dropped.
pub(crate) struct Prestat {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Prestat {
    pub fn start() -> Prestat {
        let shared = Arc::new(Shared {
            stack: Mutex::new(Vec::new()),
            pushed: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("prestat".into())
            .spawn(move || work(&worker))
            .ok();
        Prestat { shared, handle }
    }

    /// Hands over a directory the walker has opened: `names` as listed, sorted.
    pub fn directory(
        &self,
        fd: Arc<OwnedFd>,
        names: &[(OsString, Option<FileType>)],
    ) -> Arc<DirStats> {
        let mut slots = Vec::with_capacity(names.len());
        let mut to_stat = Vec::new();
        for (i, (name, hint)) in names.iter().enumerate() {
            let cname = (*hint == Some(FileType::Regular))
                .then(|| CString::new(name.as_bytes()).ok())
                .flatten();
            slots.push(cname.as_ref().map(|_| Slot {
                claim: AtomicU8::new(FREE),
                value: OnceLock::new(),
            }));
            if let Some(c) = cname {
                to_stat.push((i, c));
            }
        }
        let dir = Arc::new(DirStats {
            fd,
            names: to_stat,
            slots,
            taken: AtomicUsize::new(0),
            done: AtomicBool::new(false),
        });
        if !dir.names.is_empty() && self.handle.is_some() {
            if let Ok(mut stack) = self.shared.stack.lock() {
                // Directories the walker has left go now, with their descriptors.
                stack.retain(|d| !d.done.load(Ordering::Relaxed));
                stack.push(dir.clone());
                self.shared.pushed.fetch_add(1, Ordering::Release);
            }
            if self.shared.sleeping.load(Ordering::Acquire) {
                self.shared.wake.notify_one();
            }
        }
        dir
    }
}

impl Drop for Prestat {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Ok(_stack) = self.shared.stack.lock() {
            self.shared.wake.notify_all();
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let (dir, generation) = match next_directory(shared) {
            Some(next) => next,
            None => return,
        };
        // Until it is done, or a directory opened meanwhile (the walker went down into it)
        // comes first.
        while !shared.closed.load(Ordering::Relaxed)
            && shared.pushed.load(Ordering::Acquire) == generation
            && dir.work_one()
        {
            std::hint::spin_loop();
        }
        let exhausted = dir.done.load(Ordering::Relaxed)
            || dir.taken.load(Ordering::Relaxed) >= dir.names.len();
        if exhausted {
            if let Ok(mut stack) = shared.stack.lock() {
                stack.retain(|d| !Arc::ptr_eq(d, &dir));
            }
        }
    }
}

/// The directory to work on (the one opened last) and the hand-over count then; `None` once
/// the walk is over. Looks for a while before it sleeps.
fn next_directory(shared: &Shared) -> Option<(Arc<DirStats>, usize)> {
    'look: loop {
        if shared.closed.load(Ordering::Relaxed) {
            return None;
        }
        let generation = shared.pushed.load(Ordering::Acquire);
        if let Some(top) = shared.stack.lock().ok()?.last() {
            return Some((top.clone(), generation));
        }
        for _ in 0..IDLE_SPINS {
            if shared.pushed.load(Ordering::Acquire) != generation {
                continue 'look;
            }
            std::hint::spin_loop();
        }
        // Sleep until a directory is handed over (or the walk ends); announced first, so a
        // hand-over after the check below wakes us.
        shared.sleeping.store(true, Ordering::SeqCst);
        let stack = shared.stack.lock().ok()?;
        if stack.is_empty() && !shared.closed.load(Ordering::Relaxed) {
            drop(shared.wake.wait(stack).ok()?);
        }
        shared.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::capture::read_dir_sorted;

    /// Whoever stats a name, the walker gets the stat of that name, for every regular file, in
    /// several directories handed over at once; the helper stops when dropped.
    #[test]
    fn the_walker_gets_each_names_stat_whoever_took_it() {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let mut dirs = Vec::new();
        for d in 0..4 {
            let sub = dir.path().join(format!("d{d}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..300 {
                std::fs::write(sub.join(format!("f{f:03}")), vec![0u8; d * 1000 + f]).unwrap();
            }
            std::fs::create_dir(sub.join("subdir")).unwrap();
            dirs.push(sub);
        }
        let prestat = Prestat::start();
        let mut handed = Vec::new();
        for sub in &dirs {
            let fd = Arc::new(OwnedFd::from(File::open(sub).unwrap()));
            let names = read_dir_sorted(fd.as_fd()).unwrap();
            handed.push((prestat.directory(fd, &names), names, sub));
        }
        let mut from_helper = 0;
        for (stats, names, sub) in &handed {
            for (i, (name, hint)) in names.iter().enumerate() {
                let taken = stats.take(i);
                if *hint != Some(FileType::Regular) {
                    assert!(taken.is_none(), "{name:?} is no regular file");
                    continue;
                }
                let Some(Some((st, _))) = taken else {
                    continue; // the walker's to stat
                };
                from_helper += 1;
                let want = std::fs::symlink_metadata(sub.join(name)).unwrap();
                assert_eq!(st.st_size as u64, want.len(), "{name:?}");
            }
            stats.finish();
        }
        eprintln!("{from_helper} of 1200 stats came from the helper");
        drop(prestat);
    }
}
