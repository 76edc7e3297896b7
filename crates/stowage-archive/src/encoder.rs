//! Streaming pxar encoder (spec §7.4–7.6) over `std::io::Write`.
//!
//! The encoder never seeks: it counts the bytes it writes to know every offset that goodbye
//! tables, hardlinks and payload references need. Children must be added in strictly increasing
//! byte order of their names. A split (v2) archive writes metadata to one writer and file
//! contents to a second one (the `.ppxar` payload stream).

use std::io::{self, Write};

use crate::error::{lossy, EncodeError};
use crate::format::{
    self, check_name, check_relative_path, hash_name, FileType, Header, LinkOffset, PayloadRef,
};
use crate::goodbye::{self, ChildRecord};
use crate::metadata::{Device, Metadata};

/// Which archive format to write.
pub enum Format<P> {
    /// Unified archive: no version item, file contents inline as PAYLOAD items.
    V1,
    /// Split archive: FORMAT_VERSION 2 (and an optional PRELUDE) in the metadata stream, file
    /// contents in `payload`.
    V2 {
        payload: P,
        prelude: Option<Vec<u8>>,
    },
}

impl Format<io::Sink> {
    /// A unified (v1) archive.
    pub fn unified() -> Self {
        Format::V1
    }
}

impl<P> Format<P> {
    /// A split (v2) archive writing file contents to `payload`.
    pub fn split(payload: P, prelude: Option<Vec<u8>>) -> Self {
        Format::V2 { payload, prelude }
    }
}

/// A writer that counts what it wrote and remembers a failure.
struct Counting<T> {
    inner: T,
    pos: u64,
    failed: bool,
    stream: &'static str,
}

impl<T: Write> Counting<T> {
    fn new(inner: T, stream: &'static str) -> Self {
        Counting {
            inner,
            pos: 0,
            failed: false,
            stream,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if let Err(source) = self.inner.write_all(bytes) {
            self.failed = true;
            return Err(EncodeError::Io {
                stream: self.stream,
                offset: self.pos,
                source,
            });
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn write_item(&mut self, htype: u64, parts: &[&[u8]]) -> Result<(), EncodeError> {
        let len = parts.iter().map(|p| p.len() as u64).sum();
        self.write_all(&Header::with_content(htype, len).to_bytes())?;
        parts.iter().try_for_each(|p| self.write_all(p))
    }

    fn flush(&mut self) -> Result<(), EncodeError> {
        self.inner.flush().map_err(|source| {
            self.failed = true;
            EncodeError::Io {
                stream: self.stream,
                offset: self.pos,
                source,
            }
        })
    }
}

/// A directory being written.
struct Dir {
    /// Offset of the directory's ENTRY header (0 for the root, by the spec's definition).
    entry_offset: u64,
    /// Offset of its FILENAME header and hash of its name (unused for the root).
    filename_offset: u64,
    hash: u64,
    children: Vec<ChildRecord>,
    last_name: Option<Vec<u8>>,
}

impl Dir {
    fn new(entry_offset: u64, filename_offset: u64, hash: u64) -> Dir {
        Dir {
            entry_offset,
            filename_offset,
            hash,
            children: Vec::new(),
            last_name: None,
        }
    }
}

/// A regular file whose contents are being written.
struct OpenFile {
    filename_offset: u64,
    hash: u64,
    size: u64,
    written: u64,
}

/// The pxar encoder. `W` receives the (metadata) archive, `P` the payload stream of a split
/// archive (unused for v1).
pub struct Encoder<W: Write, P: Write = io::Sink> {
    out: Counting<W>,
    payload: Option<Counting<P>>,
    dirs: Vec<Dir>,
    open_file: Option<OpenFile>,
    poisoned: bool,
}

impl<W: Write, P: Write> Encoder<W, P> {
    /// Starts an archive whose root directory has `root` metadata.
    pub fn new(out: W, format: Format<P>, root: &Metadata) -> Result<Self, EncodeError> {
        check_type(b"/", root, FileType::Directory, "the archive root")?;
        check_metadata(b"/", root)?;
        let mut enc = Encoder {
            out: Counting::new(out, "archive"),
            payload: None,
            dirs: vec![Dir::new(0, 0, 0)],
            open_file: None,
            poisoned: false,
        };
        if let Format::V2 { payload, prelude } = format {
            enc.start_split(payload, prelude.as_deref())?;
        }
        enc.write_metadata(root)?;
        Ok(enc)
    }

    fn start_split(&mut self, payload: P, prelude: Option<&[u8]>) -> Result<(), EncodeError> {
        if let Some(p) = prelude {
            check_size(b"/", "the prelude", p.len(), format::MAX_PRELUDE_LEN)?;
        }
        let mut payload = Counting::new(payload, "payload");
        payload.write_item(format::PAYLOAD_START_MARKER, &[])?;
        self.payload = Some(payload);
        let version = format::VERSION_2.to_le_bytes();
        self.out.write_item(format::FORMAT_VERSION, &[&version])?;
        if let Some(p) = prelude {
            self.out.write_item(format::PRELUDE, &[p])?;
        }
        Ok(())
    }

    /// Bytes written to the (metadata) archive so far.
    pub fn position(&self) -> u64 {
        self.out.pos
    }

    /// Bytes of the payload stream so far (0 for a v1 archive), including bytes added with
    /// [`Encoder::advance_payload`].
    pub fn payload_position(&self) -> u64 {
        self.payload.as_ref().map_or(0, |p| p.pos)
    }

    /// Counts `bytes` of payload stream that the caller appends itself (for example whole
    /// chunks of a previous snapshot's `.ppxar` that hold reused payloads), so that later
    /// offsets stay right. Only for split archives.
    pub fn advance_payload(&mut self, bytes: u64) -> Result<(), EncodeError> {
        self.begin()?;
        match self.payload.as_mut() {
            Some(p) => {
                p.pos = p.pos.saturating_add(bytes);
                Ok(())
            }
            None => Err(EncodeError::NotSplit {
                name: "(payload stream)".into(),
            }),
        }
    }

    /// Adds a regular file of `size` bytes; the returned writer must receive exactly `size`
    /// bytes before anything else is added.
    pub fn add_file(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        size: u64,
    ) -> Result<FileWriter<'_, W, P>, EncodeError> {
        self.begin()?;
        check_type(name, meta, FileType::Regular, "add_file")?;
        check_metadata(name, meta)?;
        let filename_offset = self.start_child(name)?;
        self.write_metadata(meta)?;
        let payload_header = Header::with_content(format::PAYLOAD, size).to_bytes();
        match self.payload.as_mut() {
            Some(payload) => {
                let r = PayloadRef {
                    offset: payload.pos,
                    size,
                };
                payload.write_all(&payload_header)?;
                self.out.write_item(format::PAYLOAD_REF, &[&r.to_bytes()])?;
            }
            None => self.out.write_all(&payload_header)?,
        }
        self.open_file = Some(OpenFile {
            filename_offset,
            hash: hash_name(name),
            size,
            written: 0,
        });
        Ok(FileWriter {
            enc: self,
            link: LinkOffset(filename_offset),
        })
    }

    /// Adds a regular file whose PAYLOAD item already is (or will be put by the caller) at
    /// `payload_offset` of the payload stream: writes only metadata and a PAYLOAD_REF. Split
    /// archives only.
    pub fn add_file_reused(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        size: u64,
        payload_offset: u64,
    ) -> Result<LinkOffset, EncodeError> {
        self.begin()?;
        if self.payload.is_none() {
            return Err(EncodeError::NotSplit { name: lossy(name) });
        }
        check_type(name, meta, FileType::Regular, "add_file_reused")?;
        check_metadata(name, meta)?;
        let in_stream = payload_offset >= format::PAYLOAD_START_SIZE
            && payload_offset
                .checked_add(format::HEADER_SIZE + size)
                .is_some();
        if !in_stream {
            return Err(EncodeError::PayloadOffset {
                name: lossy(name),
                offset: payload_offset,
                size,
            });
        }
        let filename_offset = self.start_child(name)?;
        self.write_metadata(meta)?;
        let r = PayloadRef {
            offset: payload_offset,
            size,
        };
        self.out.write_item(format::PAYLOAD_REF, &[&r.to_bytes()])?;
        self.end_child(filename_offset, hash_name(name));
        Ok(LinkOffset(filename_offset))
    }

    /// Adds a symbolic link to `target` (non-empty, no NUL, at most 4096 bytes).
    pub fn add_symlink(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        target: &[u8],
    ) -> Result<(), EncodeError> {
        self.begin()?;
        check_type(name, meta, FileType::Symlink, "add_symlink")?;
        check_metadata(name, meta)?;
        if target.is_empty() || target.contains(&0) {
            return Err(EncodeError::InvalidSymlink { name: lossy(name) });
        }
        check_size(name, "the symlink target", target.len(), 4096)?;
        self.add_simple(name, meta, Some((format::SYMLINK, &[target, &[0]])))
    }

    /// Adds a block or character device (the type comes from `meta`).
    pub fn add_device(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        major: u64,
        minor: u64,
    ) -> Result<(), EncodeError> {
        self.begin()?;
        if !meta.file_type().is_some_and(FileType::is_device) {
            return Err(wrong_type(name, meta, "add_device"));
        }
        check_metadata(name, meta)?;
        let dev = Device { major, minor }.to_bytes();
        self.add_simple(name, meta, Some((format::DEVICE, &[&dev])))
    }

    /// Adds a named pipe.
    pub fn add_fifo(&mut self, name: &[u8], meta: &Metadata) -> Result<(), EncodeError> {
        self.begin()?;
        check_type(name, meta, FileType::Fifo, "add_fifo")?;
        check_metadata(name, meta)?;
        self.add_simple(name, meta, None)
    }

    /// Adds a socket.
    pub fn add_socket(&mut self, name: &[u8], meta: &Metadata) -> Result<(), EncodeError> {
        self.begin()?;
        check_type(name, meta, FileType::Socket, "add_socket")?;
        check_metadata(name, meta)?;
        self.add_simple(name, meta, None)
    }

    fn add_simple(
        &mut self,
        name: &[u8],
        meta: &Metadata,
        item: Option<(u64, &[&[u8]])>,
    ) -> Result<(), EncodeError> {
        let filename_offset = self.start_child(name)?;
        self.write_metadata(meta)?;
        if let Some((htype, parts)) = item {
            self.out.write_item(htype, parts)?;
        }
        self.end_child(filename_offset, hash_name(name));
        Ok(())
    }

    /// Adds a hardlink to an earlier file: `target_path` is that file's path relative to the
    /// archive root, `target` the [`LinkOffset`] the encoder returned for it.
    pub fn add_hardlink(
        &mut self,
        name: &[u8],
        target_path: &[u8],
        target: LinkOffset,
    ) -> Result<(), EncodeError> {
        self.begin()?;
        if let Err(reason) = check_relative_path(target_path) {
            return Err(EncodeError::InvalidHardlinkPath {
                name: lossy(name),
                target: lossy(target_path),
                reason,
            });
        }
        let position = self.out.pos;
        if target.0 >= position {
            return Err(EncodeError::HardlinkOffset {
                name: lossy(name),
                target: target.0,
                position,
            });
        }
        let filename_offset = self.start_child(name)?;
        let rel = (filename_offset - target.0).to_le_bytes();
        self.out
            .write_item(format::HARDLINK, &[&rel, target_path, &[0]])?;
        self.end_child(filename_offset, hash_name(name));
        Ok(())
    }

    /// Opens a sub-directory: the following children go into it until
    /// [`Encoder::finish_directory`].
    pub fn create_directory(&mut self, name: &[u8], meta: &Metadata) -> Result<(), EncodeError> {
        self.begin()?;
        check_type(name, meta, FileType::Directory, "create_directory")?;
        check_metadata(name, meta)?;
        let filename_offset = self.start_child(name)?;
        let entry_offset = self.out.pos;
        self.write_metadata(meta)?;
        self.dirs
            .push(Dir::new(entry_offset, filename_offset, hash_name(name)));
        Ok(())
    }

    /// Closes the innermost open sub-directory (writes its goodbye table).
    pub fn finish_directory(&mut self) -> Result<(), EncodeError> {
        self.begin()?;
        if self.dirs.len() < 2 {
            return Err(EncodeError::NoOpenDirectory);
        }
        self.write_goodbye()?;
        if let Some(dir) = self.dirs.pop() {
            self.end_child(dir.filename_offset, dir.hash);
        }
        Ok(())
    }

    /// Closes the root directory, ends the payload stream and flushes; returns the writers.
    pub fn finish(mut self) -> Result<(W, Option<P>), EncodeError> {
        self.begin()?;
        if self.dirs.len() != 1 {
            return Err(EncodeError::UnfinishedDirectories(self.dirs.len() - 1));
        }
        self.write_goodbye()?;
        if let Some(payload) = self.payload.as_mut() {
            payload.write_item(format::PAYLOAD_TAIL_MARKER, &[])?;
            payload.flush()?;
        }
        self.out.flush()?;
        Ok((self.out.inner, self.payload.map(|p| p.inner)))
    }

    /// Common start of every operation: refuses after a failure, completes the open file.
    fn begin(&mut self) -> Result<(), EncodeError> {
        let payload_failed = self.payload.as_ref().is_some_and(|p| p.failed);
        if self.poisoned || self.out.failed || payload_failed {
            return Err(EncodeError::Poisoned);
        }
        if let Some(file) = self.open_file.take() {
            if file.written != file.size {
                self.poisoned = true;
                return Err(EncodeError::IncompleteFile {
                    written: file.written,
                    size: file.size,
                });
            }
            self.end_child(file.filename_offset, file.hash);
        }
        Ok(())
    }

    /// Checks the name and its order, then writes FILENAME; returns the FILENAME offset.
    fn start_child(&mut self, name: &[u8]) -> Result<u64, EncodeError> {
        check_name(name).map_err(|reason| EncodeError::InvalidName {
            name: lossy(name),
            reason,
        })?;
        let dir = self.dirs.last_mut().ok_or(EncodeError::Poisoned)?;
        if let Some(previous) = &dir.last_name {
            if name <= previous.as_slice() {
                return Err(EncodeError::NameOrder {
                    name: lossy(name),
                    previous: lossy(previous),
                });
            }
        }
        dir.last_name = Some(name.to_vec());
        let offset = self.out.pos;
        self.out.write_item(format::FILENAME, &[name, &[0]])?;
        Ok(offset)
    }

    /// Records the child that started at `filename_offset` and ends at the current position.
    fn end_child(&mut self, filename_offset: u64, hash: u64) {
        let size = self.out.pos - filename_offset;
        if let Some(dir) = self.dirs.last_mut() {
            dir.children.push(ChildRecord {
                hash,
                filename_offset,
                size,
                check_size: true,
            });
        }
    }

    fn write_metadata(&mut self, meta: &Metadata) -> Result<(), EncodeError> {
        self.out
            .write_item(format::ENTRY, &[&meta.stat.to_bytes()])?;
        let out = &mut self.out;
        meta.for_each_item(|htype, content| out.write_item(htype, &[content]))
    }

    fn write_goodbye(&mut self) -> Result<(), EncodeError> {
        let goodbye_offset = self.out.pos;
        let dir = self.dirs.last().ok_or(EncodeError::Poisoned)?;
        let table = goodbye::build_table(&dir.children, goodbye_offset, dir.entry_offset);
        self.out.write_item(format::GOODBYE, &[&table])
    }

    /// Writes contents of the open file (called by [`FileWriter`]).
    fn write_contents(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.open_file.as_mut() else {
            return Err(io::Error::other("no open file"));
        };
        if buf.len() as u64 > file.size - file.written {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "file contents exceed the declared size of {} bytes",
                    file.size
                ),
            ));
        }
        file.written += buf.len() as u64;
        let result = match self.payload.as_mut() {
            Some(payload) => payload.write_all(buf),
            None => self.out.write_all(buf),
        };
        result.map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush_contents(&mut self) -> io::Result<()> {
        let result = match self.payload.as_mut() {
            Some(payload) => payload.flush(),
            None => self.out.flush(),
        };
        result.map_err(io::Error::other)
    }
}

/// Receives the contents of a file added with [`Encoder::add_file`]; exactly the declared
/// number of bytes must be written (more is refused, fewer fails the next encoder call).
pub struct FileWriter<'a, W: Write, P: Write> {
    enc: &'a mut Encoder<W, P>,
    link: LinkOffset,
}

impl<W: Write, P: Write> FileWriter<'_, W, P> {
    /// Offset to hand to [`Encoder::add_hardlink`] for links to this file.
    pub fn link_offset(&self) -> LinkOffset {
        self.link
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.enc
            .open_file
            .as_ref()
            .map_or(0, |f| f.size - f.written)
    }

    /// Checks that all contents were written and completes the file.
    pub fn finish(self) -> Result<LinkOffset, EncodeError> {
        self.enc.begin()?;
        Ok(self.link)
    }
}

impl<W: Write, P: Write> Write for FileWriter<'_, W, P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.write_contents(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush_contents()
    }
}

fn wrong_type(name: &[u8], meta: &Metadata, what: &'static str) -> EncodeError {
    EncodeError::WrongType {
        name: lossy(name),
        what,
        mode: meta.stat.mode,
    }
}

fn check_type(
    name: &[u8],
    meta: &Metadata,
    want: FileType,
    what: &'static str,
) -> Result<(), EncodeError> {
    if meta.file_type() == Some(want) {
        Ok(())
    } else {
        Err(wrong_type(name, meta, what))
    }
}

fn check_size(name: &[u8], what: &'static str, len: usize, max: u64) -> Result<(), EncodeError> {
    if len as u64 <= max {
        Ok(())
    } else {
        Err(EncodeError::TooLarge {
            name: lossy(name),
            what,
            len: len as u64,
            max,
        })
    }
}

/// Checks what the items of `meta` can carry: timestamp, xattr names and sizes, fcaps size.
fn check_metadata(name: &[u8], meta: &Metadata) -> Result<(), EncodeError> {
    let nanos = meta.stat.mtime.nanos;
    if nanos >= 1_000_000_000 {
        return Err(EncodeError::InvalidTimestamp {
            name: lossy(name),
            nanos,
        });
    }
    for x in &meta.xattrs {
        if !x.name_is_valid() {
            return Err(EncodeError::InvalidXattrName {
                name: lossy(name),
                xattr: lossy(&x.name),
            });
        }
        let len = x.name.len() + 1 + x.value.len();
        check_size(
            name,
            "an extended attribute",
            len,
            format::MAX_XATTR_CONTENT,
        )?;
    }
    if let Some(f) = &meta.fcaps {
        check_size(
            name,
            "the file capabilities",
            f.len(),
            format::MAX_XATTR_CONTENT,
        )?;
    }
    Ok(())
}
