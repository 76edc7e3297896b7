//! Decoded chunks that occur more than once in an index, so a repeated chunk is read,
//! decompressed and hashed once while its copies are near each other.
//!
//! Each repeated digest carries the number of uses still to come; an entry leaves the cache
//! with its last use, and at most `capacity` entries are kept (the oldest goes first). A chunk
//! being fetched by one worker is waited for by the others instead of being fetched twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use stowage_types::Digest;

use crate::ChunkLayout;

/// What a worker does about a chunk.
pub(super) enum Lookup {
    /// The chunk occurs once: fetch it.
    Single,
    /// Decoded and verified already.
    Hit(Arc<Vec<u8>>),
    /// Fetch it, then [`RepeatCache::put`] it (or [`RepeatCache::abandon`] it on failure).
    Claimed,
    /// Another worker is fetching it (only from [`RepeatCache::try_lookup`]).
    Busy,
}

#[derive(Default)]
struct State {
    /// Uses still to come, for every digest that occurs more than once.
    remaining: HashMap<Digest, u32>,
    entries: HashMap<Digest, Arc<Vec<u8>>>,
    /// Entries in the order they came, for eviction.
    order: VecDeque<Digest>,
    /// Digests a worker is fetching now.
    fetching: HashSet<Digest>,
}

pub(super) struct RepeatCache {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

impl RepeatCache {
    pub fn new(index: &dyn ChunkLayout, capacity: usize) -> Self {
        let mut remaining: HashMap<Digest, u32> = HashMap::new();
        for i in 0..index.chunk_count() {
            *remaining.entry(*index.chunk(i).2).or_default() += 1;
        }
        remaining.retain(|_, n| *n > 1);
        RepeatCache {
            state: Mutex::new(State {
                remaining,
                ..State::default()
            }),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `digest` up, waiting while another worker fetches it. Call it holding no claim.
    pub fn lookup(&self, digest: &Digest) -> Lookup {
        let mut state = self.lock();
        loop {
            match self.look(&mut state, digest) {
                Lookup::Busy => state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                other => return other,
            }
        }
    }

    /// As [`lookup`](RepeatCache::lookup), without waiting: [`Lookup::Busy`] if another worker
    /// is fetching it.
    pub fn try_lookup(&self, digest: &Digest) -> Lookup {
        self.look(&mut self.lock(), digest)
    }

    fn look(&self, state: &mut State, digest: &Digest) -> Lookup {
        if !state.remaining.contains_key(digest) {
            return Lookup::Single;
        }
        if let Some(data) = state.entries.get(digest).cloned() {
            use_once(state, digest);
            return Lookup::Hit(data);
        }
        if state.fetching.contains(digest) {
            return Lookup::Busy;
        }
        state.fetching.insert(*digest);
        Lookup::Claimed
    }

    /// The claimed chunk `digest`, fetched and verified: kept for its next uses.
    pub fn put(&self, digest: &Digest, data: &[u8]) {
        let mut state = self.lock();
        if state.fetching.remove(digest) {
            use_once(&mut state, digest);
            if state.remaining.contains_key(digest) && self.capacity > 0 {
                if state.entries.len() >= self.capacity {
                    if let Some(oldest) = state.order.pop_front() {
                        state.entries.remove(&oldest);
                    }
                }
                state.entries.insert(*digest, Arc::new(data.to_vec()));
                state.order.push_back(*digest);
            }
        }
        drop(state);
        self.ready.notify_all();
    }

    /// The claimed chunk could not be fetched: whoever waits for it tries on its own.
    pub fn abandon(&self, digest: &Digest) {
        self.lock().fetching.remove(digest);
        self.ready.notify_all();
    }
}

/// One use of `digest` is done; with the last, its entry goes.
fn use_once(state: &mut State, digest: &Digest) {
    let last = match state.remaining.get_mut(digest) {
        Some(n) => {
            *n -= 1;
            *n == 0
        }
        None => return,
    };
    if last {
        state.remaining.remove(digest);
        if state.entries.remove(digest).is_some() {
            state.order.retain(|d| d != digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_format::FixedIndex;

    /// An index of chunks with these digests (digest n = [n; 32]).
    fn index(digests: &[u8]) -> FixedIndex {
        FixedIndex {
            uuid: [0; 16],
            ctime: 0,
            size: digests.len() as u64 * 4096,
            chunk_size: 4096,
            digests: digests.iter().map(|&n| Digest([n; 32])).collect(),
        }
    }

    #[test]
    fn a_repeated_chunk_is_fetched_once_and_dropped_after_its_last_use() {
        let cache = RepeatCache::new(&index(&[1, 2, 1, 1]), 8);
        let (one, two) = (Digest([1; 32]), Digest([2; 32]));
        assert!(matches!(cache.lookup(&two), Lookup::Single));
        assert!(matches!(cache.lookup(&one), Lookup::Claimed));
        assert!(matches!(cache.try_lookup(&one), Lookup::Busy));
        cache.put(&one, b"data");
        for _ in 0..2 {
            match cache.lookup(&one) {
                Lookup::Hit(data) => assert_eq!(&data[..], b"data"),
                _ => panic!("the second and third use come from the cache"),
            }
        }
        assert!(cache.lock().entries.is_empty(), "gone after its last use");
        assert!(matches!(cache.lookup(&one), Lookup::Single));
    }

    #[test]
    fn a_waiting_worker_gets_the_chunk_or_the_claim() {
        let cache = RepeatCache::new(&index(&[1, 1, 1]), 8);
        let one = Digest([1; 32]);
        assert!(matches!(cache.lookup(&one), Lookup::Claimed));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| matches!(cache.lookup(&one), Lookup::Claimed));
            std::thread::sleep(std::time::Duration::from_millis(20));
            cache.abandon(&one);
            assert!(
                waiter.join().unwrap(),
                "an abandoned chunk is claimed by the waiter"
            );
        });
        std::thread::scope(|s| {
            let waiter = s.spawn(|| matches!(cache.lookup(&one), Lookup::Hit(_)));
            std::thread::sleep(std::time::Duration::from_millis(20));
            cache.put(&one, b"x");
            assert!(
                waiter.join().unwrap(),
                "a fetched chunk is handed to the waiter"
            );
        });
    }

    #[test]
    fn the_oldest_entry_goes_when_the_cache_is_full() {
        let cache = RepeatCache::new(&index(&[1, 2, 3, 1, 2, 3]), 2);
        for n in 1..=3 {
            let d = Digest([n; 32]);
            assert!(matches!(cache.lookup(&d), Lookup::Claimed));
            cache.put(&d, &[n]);
        }
        assert!(matches!(cache.lookup(&Digest([1; 32])), Lookup::Claimed));
        assert!(matches!(cache.lookup(&Digest([3; 32])), Lookup::Hit(_)));
    }
}
