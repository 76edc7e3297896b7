//! Restoring a file-tree archive (all of it, or the entries `--include` names) into a directory.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use stowage_archive::{
    check_payload_header, Decoder, Entry, EntryKind, Event, LinkOffset, Metadata, Payload,
    PayloadRef,
};
use stowage_core::{
    chunk_feed, restore_image, with_stream, ChunkSource, PipelineError, RandomReader,
    RestoreCounters,
};
use stowage_format::DynamicIndex;
use stowage_fs::{RestoreOptions, Restorer};
use stowage_types::ErrorClass;

use super::Includes;
use crate::{Context, OpsError};

type Result<T, E = OpsError> = std::result::Result<T, E>;

/// Decoded payload chunks kept for consecutive small files of a split archive.
const PAYLOAD_CACHE_CHUNKS: usize = 4;
/// Payload chunks fetched ahead of the restore.
const FEED_CHUNKS: usize = 8;

/// A directory seen in the archive, created only once something in it is restored.
struct Pending {
    name: Vec<u8>,
    metadata: Metadata,
    created: bool,
    /// The decision for the directory itself, which entries below it inherit.
    included: bool,
}

pub struct TreeRestore<'a> {
    restorer: Restorer,
    /// The payload stream of a split archive.
    payload: Option<RandomReader<'a>>,
    /// The archive stream itself, for a partial restore: the content of a hardlink whose first
    /// name is not restored is read from that first name's entry.
    archive: Option<RandomReader<'a>>,
    /// Hardlink targets not restored under their own name: where their content went instead.
    moved_targets: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    includes: &'a Includes,
    /// The decision for the archive root.
    root_included: bool,
    stack: Vec<Pending>,
    root_metadata: Option<Metadata>,
    /// Regular files restored so far, for hardlinks in a partial restore.
    files: std::collections::HashSet<Vec<u8>>,
    buf: Vec<u8>,
    pub entries: u64,
}

impl<'a> TreeRestore<'a> {
    pub fn new(
        target: &Path,
        overwrite: bool,
        includes: &'a Includes,
        payload: Option<RandomReader<'a>>,
        archive: Option<RandomReader<'a>>,
        threads: usize,
    ) -> Result<Self> {
        std::fs::create_dir_all(target).map_err(|e| {
            OpsError::failed(
                ErrorClass::of_write_error(&e, ErrorClass::Target),
                format!("cannot create restore target {}: {e}", target.display()),
            )
        })?;
        let restorer = Restorer::open(target, RestoreOptions { overwrite })?.with_writers(threads);
        Ok(TreeRestore {
            restorer,
            payload,
            archive,
            moved_targets: std::collections::HashMap::new(),
            includes,
            root_included: includes.root(),
            stack: Vec::new(),
            root_metadata: None,
            files: std::collections::HashSet::new(),
            buf: vec![0; 1 << 20],
            entries: 0,
        })
    }

    fn materialize(&mut self) -> Result<()> {
        for p in self.stack.iter_mut().filter(|p| !p.created) {
            self.restorer
                .enter_dir(OsStr::from_bytes(&p.name), &p.metadata)?;
            p.created = true;
        }
        Ok(())
    }

    /// Applies one decoded event.
    pub fn apply<R: Read>(&mut self, decoder: &mut Decoder<R>, event: Event) -> Result<()> {
        let entry = match event {
            Event::DirectoryEnd(end) => {
                if !end.path.is_empty() {
                    if let Some(p) = self.stack.pop() {
                        if p.created {
                            self.restorer.leave_dir()?;
                        }
                    }
                }
                return Ok(());
            }
            Event::Entry(entry) => entry,
        };
        let Entry {
            path,
            metadata,
            kind,
            ..
        } = *entry;
        let Some(name) = path.last().cloned() else {
            self.root_metadata = Some(metadata);
            return Ok(());
        };
        let full = path.join(&b'/');
        let parent = self.stack.last().map_or(self.root_included, |p| p.included);
        let included = self
            .includes
            .decide(&full, kind == EntryKind::Directory, parent);
        if kind == EntryKind::Directory {
            self.stack.push(Pending {
                name,
                metadata,
                created: false,
                included,
            });
            if included {
                self.entries += 1;
                self.materialize()?;
            }
            return Ok(());
        }
        if !included {
            return Ok(()); // an inline payload is skipped by the next decoder call
        }
        self.materialize()?;
        self.entries += 1;
        let name = OsStr::from_bytes(&name);
        match kind {
            EntryKind::File { size, payload } => {
                self.write_file(decoder, name, &metadata, size, payload)?;
                if !self.includes.everything() {
                    self.files.insert(full);
                }
            }
            EntryKind::Symlink { target } => self.restorer.symlink(name, &metadata, &target)?,
            EntryKind::Device(d) => self.restorer.device(name, &metadata, d.major, d.minor)?,
            EntryKind::Fifo => self.restorer.fifo(name, &metadata)?,
            EntryKind::Socket => self.restorer.socket(name, &metadata)?,
            EntryKind::Hardlink {
                target_path,
                target,
            } => {
                if self.includes.everything() || self.files.contains(&target_path) {
                    self.restorer.hardlink(name, &target_path)?
                } else if let Some(first) = self.moved_targets.get(&target_path) {
                    let first = first.clone();
                    self.restorer.hardlink(name, &first)?
                } else {
                    // The first name is not restored: this one gets the file itself.
                    self.restore_link_target(name, &full, &target_path, target)?;
                    self.moved_targets.insert(target_path, full);
                }
            }
            EntryKind::Directory => {}
        }
        Ok(())
    }

    /// Restores, under `name`, the file whose entry is at `target` in the archive stream (the
    /// first name of the hardlink `full`, which is not being restored).
    fn restore_link_target(
        &mut self,
        name: &OsStr,
        full: &[u8],
        target_path: &[u8],
        target: LinkOffset,
    ) -> Result<()> {
        let shown = || {
            format!(
                "hardlink {} (to {})",
                String::from_utf8_lossy(full),
                String::from_utf8_lossy(target_path)
            )
        };
        // Taken out while its decoder runs, so the file can be written meanwhile.
        let Some(mut archive) = self.archive.take() else {
            return Err(OpsError::failed(
                ErrorClass::Internal,
                format!("{}: the archive cannot be read again", shown()),
            ));
        };
        let split = self.payload.is_some();
        let input = StreamAt {
            reader: &mut archive,
            pos: target.0,
        };
        let mut decoder = Decoder::at_entry(input, target.0, split);
        // The entry there must carry the target's name (its directories are not known here).
        let target_name = target_path.rsplit(|&b| b == b'/').next();
        let result = match decoder.next_event().context(shown) {
            Ok(Some(Event::Entry(entry))) if entry.path.last().map(|n| &n[..]) != target_name => {
                Err(OpsError::failed(
                    ErrorClass::Verification,
                    format!(
                        "{}: the entry at offset {} is {}, not the target",
                        shown(),
                        target.0,
                        String::from_utf8_lossy(&entry.path.join(&b'/'))
                    ),
                ))
            }
            Ok(Some(Event::Entry(entry))) => match entry.kind {
                EntryKind::File { size, payload } => {
                    self.write_file(&mut decoder, name, &entry.metadata, size, payload)
                }
                _ => Err(OpsError::failed(
                    ErrorClass::Verification,
                    format!(
                        "{}: the entry at offset {} is not a regular file",
                        shown(),
                        target.0
                    ),
                )),
            },
            Ok(_) => Err(OpsError::failed(
                ErrorClass::Verification,
                format!("{}: no entry at offset {}", shown(), target.0),
            )),
            Err(e) => Err(e),
        };
        drop(decoder);
        self.archive = Some(archive);
        result
    }

    /// Creates the regular file `name` and writes its content: inline from `decoder`, or from
    /// the payload stream.
    fn write_file<R: Read>(
        &mut self,
        decoder: &mut Decoder<R>,
        name: &OsStr,
        metadata: &Metadata,
        size: u64,
        payload: Payload,
    ) -> Result<()> {
        // The entry, for errors of reading its contents (the writer's errors name it already).
        let shown = self.restorer.current_path().join(name);
        let contents = || format!("contents of {}", shown.display());
        let mut writer = self.restorer.create_file(name, metadata, size)?;
        match (payload, self.payload.as_mut()) {
            (Payload::Inline, _) => loop {
                let n = decoder.read_payload(&mut self.buf).context(contents)?;
                if n == 0 {
                    break;
                }
                writer.put(&self.buf[..n])?;
            },
            (Payload::Ref(r), Some(reader)) => {
                copy_payload(reader, r, &mut writer).map_err(|e| match e.is_restore_error() {
                    true => e,
                    false => OpsError::Context {
                        context: contents(),
                        source: Box::new(e),
                    },
                })?
            }
            (Payload::Ref(_), None) => {
                return Err(OpsError::failed(
                    ErrorClass::Verification,
                    "the archive refers to a payload stream, but there is none".to_string(),
                ))
            }
        }
        writer.finish()?;
        Ok(())
    }

    pub fn finish(self) -> Result<u64> {
        // The target directory takes the archive root's metadata only in a full restore.
        let root = match self.includes.everything() {
            true => self.root_metadata.as_ref(),
            false => None,
        };
        self.restorer.finish(root)?;
        Ok(self.entries)
    }
}

/// A byte stream read from `pos` on through a [`RandomReader`].
struct StreamAt<'r, 'a> {
    reader: &'r mut RandomReader<'a>,
    pos: u64,
}

impl Read for StreamAt<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .reader
            .read_at(self.pos, buf)
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Copies a file's payload from a split archive's payload stream, after checking its header.
pub fn copy_payload(
    reader: &mut RandomReader<'_>,
    r: PayloadRef,
    out: &mut dyn Write,
) -> Result<()> {
    let mut header = [0u8; 16];
    let mut got = 0;
    while got < header.len() {
        let n = reader.read_at(r.offset + got as u64, &mut header[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    check_payload_header(&header, r)?;
    reader
        .copy_range(r.offset + 16, r.size, out)
        .map_err(|e| match e {
            // The file being restored failed to take the bytes: its own error names it.
            PipelineError::TargetWrite { name, source } => {
                match source.downcast::<stowage_fs::RestoreError>() {
                    Ok(restore) => OpsError::Restore(restore),
                    Err(source) => PipelineError::TargetWrite { name, source }.into(),
                }
            }
            other => other.into(),
        })
}

/// Where and what to restore.
pub struct TreeTarget<'a> {
    pub target: &'a str,
    pub overwrite: bool,
    pub includes: &'a [OsString],
}

/// Restores the archive behind `index` into the target directory; returns the entries restored.
/// `counters` count the archive stream and the payload stream (of a split archive).
pub fn restore_tree(
    chunks: &dyn ChunkSource,
    index: &DynamicIndex,
    payload: Option<&DynamicIndex>,
    archive: &str,
    to: TreeTarget<'_>,
    threads: usize,
    counters: &[RestoreCounters; 2],
) -> Result<u64> {
    let TreeTarget {
        target,
        overwrite,
        includes,
    } = to;
    if target == "-" {
        return Err(OpsError::failed(
            ErrorClass::Usage,
            format!("{archive} is a file-tree archive: restore it into a directory, or print one file with 'stowage cat'"),
        ));
    }
    let patterns = includes;
    let includes = Includes::new(patterns)?;
    let target_existed = std::fs::symlink_metadata(target).is_ok();
    let entries = std::thread::scope(|s| {
        // The payload stream is fetched, decoded and verified ahead, in parallel, into a feed the
        // reader takes chunks from as the decoder moves forward through the archive.
        let (reader, feeder) = match payload {
            Some(p) => {
                let (mut feed_target, feed) = chunk_feed(FEED_CHUNKS);
                let feeder = s.spawn(move || {
                    let window = (threads * 4).max(8);
                    let counters = &counters[1];
                    let name = format!("{archive} payload");
                    restore_image(
                        p,
                        chunks,
                        &mut feed_target,
                        &name,
                        threads,
                        window,
                        counters,
                    )
                });
                let reader = RandomReader::new(p, chunks, PAYLOAD_CACHE_CHUNKS)
                    .with_name(format!("{archive} payload stream"));
                (Some(reader.with_feed(feed)), Some(feeder))
            }
            None => (None, None),
        };
        // A partial restore may need to read an entry again (a hardlink's first name).
        let again = match includes.everything() {
            true => None,
            false => Some(RandomReader::new(index, chunks, 2).with_name(archive)),
        };
        let mut tree = TreeRestore::new(
            Path::new(target),
            overwrite,
            &includes,
            reader,
            again,
            threads,
        )?;
        with_stream(chunks, index, archive, threads, &counters[0], |stream| {
            let mut decoder = Decoder::new(stream);
            while let Some(event) = decoder
                .next_event()
                .context(|| format!("archive {archive}"))?
            {
                tree.apply(&mut decoder, event)?;
            }
            Ok::<_, OpsError>(())
        })?;
        // Finishing drops the reader, and with it the feed: the feeder stops if it is still ahead.
        let entries = tree.finish()?;
        if let Some(feeder) = feeder {
            match feeder.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.is_closed_target() => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(OpsError::failed(
                        ErrorClass::Internal,
                        "the payload fetcher panicked",
                    ))
                }
            }
        }
        Ok(entries)
    })?;
    if entries == 0 && !includes.everything() && !includes.root() {
        if !target_existed {
            // Only if still empty: the restore made it and wrote nothing into it.
            let _ = std::fs::remove_dir(target);
        }
        return Err(nothing_matched(archive, patterns));
    }
    Ok(entries)
}

/// The error for an `--include` list that selects no entry of the archive.
fn nothing_matched(archive: &str, patterns: &[OsString]) -> OpsError {
    let shown: Vec<String> = patterns
        .iter()
        .map(|p| format!("'{}'", String::from_utf8_lossy(p.as_bytes())))
        .collect();
    OpsError::failed(
        ErrorClass::NotFound,
        format!(
            "nothing in {archive} matches --include {}",
            shown.join(" --include ")
        ),
    )
}
