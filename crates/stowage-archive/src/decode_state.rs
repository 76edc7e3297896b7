//! The pxar decoder as a state machine without I/O.
//!
//! A front end asks [`DecodeState::want`] what to read next (an item header, an item's content,
//! payload bytes to pass through, or the end of the stream), reads it from wherever the bytes
//! come from and feeds it back; after each feed it collects at most one [`Event`]. The sync
//! front end is [`crate::Decoder`]; an async one can drive the same machine.
//!
//! Everything is checked: header sizes against per-type limits before any content is read,
//! item order (spec §7.4), names, and every goodbye table against the children actually seen.

use std::mem;

use crate::error::{DecodeError, DecodeErrorKind as Kind};
use crate::event::{DirectoryEnd, Entry, EntryKind, Event, Payload};
use crate::format::{
    self, check_name, check_relative_path, hash_name, le_u64, FileType, Header, LinkOffset,
    PayloadRef,
};
use crate::goodbye::{self, ChildRecord};
use crate::metadata::{attribute_rank, Device, Metadata, Stat};

/// What the front end must read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A 16-byte item header.
    Header,
    /// The content of the current item, this many bytes (bounded by the spec's limits).
    Content(usize),
    /// Payload bytes of the current file (v1), to hand to the caller or skip.
    Payload(u64),
    /// Nothing: the archive is complete and the stream must end here.
    End,
}

/// An item whose header was accepted and whose content is wanted.
struct Pending {
    htype: u64,
    offset: u64,
    len: usize,
}

/// An entry whose ENTRY was read and whose attribute items are being collected.
struct EntryBuilder {
    metadata: Metadata,
    rank: u8,
    entry_offset: u64,
}

/// A child whose FILENAME was read and whose extent is not known yet.
struct OpenChild {
    hash: u64,
    filename_offset: u64,
    check_size: bool,
}

struct DirFrame {
    name: Option<Vec<u8>>,
    entry_offset: u64,
    children: Vec<ChildRecord>,
    open_child: Option<OpenChild>,
    last_name: Option<Vec<u8>>,
}

enum Phase {
    Start,
    AfterVersion { prelude_seen: bool },
    ExpectEntry,
    InEntry(Box<EntryBuilder>),
    Payload { remaining: u64 },
    InDirectory,
    Finished,
    Failed,
}

/// The decoder state machine (see the module documentation).
pub struct DecodeState {
    pos: u64,
    phase: Phase,
    split: bool,
    prelude: Option<Vec<u8>>,
    dirs: Vec<DirFrame>,
    pending: Option<Pending>,
    event: Option<Event>,
    /// Name and FILENAME offset of the entry being read (`None` for the root).
    current: Option<(Vec<u8>, u64)>,
    /// The payload-stream ranges that PAYLOAD_REFs have claimed so far (split archives).
    payloads: PayloadRanges,
}

/// Disjoint ranges `[start, end)` of a payload stream, adjacent ones merged: each file's
/// PAYLOAD item (header and contents) is its own, so no two references may overlap. Payloads
/// written one after the other merge into one range, so this stays small for real archives.
/// Refusing overlaps bounds what a restore writes by the size of the payload stream (many
/// entries over one payload could otherwise make a small archive restore to any size).
#[derive(Default)]
struct PayloadRanges(std::collections::BTreeMap<u64, u64>);

impl PayloadRanges {
    /// Claims `[start, end)` (`start < end`); `false` if part of it was claimed before.
    fn claim(&mut self, start: u64, end: u64) -> bool {
        // Ranges are disjoint and sorted: only the last one starting before `end` can overlap.
        if let Some((_, &e)) = self.0.range(..end).next_back() {
            if e > start {
                return false;
            }
        }
        let mut merged = (start, end);
        if let Some((&s, &e)) = self.0.range(..start).next_back() {
            if e == start {
                self.0.remove(&s);
                merged.0 = s;
            }
        }
        if let Some(e) = self.0.remove(&end) {
            merged.1 = e;
        }
        self.0.insert(merged.0, merged.1);
        true
    }
}

impl Default for DecodeState {
    fn default() -> Self {
        DecodeState::new()
    }
}

impl DecodeState {
    pub fn new() -> Self {
        DecodeState {
            pos: 0,
            phase: Phase::Start,
            split: false,
            prelude: None,
            dirs: Vec::new(),
            pending: None,
            event: None,
            current: None,
            payloads: PayloadRanges::default(),
        }
    }

    /// A machine that decodes one directory entry starting at its FILENAME header at stream
    /// offset `pos` (a hardlink's target, say), as a child of a directory it knows nothing
    /// else of; `split`: whether the archive is a split metadata archive. Its entry event
    /// comes with the path `[name]`; stop after it (the enclosing directory cannot be checked).
    pub fn at_entry(pos: u64, split: bool) -> Self {
        let mut state = DecodeState::new();
        state.pos = pos;
        state.split = split;
        state.phase = Phase::InDirectory;
        state.dirs.push(DirFrame {
            name: None,
            entry_offset: 0,
            children: Vec::new(),
            open_child: None,
            last_name: None,
        });
        state
    }

    /// Stream offset of the next byte to feed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the archive is a split (v2) metadata archive; known after the first item.
    pub fn is_split(&self) -> bool {
        self.split
    }

    /// The PRELUDE content, if the archive has one.
    pub fn prelude(&self) -> Option<&[u8]> {
        self.prelude.as_deref()
    }

    /// What to read next.
    pub fn want(&self) -> Want {
        if let Some(p) = &self.pending {
            return Want::Content(p.len);
        }
        match self.phase {
            Phase::Payload { remaining } => Want::Payload(remaining),
            Phase::Finished | Phase::Failed => Want::End,
            _ => Want::Header,
        }
    }

    /// The event produced by the last feed, if any.
    pub fn take_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    /// Marks the machine failed (after an error of the front end, e.g. truncation).
    pub fn fail(&mut self) {
        self.phase = Phase::Failed;
        self.pending = None;
    }

    /// Feeds a 16-byte item header (when [`Want::Header`]).
    pub fn feed_header(&mut self, bytes: &[u8; 16]) -> Result<(), DecodeError> {
        let offset = self.pos;
        let result = self.header(Header::from_bytes(bytes), offset);
        self.settle(result, offset)
    }

    /// Feeds the content of the pending item (when [`Want::Content`]).
    pub fn feed_content(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let Some(pending) = self.pending.take() else {
            self.fail();
            return Err(DecodeError::new(self.pos, Kind::PayloadPending));
        };
        let offset = pending.offset;
        let result = if bytes.len() != pending.len {
            Err(Kind::Truncated)
        } else {
            self.pos += bytes.len() as u64;
            self.content(pending, bytes)
        };
        self.settle(result, offset)
    }

    /// Records that `n` payload bytes were passed through (when [`Want::Payload`]).
    pub fn payload_consumed(&mut self, n: u64) {
        if let Phase::Payload { remaining } = &mut self.phase {
            let n = n.min(*remaining);
            *remaining -= n;
            self.pos += n;
            if *remaining == 0 {
                self.phase = Phase::InDirectory;
            }
        }
    }

    fn settle(&mut self, result: Result<(), Kind>, offset: u64) -> Result<(), DecodeError> {
        result.map_err(|kind| {
            self.fail();
            DecodeError::new(offset, kind)
        })
    }

    fn header(&mut self, h: Header, offset: u64) -> Result<(), Kind> {
        let item = format::type_name(h.htype);
        let len = h.content_size().ok_or(Kind::BadHeaderSize {
            item,
            full_size: h.full_size,
        })?;
        self.pos += format::HEADER_SIZE;
        match mem::replace(&mut self.phase, Phase::Failed) {
            Phase::Start => self.start_header(h.htype, offset, len),
            Phase::AfterVersion { prelude_seen } => {
                self.after_version_header(h.htype, offset, len, prelude_seen)
            }
            Phase::ExpectEntry => self.expect_entry_header(h.htype, offset, len),
            Phase::InEntry(b) => self.entry_header(b, h, offset, len),
            Phase::InDirectory => self.dir_header(h, offset, len),
            Phase::Payload { .. } => Err(Kind::PayloadPending),
            Phase::Finished => Err(Kind::TrailingData),
            Phase::Failed => Err(Kind::TrailingData),
        }
    }

    /// Accepts an item whose content comes next, after checking its size limit.
    fn expect(&mut self, htype: u64, offset: u64, len: u64) -> Result<(), Kind> {
        let item = format::type_name(htype);
        let max = format::max_content_size(htype).ok_or(Kind::UnknownItem(htype))?;
        let too_large = Kind::TooLarge { item, len, max };
        if len > max {
            return Err(too_large);
        }
        let len = usize::try_from(len).map_err(|_| too_large)?;
        self.pending = Some(Pending { htype, offset, len });
        Ok(())
    }

    fn start_header(&mut self, htype: u64, offset: u64, len: u64) -> Result<(), Kind> {
        match htype {
            format::FORMAT_VERSION | format::ENTRY | format::ENTRY_V1 => {
                self.expect(htype, offset, len)
            }
            _ => Err(unexpected(htype, "FORMAT_VERSION or ENTRY")),
        }
    }

    fn after_version_header(
        &mut self,
        htype: u64,
        offset: u64,
        len: u64,
        prelude_seen: bool,
    ) -> Result<(), Kind> {
        match htype {
            format::PRELUDE if !prelude_seen => self.expect(htype, offset, len),
            format::ENTRY => self.expect(htype, offset, len),
            _ => Err(unexpected(htype, "PRELUDE or ENTRY")),
        }
    }

    fn expect_entry_header(&mut self, htype: u64, offset: u64, len: u64) -> Result<(), Kind> {
        match htype {
            format::ENTRY | format::HARDLINK => self.expect(htype, offset, len),
            format::ENTRY_V1 if !self.split => self.expect(htype, offset, len),
            _ => Err(unexpected(htype, "ENTRY or HARDLINK")),
        }
    }

    fn entry_header(
        &mut self,
        mut b: Box<EntryBuilder>,
        h: Header,
        offset: u64,
        len: u64,
    ) -> Result<(), Kind> {
        if let Some((rank, repeats)) = attribute_rank(h.htype) {
            if rank < b.rank || (rank == b.rank && !repeats) {
                return Err(unexpected(h.htype, "attributes in spec order"));
            }
            b.rank = rank;
            self.phase = Phase::InEntry(b);
            return self.expect(h.htype, offset, len);
        }
        let file_type = b
            .metadata
            .file_type()
            .ok_or(Kind::UnknownFileType(b.metadata.stat.mode))?;
        match (file_type, h.htype) {
            (FileType::Regular, format::PAYLOAD) if !self.split => {
                let kind = EntryKind::File {
                    size: len,
                    payload: Payload::Inline,
                };
                self.emit_entry(*b, kind);
                self.phase = Phase::Payload { remaining: len };
                self.payload_consumed(0);
                Ok(())
            }
            (FileType::Regular, format::PAYLOAD_REF) if self.split => self.keep(b, h, offset, len),
            (FileType::Symlink, format::SYMLINK) => self.keep(b, h, offset, len),
            (FileType::BlockDevice | FileType::CharDevice, format::DEVICE) => {
                self.keep(b, h, offset, len)
            }
            (FileType::Directory, format::FILENAME | format::GOODBYE) => {
                self.enter_directory(*b);
                self.dir_header(h, offset, len)
            }
            (FileType::Fifo, format::FILENAME | format::GOODBYE) => {
                self.emit_entry(*b, EntryKind::Fifo);
                self.dir_header(h, offset, len)
            }
            (FileType::Socket, format::FILENAME | format::GOODBYE) => {
                self.emit_entry(*b, EntryKind::Socket);
                self.dir_header(h, offset, len)
            }
            _ => Err(unexpected(h.htype, "the item that completes this entry")),
        }
    }

    /// Stays in the entry and wants the content of its completing item.
    fn keep(&mut self, b: Box<EntryBuilder>, h: Header, offset: u64, len: u64) -> Result<(), Kind> {
        self.phase = Phase::InEntry(b);
        self.expect(h.htype, offset, len)
    }

    /// Emits a directory entry whose attributes are complete and opens its frame.
    fn enter_directory(&mut self, b: EntryBuilder) {
        let is_root = self.dirs.is_empty();
        let name = self
            .current
            .as_ref()
            .filter(|_| !is_root)
            .map(|(n, _)| n.clone());
        // The root's goodbye tail points to archive offset 0 (spec §7.5).
        let entry_offset = if is_root { 0 } else { b.entry_offset };
        self.emit_entry(b, EntryKind::Directory);
        self.dirs.push(DirFrame {
            name,
            entry_offset,
            children: Vec::new(),
            open_child: None,
            last_name: None,
        });
    }

    fn dir_header(&mut self, h: Header, offset: u64, len: u64) -> Result<(), Kind> {
        self.phase = Phase::InDirectory;
        let dir = self.dirs.last_mut().ok_or(Kind::TrailingData)?;
        if let Some(child) = dir.open_child.take() {
            dir.children.push(ChildRecord {
                hash: child.hash,
                filename_offset: child.filename_offset,
                size: offset - child.filename_offset,
                check_size: child.check_size,
            });
        }
        match h.htype {
            format::FILENAME => self.expect(h.htype, offset, len),
            format::GOODBYE => {
                let expected = goodbye::table_full_size(dir.children.len());
                if h.full_size != expected {
                    return Err(Kind::WrongSize {
                        item: "GOODBYE",
                        len,
                        expected: expected - format::HEADER_SIZE,
                    });
                }
                let len = usize::try_from(len).map_err(|_| Kind::TooLarge {
                    item: "GOODBYE",
                    len,
                    max: usize::MAX as u64,
                })?;
                self.pending = Some(Pending {
                    htype: h.htype,
                    offset,
                    len,
                });
                Ok(())
            }
            other => Err(unexpected(other, "FILENAME or GOODBYE")),
        }
    }

    fn content(&mut self, p: Pending, b: &[u8]) -> Result<(), Kind> {
        match p.htype {
            format::FORMAT_VERSION => {
                let version = le_u64(b, 0);
                if b.len() != 8 || version != format::VERSION_2 {
                    return Err(Kind::BadVersion(version));
                }
                self.split = true;
                self.phase = Phase::AfterVersion {
                    prelude_seen: false,
                };
            }
            format::PRELUDE => {
                self.prelude = Some(b.to_vec());
                self.phase = Phase::AfterVersion { prelude_seen: true };
            }
            format::ENTRY => self.begin_entry(Stat::from_bytes(b)?, p.offset)?,
            format::ENTRY_V1 => self.begin_entry(Stat::from_v1_bytes(b)?, p.offset)?,
            format::FILENAME => self.filename(b, p.offset)?,
            format::GOODBYE => self.goodbye(b, p.offset)?,
            format::HARDLINK => self.hardlink(b, p.offset)?,
            _ => self.entry_content(p.htype, b)?,
        }
        Ok(())
    }

    fn begin_entry(&mut self, stat: Stat, offset: u64) -> Result<(), Kind> {
        let file_type = stat.file_type().ok_or(Kind::UnknownFileType(stat.mode))?;
        if self.dirs.is_empty() && file_type != FileType::Directory {
            return Err(Kind::RootNotDirectory);
        }
        self.phase = Phase::InEntry(Box::new(EntryBuilder {
            metadata: Metadata::new(stat),
            rank: 0,
            entry_offset: offset,
        }));
        Ok(())
    }

    /// Content of an attribute or of the item completing a symlink, device or split file.
    fn entry_content(&mut self, htype: u64, b: &[u8]) -> Result<(), Kind> {
        let Phase::InEntry(mut builder) = mem::replace(&mut self.phase, Phase::Failed) else {
            return Err(unexpected(htype, "an entry"));
        };
        let kind = match htype {
            format::SYMLINK => EntryKind::Symlink {
                target: symlink_target(b)?,
            },
            format::DEVICE => EntryKind::Device(Device::from_bytes(b)?),
            format::PAYLOAD_REF => self.payload_ref(b)?,
            _ => {
                builder.metadata.apply_item(htype, b)?;
                self.phase = Phase::InEntry(builder);
                return Ok(());
            }
        };
        self.emit_entry(*builder, kind);
        self.phase = Phase::InDirectory;
        Ok(())
    }

    fn payload_ref(&mut self, b: &[u8]) -> Result<EntryKind, Kind> {
        crate::metadata::check_len("PAYLOAD_REF", b, 16)?;
        let r = PayloadRef::from_bytes(b);
        let end = format::HEADER_SIZE
            .checked_add(r.size)
            .and_then(|n| r.offset.checked_add(n));
        let Some(end) = end.filter(|_| r.offset >= format::PAYLOAD_START_SIZE) else {
            return Err(Kind::PayloadRef {
                offset: r.offset,
                size: r.size,
            });
        };
        if !self.payloads.claim(r.offset, end) {
            return Err(Kind::PayloadOverlap {
                offset: r.offset,
                size: r.size,
            });
        }
        if let Some(child) = self.dirs.last_mut().and_then(|d| d.open_child.as_mut()) {
            child.check_size = false;
        }
        Ok(EntryKind::File {
            size: r.size,
            payload: Payload::Ref(r),
        })
    }

    fn filename(&mut self, b: &[u8], offset: u64) -> Result<(), Kind> {
        let name = strip_nul(b, "FILENAME")?;
        check_name(name).map_err(Kind::InvalidName)?;
        let dir = self.dirs.last_mut().ok_or(Kind::TrailingData)?;
        if dir.last_name.as_deref().is_some_and(|last| name <= last) {
            return Err(Kind::NameOrder);
        }
        dir.last_name = Some(name.to_vec());
        dir.open_child = Some(OpenChild {
            hash: hash_name(name),
            filename_offset: offset,
            check_size: true,
        });
        self.current = Some((name.to_vec(), offset));
        self.phase = Phase::ExpectEntry;
        Ok(())
    }

    fn hardlink(&mut self, b: &[u8], offset: u64) -> Result<(), Kind> {
        if b.len() < 8 {
            return Err(Kind::WrongSize {
                item: "HARDLINK",
                len: b.len() as u64,
                expected: 10,
            });
        }
        let rel = le_u64(b, 0);
        let path = strip_nul(&b[8..], "HARDLINK")?;
        check_relative_path(path).map_err(Kind::InvalidHardlinkPath)?;
        let here = self.current.as_ref().map_or(0, |(_, o)| *o);
        let target = match here.checked_sub(rel) {
            Some(t) if rel > 0 => LinkOffset(t),
            _ => return Err(Kind::HardlinkOffset(rel)),
        };
        let kind = EntryKind::Hardlink {
            target_path: path.to_vec(),
            target,
        };
        let builder = EntryBuilder {
            metadata: Metadata::default(),
            rank: 0,
            entry_offset: offset,
        };
        self.emit_entry(builder, kind);
        self.phase = Phase::InDirectory;
        Ok(())
    }

    fn goodbye(&mut self, b: &[u8], offset: u64) -> Result<(), Kind> {
        let dir = self.dirs.pop().ok_or(Kind::TrailingData)?;
        goodbye::verify(b, &dir.children, offset, dir.entry_offset).map_err(Kind::Goodbye)?;
        let path = self.dir_path();
        let path = match dir.name {
            Some(name) => path.into_iter().chain([name]).collect(),
            None => path,
        };
        self.event = Some(Event::DirectoryEnd(DirectoryEnd {
            path,
            goodbye_offset: offset,
            children: dir.children.len(),
        }));
        self.phase = if self.dirs.is_empty() {
            Phase::Finished
        } else {
            Phase::InDirectory
        };
        Ok(())
    }

    /// Path of the innermost open directory (root = empty).
    fn dir_path(&self) -> Vec<Vec<u8>> {
        self.dirs.iter().filter_map(|d| d.name.clone()).collect()
    }

    fn emit_entry(&mut self, b: EntryBuilder, kind: EntryKind) {
        let mut path = self.dir_path();
        let filename_offset = match &self.current {
            Some((name, offset)) if !self.dirs.is_empty() => {
                path.push(name.clone());
                Some(LinkOffset(*offset))
            }
            _ => None,
        };
        self.event = Some(Event::Entry(Box::new(Entry {
            path,
            filename_offset,
            entry_offset: b.entry_offset,
            metadata: b.metadata,
            kind,
        })));
    }
}

fn unexpected(htype: u64, expected: &'static str) -> Kind {
    match format::type_name(htype) {
        "unknown" => Kind::UnknownItem(htype),
        found => Kind::Unexpected { found, expected },
    }
}

fn strip_nul<'a>(b: &'a [u8], item: &'static str) -> Result<&'a [u8], Kind> {
    match b.split_last() {
        Some((0, rest)) => Ok(rest),
        _ => Err(Kind::MissingNul(item)),
    }
}

fn symlink_target(b: &[u8]) -> Result<Vec<u8>, Kind> {
    let target = strip_nul(b, "SYMLINK")?;
    if target.is_empty() || target.contains(&0) {
        return Err(Kind::InvalidSymlink);
    }
    Ok(target.to_vec())
}

#[cfg(test)]
mod tests {
    use super::PayloadRanges;

    #[test]
    fn payload_ranges_refuse_overlaps_and_merge_neighbours() {
        let mut r = PayloadRanges::default();
        assert!(r.claim(16, 32));
        assert!(r.claim(32, 50)); // right after: merged
        assert!(r.claim(100, 120)); // a gap
        assert!(r.claim(60, 70)); // backwards, between
        assert_eq!(r.0.len(), 3);
        assert!(r.claim(50, 60)); // closes the gap: one range 16..70
        assert_eq!(r.0.iter().next(), Some((&16, &70)));
        for (start, end) in [(16, 17), (20, 30), (69, 71), (10, 17), (0, 200), (119, 121)] {
            assert!(!r.claim(start, end), "{start}..{end}");
        }
        assert!(r.claim(70, 100));
        assert!(r.claim(120, 121));
        assert_eq!(r.0.len(), 1);
        assert!(r.claim(0, 16));
        assert_eq!(r.0.iter().collect::<Vec<_>>(), vec![(&0, &121)]);
    }
}
