//! Catalog decoder over the bytes of a whole catalog.

use super::varint::{decode_signed_varint, decode_varint};
use super::{CatalogEntry, CatalogEntryKind, CatalogError, MAGIC, MAX_NAME_LEN};
use crate::pattern::{MatchType, Pattern};

/// Length of the trailing root offset.
const TRAILER_LEN: usize = 8;

/// Reads a catalog held in memory. Every offset and length is checked against the bytes; a
/// corrupt catalog gives a [`CatalogError`], never a panic.
#[derive(Debug, Clone, Copy)]
pub struct CatalogReader<'a> {
    bytes: &'a [u8],
    /// End of the tables: where the trailing root offset starts.
    tables_end: usize,
    root: u64,
}

/// A directory table after parsing: its entries and where it ends.
struct Table<'a> {
    entries: Vec<CatalogEntry<'a>>,
    end: u64,
}

/// Reads varints, bytes and names inside one table, naming absolute offsets in errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    table: u64,
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..self.end).unwrap_or_default()
    }

    fn varint(&mut self) -> Result<u64, CatalogError> {
        let (v, n) = decode_varint(self.rest()).map_err(|source| CatalogError::Varint {
            offset: self.pos as u64,
            source,
        })?;
        self.pos += n;
        Ok(v)
    }

    fn signed_varint(&mut self) -> Result<i64, CatalogError> {
        let (v, n) = decode_signed_varint(self.rest()).map_err(|source| CatalogError::Varint {
            offset: self.pos as u64,
            source,
        })?;
        self.pos += n;
        Ok(v)
    }

    fn take(&mut self, len: u64, entry: usize) -> Result<&'a [u8], CatalogError> {
        let slice = usize::try_from(len)
            .ok()
            .and_then(|len| self.rest().get(..len))
            .ok_or(CatalogError::Truncated {
                table: self.table,
                offset: entry as u64,
            })?;
        self.pos += slice.len();
        Ok(slice)
    }
}

impl<'a> CatalogReader<'a> {
    /// Checks the magic and the root offset, and parses the root table.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CatalogError> {
        if bytes.len() < MAGIC.len() + TRAILER_LEN {
            return Err(CatalogError::TooShort { len: bytes.len() });
        }
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(CatalogError::BadMagic);
        }
        let tables_end = bytes.len() - TRAILER_LEN;
        let mut trailer = [0u8; TRAILER_LEN];
        trailer.copy_from_slice(bytes.get(tables_end..).unwrap_or(&[0; TRAILER_LEN]));
        let reader = CatalogReader {
            bytes,
            tables_end,
            root: u64::from_le_bytes(trailer),
        };
        reader.table(reader.root)?;
        Ok(reader)
    }

    /// Offset of the root table, whose directories are the archives.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The archives of the snapshot: the entries of the root table.
    pub fn archives(&self) -> Result<Vec<CatalogEntry<'a>>, CatalogError> {
        self.read_dir(self.root)
    }

    /// The entries of the directory table at `table` (from [`root`](Self::root) or a
    /// [`CatalogEntryKind::Directory`]), in stored order.
    pub fn read_dir(&self, table: u64) -> Result<Vec<CatalogEntry<'a>>, CatalogError> {
        self.table(table).map(|t| t.entries)
    }

    fn table(&self, table: u64) -> Result<Table<'a>, CatalogError> {
        let out_of_range = CatalogError::TableOffset {
            offset: table,
            end: self.tables_end as u64,
        };
        let start = match usize::try_from(table) {
            Ok(start) if start >= MAGIC.len() && start < self.tables_end => start,
            _ => return Err(out_of_range),
        };
        let mut cur = Cursor {
            bytes: self.bytes,
            table,
            pos: start,
            end: self.tables_end,
        };
        let len = cur.varint()?;
        let room = (self.tables_end - cur.pos) as u64;
        if len == 0 || len > room {
            return Err(CatalogError::TableLength {
                offset: table,
                len,
                room,
            });
        }
        // len <= room, so it fits in usize.
        cur.end = cur.pos + len as usize;
        let count = cur.varint()?;
        // Every entry takes at least two bytes: do not trust `count` for the allocation.
        let mut entries = Vec::with_capacity(count.min(len / 2) as usize);
        for _ in 0..count {
            let at = cur.pos;
            let type_byte = *cur.rest().first().ok_or(CatalogError::Truncated {
                table,
                offset: at as u64,
            })?;
            cur.pos += 1;
            let bad_type = CatalogError::EntryType {
                offset: at as u64,
                byte: type_byte,
            };
            if !b"dflhbcps".contains(&type_byte) {
                return Err(bad_type);
            }
            let name_len = cur.varint()?;
            if name_len > MAX_NAME_LEN as u64 {
                return Err(CatalogError::NameLength {
                    offset: at as u64,
                    len: name_len,
                });
            }
            let name = cur.take(name_len, at)?;
            let kind = match type_byte {
                b'd' => {
                    let delta = cur.varint()?;
                    if delta == 0 || delta > table - MAGIC.len() as u64 {
                        return Err(CatalogError::ChildOffset {
                            offset: at as u64,
                            delta,
                            parent: table,
                        });
                    }
                    CatalogEntryKind::Directory {
                        table: table - delta,
                    }
                }
                b'f' => CatalogEntryKind::File {
                    size: cur.varint()?,
                    mtime: cur.signed_varint()?,
                },
                b'l' => CatalogEntryKind::Symlink,
                b'h' => CatalogEntryKind::Hardlink,
                b'b' => CatalogEntryKind::BlockDevice,
                b'c' => CatalogEntryKind::CharDevice,
                b'p' => CatalogEntryKind::Fifo,
                b's' => CatalogEntryKind::Socket,
                _ => return Err(bad_type),
            };
            entries.push(CatalogEntry { name, kind });
        }
        if cur.pos != cur.end {
            return Err(CatalogError::TrailingBytes {
                table,
                offset: cur.pos as u64,
            });
        }
        Ok(Table {
            entries,
            end: cur.end as u64,
        })
    }

    /// Looks up a `/`-separated path below the root (`root.pxar.didx/etc/hostname`; a leading
    /// `/` and empty components are ignored). The empty path gives the root itself, as a
    /// directory with an empty name. `None` if a component does not exist or is not a directory.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<CatalogEntry<'a>>, CatalogError> {
        let mut current = CatalogEntry {
            name: b"",
            kind: CatalogEntryKind::Directory { table: self.root },
        };
        for component in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let CatalogEntryKind::Directory { table } = current.kind else {
                return Ok(None);
            };
            // Child tables lie strictly before their parent's, so this ends.
            match self
                .read_dir(table)?
                .into_iter()
                .find(|e| e.name == component)
            {
                Some(entry) => current = entry,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// Every entry below the root, depth first in stored order, a directory before its contents,
    /// with its full path (`root.pxar.didx/etc/hostname`, no leading `/`).
    pub fn walk(&self) -> Walk<'a> {
        self.walk_dir(self.root, b"")
    }

    /// Like [`walk`](Self::walk) below the directory table at `table`, prefixing paths with
    /// `path` (the directory's own path, as [`walk`](Self::walk) would give it).
    pub fn walk_dir(&self, table: u64, path: &[u8]) -> Walk<'a> {
        let mut walk = Walk {
            reader: *self,
            stack: Vec::new(),
            path: path.to_vec(),
            error: None,
        };
        match self.table(table) {
            Ok(t) => walk.stack.push(Frame {
                entries: t.entries.into_iter(),
                path_len: path.len(),
                start: table,
                next_low: MAGIC.len() as u64,
            }),
            Err(e) => walk.error = Some(e),
        }
        walk
    }

    /// The entries matching `pattern`, as PBS's `catalog find` matches them (see
    /// [`crate::pattern`]): against the entry's path as [`walk`](Self::walk) gives it with a
    /// `/` in front (`/root.pxar.didx/etc/hosts`), so `hosts` finds every entry of that name,
    /// `/root.pxar.didx/etc/hosts` exactly that one, and `hosts/` only directories. A leading
    /// `!` inverts the pattern: the entries it does not match.
    pub fn find(&self, pattern: &[u8]) -> Result<Find<'a>, CatalogError> {
        Ok(Find {
            pattern: Pattern::parse(pattern, MatchType::Include)?,
            walk: self.walk(),
            path: Vec::new(),
        })
    }
}

/// One open directory of a [`Walk`].
struct Frame<'a> {
    entries: std::vec::IntoIter<CatalogEntry<'a>>,
    /// Length of the directory's own path in `Walk::path`.
    path_len: usize,
    /// Start of the directory's table.
    start: u64,
    /// Where the next child directory's subtree may begin: tables are written children first,
    /// so each child's subtree lies after the previous child's table and before the parent's.
    next_low: u64,
}

/// Depth-first iterator over a catalog; see [`CatalogReader::walk`].
///
/// Memory holds the entries of the directories on the current path. Each directory table must
/// lie after its previous sibling's and before its parent's, as PBS writes them, so no table is
/// visited twice: a cyclic or shared table is an error, and a walk takes time linear in the
/// catalog. After an error the iterator ends.
pub struct Walk<'a> {
    reader: CatalogReader<'a>,
    stack: Vec<Frame<'a>>,
    path: Vec<u8>,
    error: Option<CatalogError>,
}

impl<'a> Iterator for Walk<'a> {
    type Item = Result<(Vec<u8>, CatalogEntry<'a>), CatalogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            self.stack.clear();
            return Some(Err(e));
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some(entry) = frame.entries.next() else {
                self.stack.pop();
                continue;
            };
            self.path.truncate(frame.path_len);
            if frame.path_len > 0 {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(entry.name);
            if let CatalogEntryKind::Directory { table } = entry.kind {
                let child = match self.reader.table(table) {
                    Ok(child) if table >= frame.next_low && child.end <= frame.start => Ok(child),
                    Ok(_) => Err(CatalogError::Nesting {
                        offset: table,
                        parent: frame.start,
                    }),
                    Err(e) => Err(e),
                };
                let child = match child {
                    Ok(child) => child,
                    Err(e) => {
                        self.stack.clear();
                        return Some(Err(e));
                    }
                };
                let low = frame.next_low;
                frame.next_low = child.end;
                self.stack.push(Frame {
                    entries: child.entries.into_iter(),
                    path_len: self.path.len(),
                    start: table,
                    next_low: low,
                });
            }
            return Some(Ok((self.path.clone(), entry)));
        }
    }
}

/// The entries of a walk that a pattern selects; see [`CatalogReader::find`].
pub struct Find<'a> {
    pattern: Pattern,
    walk: Walk<'a>,
    /// The match path of the current entry: `/` and its path.
    path: Vec<u8>,
}

impl<'a> Iterator for Find<'a> {
    type Item = Result<(Vec<u8>, CatalogEntry<'a>), CatalogError>;

    fn next(&mut self) -> Option<Self::Item> {
        let wanted = self.pattern.match_type() == MatchType::Include;
        let (pattern, buf) = (&self.pattern, &mut self.path);
        self.walk.by_ref().find(|item| {
            item.as_ref().map_or(true, |(path, entry)| {
                buf.clear();
                buf.push(b'/');
                buf.extend_from_slice(path);
                let is_dir = entry.table().is_some();
                pattern.matches(buf, is_dir) == wanted
            })
        })
    }
}
