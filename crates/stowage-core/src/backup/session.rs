//! Chunk bookkeeping shared by all archives of one backup.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use stowage_types::Digest;

use crate::{ChunkCodec, PipelineError, PlainCodec};

/// What became of a digest this backup met before.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The worker that met it first is storing it.
    Pending,
    Stored,
    /// Storing it failed (the pipeline fails with that worker's error).
    Failed,
}

/// The answer to [`BackupSession::claim`].
pub(crate) enum Claim {
    /// The caller met the digest first: it stores the chunk, then [`settles`] it.
    ///
    /// [`settles`]: BackupSession::settle
    Mine,
    /// Another worker is storing it.
    Pending,
    /// Stored already in this backup.
    Stored,
}

/// What the previous snapshot references, and which digests this backup has handled. A chunk
/// another worker is still storing must not be appended to an index before it is stored (a
/// remote server refuses appends of chunks it has not received): [`wait_stored`] waits.
///
/// [`wait_stored`]: BackupSession::wait_stored
pub struct BackupSession {
    codec: Arc<dyn ChunkCodec>,
    known: HashSet<Digest>,
    claimed: Mutex<HashMap<Digest, State>>,
    settled: Condvar,
}

impl BackupSession {
    /// `known`: digests referenced by the previous snapshot of the group, which the store is
    /// trusted to hold. They cost a hash and nothing more.
    /// Chunks are PBS's plain ones ([`PlainCodec`]).
    pub fn new(known: HashSet<Digest>) -> Self {
        Self::with_codec(known, Arc::new(PlainCodec))
    }

    /// As [`new`](BackupSession::new), with chunks named and encoded by `codec`.
    pub fn with_codec(known: HashSet<Digest>, codec: Arc<dyn ChunkCodec>) -> Self {
        BackupSession {
            codec,
            known,
            claimed: Mutex::new(HashMap::new()),
            settled: Condvar::new(),
        }
    }

    /// How this backup names and encodes its chunks.
    pub fn codec(&self) -> &dyn ChunkCodec {
        &*self.codec
    }

    /// The digests of the previous snapshot.
    pub fn known(&self) -> &HashSet<Digest> {
        &self.known
    }

    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    fn claimed(&self) -> MutexGuard<'_, HashMap<Digest, State>> {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who stores `digest`: the first caller does.
    pub(crate) fn claim(&self, digest: &Digest) -> Claim {
        let mut claimed = self.claimed();
        match claimed.get(digest) {
            None => {
                claimed.insert(*digest, State::Pending);
                Claim::Mine
            }
            Some(State::Stored) => Claim::Stored,
            Some(State::Pending | State::Failed) => Claim::Pending,
        }
    }

    /// The claimer of `digest` is done: stored it (`ok`), or failed.
    pub(crate) fn settle(&self, digest: &Digest, ok: bool) {
        let state = if ok { State::Stored } else { State::Failed };
        self.claimed().insert(*digest, state);
        self.settled.notify_all();
    }

    /// Waits until the claimer of `digest` has stored it.
    pub(crate) fn wait_stored(&self, digest: &Digest) -> Result<(), PipelineError> {
        let mut claimed = self.claimed();
        loop {
            match claimed.get(digest) {
                Some(State::Stored) => return Ok(()),
                Some(State::Failed) | None => {
                    return Err(PipelineError::Thread(format!(
                        "chunk {digest} could not be stored by the worker that took it"
                    )))
                }
                Some(State::Pending) => {
                    claimed = self
                        .settled
                        .wait(claimed)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claimer_waits_until_the_first_has_stored() {
        let session = BackupSession::new(HashSet::new());
        let d = Digest([1; 32]);
        assert!(matches!(session.claim(&d), Claim::Mine));
        assert!(matches!(session.claim(&d), Claim::Pending));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| session.wait_stored(&d));
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!waiter.is_finished(), "waits while the claimer stores");
            session.settle(&d, true);
            assert!(waiter.join().unwrap().is_ok());
        });
        assert!(matches!(session.claim(&d), Claim::Stored));
        let e = Digest([2; 32]);
        assert!(matches!(session.claim(&e), Claim::Mine));
        session.settle(&e, false);
        assert!(session.wait_stored(&e).is_err(), "the claimer failed");
    }
}
