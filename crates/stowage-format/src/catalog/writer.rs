//! Streaming catalog encoder, driven in archive order.

use std::io::Write;

use super::varint::{encode_signed_varint, encode_varint};
use super::{lossy, CatalogEntryKind, CatalogError, MAGIC, MAX_NAME_LEN};

/// An open directory: its name and the encoded entries seen so far.
///
/// A `d` entry's delta (parent table start − child table start) is only known when the parent
/// ends, so the body holds each `d` entry without its delta and `dirs` remembers where the delta
/// goes and the child's table start.
struct OpenDir {
    name: Vec<u8>,
    count: u64,
    body: Vec<u8>,
    /// (position in `body` where the delta belongs, the child's table start)
    dirs: Vec<(usize, u64)>,
}

impl OpenDir {
    fn new(name: Vec<u8>) -> Self {
        OpenDir {
            name,
            count: 0,
            body: Vec::new(),
            dirs: Vec::new(),
        }
    }

    fn push_head(&mut self, type_byte: u8, name: &[u8]) {
        self.count += 1;
        self.body.push(type_byte);
        encode_varint(name.len() as u64, &mut self.body);
        self.body.extend_from_slice(name);
    }

    /// Encodes this directory's table contents (`varint(count)` and the entries) for a table
    /// starting at `start`.
    fn encode_table(&self, start: u64, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.body.len() + 10 + 3 * self.dirs.len());
        encode_varint(self.count, out);
        let mut from = 0;
        for &(at, child) in &self.dirs {
            out.extend_from_slice(self.body.get(from..at).unwrap_or_default());
            // Children end before their parent starts.
            encode_varint(start - child, out);
            from = at;
        }
        out.extend_from_slice(self.body.get(from..).unwrap_or_default());
    }
}

/// Writes a catalog (`catalog.pcat1`) to `W` as the archives are walked.
///
/// Call [`start_directory`](Self::start_directory) with each archive's stored name
/// (`root.pxar.didx`), then with each directory inside it, add the other entries in between, close
/// every directory with [`end_directory`](Self::end_directory) and end with
/// [`finish`](Self::finish). A directory's table is written when it ends, so memory holds only the
/// entries of the currently open directories.
///
/// After an error the catalog is incomplete; drop the writer.
pub struct CatalogWriter<W: Write> {
    out: W,
    pos: u64,
    /// `stack[0]` is the root table, holding one directory per archive.
    stack: Vec<OpenDir>,
    scratch: Vec<u8>,
}

impl<W: Write> CatalogWriter<W> {
    /// Starts a catalog: writes the magic.
    pub fn new(out: W) -> Result<Self, CatalogError> {
        let mut writer = CatalogWriter {
            out,
            pos: 0,
            stack: vec![OpenDir::new(Vec::new())],
            scratch: Vec::new(),
        };
        writer.write(&MAGIC)?;
        Ok(writer)
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How many directories are open, archives included (0 between archives).
    pub fn depth(&self) -> usize {
        self.stack.len() - 1
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CatalogError> {
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes `dir`'s table at the current position; returns where it starts.
    fn write_table(&mut self, dir: &OpenDir) -> Result<u64, CatalogError> {
        let start = self.pos;
        let mut table = std::mem::take(&mut self.scratch);
        dir.encode_table(start, &mut table);
        let mut len = Vec::with_capacity(10);
        encode_varint(table.len() as u64, &mut len);
        let written = self.write(&len).and_then(|()| self.write(&table));
        self.scratch = table;
        written.map(|()| start)
    }

    /// Opens a directory (at the top level: an archive) inside the current one.
    pub fn start_directory(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        check_name(name)?;
        self.stack.push(OpenDir::new(name.to_vec()));
        Ok(())
    }

    /// Closes the current directory: writes its table and adds it to its parent.
    pub fn end_directory(&mut self) -> Result<(), CatalogError> {
        if self.stack.len() < 2 {
            return Err(CatalogError::NoOpenDirectory);
        }
        let dir = self.stack.pop().ok_or(CatalogError::NoOpenDirectory)?;
        let start = self.write_table(&dir)?;
        let parent = self.stack.last_mut().ok_or(CatalogError::NoOpenDirectory)?;
        parent.push_head(b'd', &dir.name);
        parent.dirs.push((parent.body.len(), start));
        Ok(())
    }

    fn add(&mut self, name: &[u8], kind: CatalogEntryKind) -> Result<(), CatalogError> {
        check_name(name)?;
        if self.stack.len() < 2 {
            return Err(CatalogError::OutsideArchive { name: lossy(name) });
        }
        let dir = self.stack.last_mut().ok_or(CatalogError::NoOpenDirectory)?;
        dir.push_head(kind.type_byte(), name);
        if let CatalogEntryKind::File { size, mtime } = kind {
            encode_varint(size, &mut dir.body);
            encode_signed_varint(mtime, &mut dir.body);
        }
        Ok(())
    }

    /// Adds a regular file: its size in bytes and modification time in seconds since the epoch.
    pub fn add_file(
        &mut self,
        name: &[u8],
        size: u64,
        mtime_secs: i64,
    ) -> Result<(), CatalogError> {
        let kind = CatalogEntryKind::File {
            size,
            mtime: mtime_secs,
        };
        self.add(name, kind)
    }

    /// Adds a symbolic link.
    pub fn add_symlink(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::Symlink)
    }

    /// Adds a hard link (to an entry earlier in the archive).
    pub fn add_hardlink(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::Hardlink)
    }

    /// Adds a block device node.
    pub fn add_block_device(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::BlockDevice)
    }

    /// Adds a character device node.
    pub fn add_char_device(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::CharDevice)
    }

    /// Adds a named pipe.
    pub fn add_fifo(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::Fifo)
    }

    /// Adds a Unix socket.
    pub fn add_socket(&mut self, name: &[u8]) -> Result<(), CatalogError> {
        self.add(name, CatalogEntryKind::Socket)
    }

    /// Writes the root table and its offset, flushes, and gives back the output.
    pub fn finish(mut self) -> Result<W, CatalogError> {
        if self.stack.len() != 1 {
            return Err(CatalogError::Unfinished {
                depth: self.depth(),
            });
        }
        let root = self.stack.pop().ok_or(CatalogError::NoOpenDirectory)?;
        let start = self.write_table(&root)?;
        self.write(&start.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A name must be one non-empty path component that PBS can read back.
fn check_name(name: &[u8]) -> Result<(), CatalogError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 4095 bytes"
    } else if name.contains(&b'/') {
        "contains '/'"
    } else if name.contains(&0) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(CatalogError::BadName {
        name: lossy(name),
        reason,
    })
}
