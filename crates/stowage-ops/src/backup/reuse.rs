//! Metadata change detection for split archives: what the previous snapshot's `.mpxar`/`.ppxar`
//! hold, and re-referencing the payloads of files that did not change instead of reading them.
//!
//! A re-used file's payload is put into the new payload stream by appending, by reference, the
//! previous `.ppxar` chunks that hold it. Consecutive unchanged files usually share chunks: a run
//! of appended chunks is extended while nothing new is written between, and a file whose chunks
//! were already appended (before a changed neighbour broke the run) is referenced where they lie,
//! so each previous chunk is appended about once. Nothing is stored twice: appended chunks are
//! already in the store. Payload offsets may then point back into the stream; readers use them as
//! random-access positions.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::rc::Rc;

use crossbeam_channel::{bounded, Receiver, Sender};
use stowage_archive::{Decoder, EntryKind, Event, FileType, Metadata, Payload, Stat};
use stowage_core::session::SnapshotReader;
use stowage_core::{with_stream, ChunkLayout, ChunkSource, PayloadWriter, RestoreCounters};
use stowage_format::{DynamicIndex, Manifest};
use stowage_fs::{PayloadReuse, Recorded};
use stowage_types::{ArchiveName, SnapshotRef};

use super::Warn;
use crate::{Context, OpsError};

/// Size of a PAYLOAD item header in the payload stream.
const PAYLOAD_HEADER: u64 = 16;

/// An entry of the previous metadata stream: a file with its payload reference, or a directory
/// or symlink (what change detection needs of them is their metadata and target).
struct PreviousFile {
    metadata: Metadata,
    kind: Kind,
}

enum Kind {
    File { size: u64, offset: u64 },
    Directory,
    Symlink { target: Vec<u8> },
}

/// Files sent from the loader to the walker at a time.
const BATCH: usize = 1024;
/// Batches the loader may run ahead.
const BATCHES: usize = 64;

type Batch = Result<Vec<(Vec<u8>, PreviousFile)>, String>;

/// The split archive of the same name in the previous snapshot, found and checked: what
/// [`Previous::start`] loads while the walk runs.
pub struct Previous<'r> {
    reader: &'r dyn SnapshotReader,
    meta: DynamicIndex,
    payload: DynamicIndex,
    what: String,
    time: Option<i64>,
}

/// The previous split archive being loaded. Its metadata stream is decoded on a thread of its
/// own while the walk runs: files arrive in archive order, which is the walk's order, so a
/// lookup waits only until the loader has passed the path it asks for.
pub struct PreviousArchive<'w> {
    /// Files received and not yet asked for, in walk order.
    files: VecDeque<(Vec<u8>, PreviousFile)>,
    incoming: Option<Receiver<Batch>>,
    payload: DynamicIndex,
    name: String,
    /// A time before which the previous snapshot read nothing (Unix seconds), when its record
    /// allows change detection to trust unchanged `ctime`s (see [`capture_record`]).
    time: Option<i64>,
    warn: &'w Warn<'w>,
}

/// The key of the record a backup leaves in its manifest's `unprotected` object for the next
/// one's change detection.
pub const CAPTURE_RECORD: &str = "stowage-capture";

/// Unix seconds now, rounded down.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn euid() -> u64 {
    u64::from(nix::unistd::geteuid().as_raw())
}

/// Where a tree's source lies, as the record compares it (symlinks resolved).
fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string())
}

/// What change detection must know of how a snapshot was taken before it skips reading what did
/// not change since: when the backup started on this host (before it read any file; the
/// snapshot's own time may be anything later), as which user (attributes such as `trusted.*`
/// are only visible to root), and from which source path each tree came.
pub fn capture_record<'a>(
    started: i64,
    trees: impl Iterator<Item = (&'a ArchiveName, &'a str)>,
) -> serde_json::Value {
    let sources: serde_json::Map<String, serde_json::Value> = trees
        .map(|(name, path)| (name.user_name().to_string(), canonical(path).into()))
        .collect();
    serde_json::json!({ "started": started, "euid": euid(), "sources": sources })
}

/// The time before which the previous snapshot's tree `name` (from `source`) read nothing, if
/// its record shows it was taken the way this backup takes it (same user, same source); `None`
/// (read every entry's attributes) for a snapshot without a record, from another client, say.
fn trusted_since(
    manifest: &Manifest,
    base: &SnapshotRef,
    name: &ArchiveName,
    source: &str,
) -> Option<i64> {
    let record = manifest.unprotected.get(CAPTURE_RECORD)?;
    let started = record.get("started")?.as_i64()?;
    let same_user = record.get("euid")?.as_u64()? == euid();
    let recorded_source = record.get("sources")?.get(name.user_name())?.as_str()?;
    (same_user && recorded_source == canonical(source)).then(|| started.min(base.time.epoch()))
}

/// `a` before `b` in walk order: depth first, names in byte order within each directory. That
/// is byte order with `/` below every other byte (names hold no NUL): at the first difference a
/// `/` ends a component that is a prefix of the other one, and a path that ends first is an
/// ancestor of the other, or its last component a prefix of the other's.
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |c: u8| if c == b'/' { 0 } else { c };
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => rank(a[i]).cmp(&rank(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

/// The stored names of a split archive: `root.pxar` -> `root.mpxar`, `root.ppxar`.
pub fn split_names(name: &ArchiveName) -> Result<(ArchiveName, ArchiveName), OpsError> {
    let stem = name.user_name().trim_end_matches(".pxar");
    Ok((
        ArchiveName::parse(&format!("{stem}.mpxar"))?,
        ArchiveName::parse(&format!("{stem}.ppxar"))?,
    ))
}

/// Decodes the previous metadata stream, sending its files in batches.
fn load_files(
    chunks: &dyn ChunkSource,
    meta: &DynamicIndex,
    what: &str,
    threads: usize,
    tx: &Sender<Batch>,
) -> Result<(), OpsError> {
    let counters = RestoreCounters::default();
    with_stream(chunks, meta, what, threads, &counters, |stream| {
        let mut batch = Vec::with_capacity(BATCH);
        let mut decoder = Decoder::new(stream);
        while let Some(event) = decoder.next_event().context(|| what.to_string())? {
            let Event::Entry(entry) = event else { continue };
            let kind = match entry.kind {
                EntryKind::File {
                    size,
                    payload: Payload::Ref(r),
                } => Kind::File {
                    size,
                    offset: r.offset,
                },
                EntryKind::Directory if !entry.path.is_empty() => Kind::Directory,
                EntryKind::Symlink { target } => Kind::Symlink { target },
                _ => continue,
            };
            let file = PreviousFile {
                metadata: entry.metadata,
                kind,
            };
            batch.push((entry.path.join(&b'/'), file));
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(Ok(full)).is_err() {
                    return Ok(()); // the walk is over
                }
            }
        }
        let _ = tx.send(Ok(batch));
        Ok(())
    })
}

impl<'r> Previous<'r> {
    /// The split archive of `name` in the snapshot `reader` reads (the base of a backup, whose
    /// tree `name` comes from `source`); `None` if it has none.
    pub fn open(
        reader: &'r dyn SnapshotReader,
        (name, source): (&ArchiveName, &str),
    ) -> Result<Option<Self>, OpsError> {
        let base = reader.snapshot();
        let manifest = reader.manifest();
        let time = trusted_since(manifest, base, name, source);
        let (meta_name, payload_name) = split_names(name)?;
        let present = |n: &ArchiveName| manifest.file(&n.stored_name()).is_some();
        if !present(&meta_name) || !present(&payload_name) {
            return Ok(None);
        }
        Ok(Some(Previous {
            reader,
            meta: reader.dynamic_index(&meta_name)?,
            payload: reader.dynamic_index(&payload_name)?,
            what: format!("{base} {meta_name}"),
            time,
        }))
    }

    /// Starts the loader on a thread of `scope`; it ends when the walk stops asking (the
    /// returned value is dropped) or the stream is read.
    pub fn start<'s, 'w>(
        self,
        scope: &'s std::thread::Scope<'s, 'w>,
        threads: usize,
        warn: &'w Warn<'w>,
    ) -> PreviousArchive<'w>
    where
        'r: 'w,
    {
        let (tx, rx) = bounded(BATCHES);
        let Previous {
            reader,
            meta,
            payload,
            what,
            time,
        } = self;
        let loader_what = what.clone();
        scope.spawn(move || {
            if let Err(e) = load_files(reader.chunks(), &meta, &loader_what, threads, &tx) {
                let _ = tx.send(Err(crate::error::chain(&e)));
            }
        });
        PreviousArchive {
            files: VecDeque::new(),
            incoming: Some(rx),
            payload,
            name: what,
            time,
            warn,
        }
    }
}

impl PreviousArchive<'_> {
    /// The previous entry of `path`, once the loader has got that far. The walk asks in walk
    /// order, so entries before `path` (files that are gone) are dropped on the way; the entry
    /// itself stays until a later path is asked for (the walker may ask again for the same file,
    /// with the metadata of the opened file).
    fn find(&mut self, path: &[u8]) -> Option<&PreviousFile> {
        loop {
            while let Some((front, _)) = self.files.front() {
                match walk_order(front, path) {
                    std::cmp::Ordering::Less => drop(self.files.pop_front()),
                    std::cmp::Ordering::Equal => return self.files.front().map(|(_, f)| f),
                    std::cmp::Ordering::Greater => return None,
                }
            }
            let rx = self.incoming.as_ref()?;
            match rx.recv() {
                Ok(Ok(batch)) => self.files.extend(batch),
                Ok(Err(e)) => {
                    (self.warn)(format!(
                        "{}: {e}; files not found before this point are read again",
                        self.name
                    ));
                    self.incoming = None;
                }
                Err(_) => self.incoming = None, // all of it received
            }
        }
    }

    /// The chunk of the previous payload stream holding byte `offset`.
    fn chunk_of(&self, offset: u64) -> Option<usize> {
        let i = self
            .payload
            .entries
            .partition_point(|(end, _)| *end <= offset);
        (i < self.payload.entries.len()).then_some(i)
    }
}

/// The payload stream's writer, shared by the encoder (new payloads) and the [`Reuser`]
/// (appended chunks) on the walker thread.
#[derive(Clone)]
pub struct SharedPayload(pub Rc<RefCell<PayloadWriter>>);

impl Write for SharedPayload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Previous chunks appended back to back at the end of the new payload stream.
struct Run {
    first: usize,
    last: usize,
    new_start: u64,
    new_end: u64,
}

pub struct Reuser<'w> {
    previous: PreviousArchive<'w>,
    payload: SharedPayload,
    run: Option<Run>,
    /// Where each previous chunk appended so far starts in the new stream (the latest copy),
    /// by the chunk's place in the previous index; `NOT_PLACED` for chunks not appended.
    placed: Vec<u64>,
}

const NOT_PLACED: u64 = u64::MAX;

impl<'w> Reuser<'w> {
    pub fn new(previous: PreviousArchive<'w>, payload: SharedPayload) -> Reuser<'w> {
        let placed = vec![NOT_PLACED; previous.payload.entries.len()];
        Reuser {
            previous,
            payload,
            run: None,
            placed,
        }
    }

    /// Appends previous chunks `from..=to` at `position`; returns their total length.
    fn append(&mut self, from: usize, to: usize, position: u64) -> io::Result<u64> {
        let mut at = position;
        let mut chunks = Vec::with_capacity(to + 1 - from);
        for k in from..=to {
            let (_, len, digest) = self.previous.payload.chunk(k);
            chunks.push((*digest, len as u32));
            self.placed[k] = at;
            at += len as u64;
        }
        self.payload.0.borrow_mut().inject(&chunks)?;
        Ok(at - position)
    }

    /// Where the previous chunks `first..=last` already lie back to back in the new stream, if
    /// they do: a file whose neighbour changed is then referenced there instead of appending the
    /// same chunks again (which would make the stream, and every restore, larger).
    fn placed_run(&self, first: usize, last: usize) -> Option<u64> {
        let start = *self.placed.get(first).filter(|&&at| at != NOT_PLACED)?;
        let mut expected = start;
        for k in first..=last {
            if self.placed.get(k) != Some(&expected) {
                return None;
            }
            expected += self.previous.payload.chunk(k).1 as u64;
        }
        Some(start)
    }
}

impl PayloadReuse for Reuser<'_> {
    fn reuse(
        &mut self,
        path: &[u8],
        metadata: &Metadata,
        size: u64,
        position: u64,
    ) -> io::Result<Option<(u64, u64)>> {
        let Some(old) = self.previous.find(path) else {
            return Ok(None);
        };
        let Kind::File {
            size: old_size,
            offset: old_offset,
        } = old.kind
        else {
            return Ok(None);
        };
        if old_size != size || old.metadata != *metadata {
            return Ok(None);
        }
        let end = old_offset + PAYLOAD_HEADER + size;
        let (Some(first), Some(last)) = (
            self.previous.chunk_of(old_offset),
            self.previous.chunk_of(end - 1),
        ) else {
            return Ok(None); // the previous index does not cover it: read the file instead
        };
        if let Some(start) = self.placed_run(first, last) {
            let first_start = self.previous.payload.chunk(first).0;
            return Ok(Some((start + old_offset - first_start, 0)));
        }
        if let Some(run) = self.run.as_ref() {
            if run.new_end == position && first >= run.first && first <= run.last + 1 {
                let (run_last, run_start) = (run.last, run.new_start);
                let run_first_start = self.previous.payload.chunk(run.first).0;
                let appended = match last > run_last {
                    true => self.append(run_last + 1, last, position)?,
                    false => 0,
                };
                if let Some(run) = self.run.as_mut() {
                    run.last = run.last.max(last);
                    run.new_end += appended;
                }
                return Ok(Some((run_start + old_offset - run_first_start, appended)));
            }
        }
        let first_start = self.previous.payload.chunk(first).0;
        let appended = self.append(first, last, position)?;
        self.run = Some(Run {
            first,
            last,
            new_start: position,
            new_end: position + appended,
        });
        Ok(Some((position + old_offset - first_start, appended)))
    }

    fn new_payload(&mut self) {
        self.payload.0.borrow_mut().suggest_boundary();
    }

    fn previous_time(&self) -> Option<i64> {
        self.previous.time
    }

    fn recorded(&mut self, path: &[u8], file_type: FileType, stat: &Stat) -> Option<Recorded> {
        let old = self.previous.find(path)?;
        let symlink_target = match (&old.kind, file_type) {
            (Kind::Directory, FileType::Directory) => None,
            (Kind::Symlink { target }, FileType::Symlink) => Some(target.clone()),
            _ => return None,
        };
        // The stat as it is now, but for the inode flags, which only the recorded one has.
        let same = Stat {
            flags: old.metadata.stat.flags,
            ..*stat
        } == old.metadata.stat;
        same.then(|| Recorded {
            metadata: old.metadata.clone(),
            symlink_target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::walk_order;

    #[test]
    fn walk_order_is_depth_first_with_names_in_byte_order() {
        let by_components =
            |a: &[u8], b: &[u8]| a.split(|c| *c == b'/').cmp(b.split(|c| *c == b'/'));
        let paths: [&[u8]; 12] = [
            b"", b"a", b"a/b", b"a/b/c", b"a.b", b"a-b/x", b"ab", b"a/bc", b"a/b.c", b"b", b"a0/z",
            b"\xff/a",
        ];
        for a in paths {
            for b in paths {
                assert_eq!(walk_order(a, b), by_components(a, b), "{a:?} {b:?}");
            }
        }
    }
}
