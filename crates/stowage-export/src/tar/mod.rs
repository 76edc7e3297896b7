//! pxar entries as a tar stream that GNU tar restores with all their metadata.
//!
//! Entries go out in archive order as POSIX (ustar + PAX) entries, named by their path relative
//! to the archive root (`./` for the root itself, a trailing `/` on directories). What does not
//! fit a ustar header goes into a PAX `x` entry in front of it:
//!
//! * `path` / `linkpath` for names longer than 100 bytes (raw bytes, as GNU tar reads them);
//! * `mtime` with nanoseconds (and for times before 1970 or past the octal field);
//! * `size`, `uid`, `gid` beyond the octal fields;
//! * `SCHILY.xattr.<name>` for each extended attribute, the file capabilities
//!   (`security.capability`) and the POSIX ACLs in kernel form
//!   (`system.posix_acl_access`/`_default`), so `tar -x --xattrs --xattrs-include='*'` restores
//!   all of them;
//! * `SCHILY.acl.access` / `SCHILY.acl.default` (text form, numeric ids) for `tar -x --acls`.
//!
//! Hardlinks become link entries naming the first path of the file; sockets cannot be in a tar
//! and are skipped (counted in [`TarStats::skipped_sockets`]). Owner names are not written
//! (pxar has none): extract with `--numeric-owner`, or let tar fall back to the numbers.
//!
//! File contents are streamed: inline payloads straight from the [`Decoder`], those of a split
//! archive from a [`PayloadSource`] the caller provides.

mod dir;
mod pax;

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use ::tar::{Builder, EntryType, Header};
use stowage_archive::{
    check_payload_header, Decoder, Entry, EntryKind, Event, FileType, HardlinkCheck, Metadata,
    Payload, PayloadRef,
};
use stowage_fs::posix_acl;

pub use dir::{dir_to_tar, DirTarStats};

use crate::ExportError;
use pax::{PaxRecords, MAX_OCTAL_12, MAX_OCTAL_8};

/// Bytes collected before writing to the output (headers come in 512-byte blocks).
const OUT_BUFFER: usize = 256 << 10;

/// Where the contents of a split archive's files are: its payload stream (`.ppxar`).
pub trait PayloadSource {
    /// A reader over the `r.size` content bytes `r` refers to (after checking the PAYLOAD header
    /// at `r.offset`). Fewer bytes than `r.size` are an error; more are not read.
    fn open(&mut self, r: PayloadRef) -> io::Result<Box<dyn Read + '_>>;
}

/// A payload stream that can be read at any offset: a `.ppxar` file, or one in memory
/// (`Cursor<Vec<u8>>`).
pub struct SeekPayloads<R>(pub R);

impl<R: Read + Seek> PayloadSource for SeekPayloads<R> {
    fn open(&mut self, r: PayloadRef) -> io::Result<Box<dyn Read + '_>> {
        self.0.seek(SeekFrom::Start(r.offset))?;
        let mut header = [0u8; 16];
        self.0.read_exact(&mut header)?;
        check_payload_header(&header, r)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Box::new((&mut self.0).take(r.size)))
    }
}

/// What went into a tar stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TarStats {
    /// Tar entries written (the root `./`, directories, files, links, devices, fifos), not
    /// counting PAX headers.
    pub entries: u64,
    /// Regular files with contents (not hardlinks).
    pub files: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// Sockets left out: a tar cannot hold them.
    pub skipped_sockets: u64,
}

/// Writes the entries `decoder` yields as a tar stream to `out`, ending it with the two zero
/// blocks; returns what went in. A split archive needs its payload stream in `payloads`.
///
/// On an error the stream is left unfinished (no end blocks), so no reader takes it for whole.
/// Pass `&mut w` to keep using `w` (for instance to finish a compressor) afterwards.
pub fn pxar_to_tar<R: Read, W: Write>(
    mut decoder: Decoder<R>,
    mut payloads: Option<&mut dyn PayloadSource>,
    out: W,
) -> Result<TarStats, ExportError> {
    let mut builder = Builder::new(Guarded {
        inner: BufWriter::with_capacity(OUT_BUFFER, out),
        poisoned: false,
    });
    let result = (|| {
        let mut stats = TarStats::default();
        let mut links = HardlinkCheck::new();
        while let Some(event) = decoder.next_event()? {
            if let Event::Entry(entry) = event {
                // A hardlink to anything but an earlier regular file of the archive would make
                // `tar -x` link a file outside the extraction directory, or fail.
                links
                    .check(&entry)
                    .map_err(|e| damaged(&entry.path_bytes(), io::Error::other(e.to_string())))?;
                let source = payloads
                    .as_mut()
                    .map(|p| &mut **p as &mut dyn PayloadSource);
                append_entry(&mut builder, &mut decoder, source, &entry, &mut stats)?;
            }
        }
        Ok(stats)
    })();
    match result {
        Ok(stats) => {
            let end = |source| ExportError::TarWrite {
                entry: "the end of the archive".into(),
                source,
            };
            let buffered = builder.into_inner().map_err(end)?.inner;
            let mut out = buffered.into_inner().map_err(|e| end(e.into_error()))?;
            out.flush().map_err(end)?;
            Ok(stats)
        }
        Err(e) => {
            builder.get_mut().poisoned = true; // dropping the builder must not end the stream
            Err(e)
        }
    }
}

/// The output, refusing writes once poisoned (the builder writes its end blocks when dropped).
struct Guarded<W> {
    inner: W,
    poisoned: bool,
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::other("tar stream abandoned"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `remaining` bytes from `inner`, remembering whether an error was its own.
struct Exact<R> {
    inner: R,
    size: u64,
    remaining: u64,
    failed: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                self.failed = true;
                let got = self.size - self.remaining;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the contents end after {got} of {} bytes", self.size),
                ));
            }
            Ok(n) => n,
            Err(e) => {
                self.failed = e.kind() != io::ErrorKind::Interrupted;
                return Err(e);
            }
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        "./".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

fn append_entry<R: Read, W: Write>(
    builder: &mut Builder<W>,
    decoder: &mut Decoder<R>,
    payloads: Option<&mut dyn PayloadSource>,
    entry: &Entry,
    stats: &mut TarStats,
) -> Result<(), ExportError> {
    let meta = &entry.metadata;
    let (entry_type, size, link): (EntryType, u64, Option<&[u8]>) = match &entry.kind {
        EntryKind::Directory => (EntryType::Directory, 0, None),
        EntryKind::File { size, .. } => (EntryType::Regular, *size, None),
        EntryKind::Symlink { target } => (EntryType::Symlink, 0, Some(target)),
        EntryKind::Device(_) if meta.file_type() == Some(FileType::BlockDevice) => {
            (EntryType::Block, 0, None)
        }
        EntryKind::Device(_) => (EntryType::Char, 0, None),
        EntryKind::Fifo => (EntryType::Fifo, 0, None),
        EntryKind::Hardlink { target_path, .. } => (EntryType::Link, 0, Some(target_path)),
        EntryKind::Socket => {
            stats.skipped_sockets += 1;
            return Ok(());
        }
    };
    let path = entry.path_bytes();
    let mut name = if path.is_empty() {
        b".".to_vec()
    } else {
        path.clone()
    };
    if entry.kind == EntryKind::Directory {
        name.push(b'/');
    }
    let mut header = Header::new_ustar();
    let mut pax = PaxRecords::default();
    header.set_entry_type(entry_type);
    if !pax::put_bytes(&mut header.as_old_mut().name, &name) {
        // The ustar name holds a shortened form for readers that do not know PAX.
        pax::put_bytes(&mut header.as_old_mut().name, &name[..100]);
        pax.add(b"path", &name);
    }
    if let Some(link) = link {
        if header.set_link_name_literal(link).is_err() {
            header
                .set_link_name_literal(&link[..100])
                .map_err(|e| damaged(&path, e))?;
            pax.add(b"linkpath", link);
        }
    }
    if !matches!(entry.kind, EntryKind::Hardlink { .. }) {
        put_metadata(&mut header, &mut pax, meta);
    }
    header.set_size(size);
    if size > MAX_OCTAL_12 {
        pax.add(b"size", size.to_string().as_bytes());
    }
    if let EntryKind::Device(d) = &entry.kind {
        let (major, minor) = match (u32::try_from(d.major), u32::try_from(d.minor)) {
            (Ok(a), Ok(b)) if u64::from(a) <= MAX_OCTAL_8 && u64::from(b) <= MAX_OCTAL_8 => (a, b),
            _ => {
                let why = format!(
                    "device number {}:{} does not fit a tar header",
                    d.major, d.minor
                );
                return Err(damaged(&path, io::Error::other(why)));
            }
        };
        header
            .set_device_major(major)
            .map_err(|e| damaged(&path, e))?;
        header
            .set_device_minor(minor)
            .map_err(|e| damaged(&path, e))?;
    }
    header.set_cksum();

    let write_error = |source| ExportError::TarWrite {
        entry: shown(&path),
        source,
    };
    pax.append_to(builder).map_err(write_error)?;
    stats.entries += 1;
    let EntryKind::File { payload, .. } = &entry.kind else {
        return builder.append(&header, io::empty()).map_err(write_error);
    };
    let source: Box<dyn Read + '_> = match (payload, payloads) {
        (Payload::Inline, _) => Box::new(decoder.payload_reader()),
        (Payload::Ref(r), Some(p)) => p.open(*r).map_err(|source| ExportError::Read {
            what: format!("the contents of {}", shown(&path)),
            source,
        })?,
        (Payload::Ref(_), None) => {
            return Err(ExportError::Usage(
                "a split archive: its payload stream (.ppxar) is needed too".into(),
            ))
        }
    };
    let mut data = Exact {
        inner: source,
        size,
        remaining: size,
        failed: false,
    };
    builder.append(&header, &mut data).map_err(|source| {
        if data.failed {
            ExportError::Read {
                what: format!("the contents of {}", shown(&path)),
                source,
            }
        } else {
            write_error(source)
        }
    })?;
    stats.files += 1;
    stats.bytes += size;
    Ok(())
}

/// Mode, owner, mtime, xattrs, file capabilities and ACLs.
fn put_metadata(header: &mut Header, pax: &mut PaxRecords, meta: &Metadata) {
    let stat = &meta.stat;
    header.set_mode((stat.mode & 0o7777) as u32);
    header.set_uid(u64::from(stat.uid));
    header.set_gid(u64::from(stat.gid));
    if u64::from(stat.uid) > MAX_OCTAL_8 {
        pax.add(b"uid", stat.uid.to_string().as_bytes());
    }
    if u64::from(stat.gid) > MAX_OCTAL_8 {
        pax.add(b"gid", stat.gid.to_string().as_bytes());
    }
    let mtime = stat.mtime;
    let in_field = u64::try_from(mtime.secs)
        .ok()
        .filter(|&s| s <= MAX_OCTAL_12);
    header.set_mtime(in_field.unwrap_or(0));
    if mtime.nanos != 0 || in_field.is_none() {
        pax.add(b"mtime", pax::time(mtime).as_bytes());
    }
    for x in &meta.xattrs {
        pax.add(&pax::xattr_key(&x.name), &x.value);
    }
    if let Some(caps) = &meta.fcaps {
        pax.add(&pax::xattr_key(stowage_fs::CAPABILITY_XATTR), caps);
    }
    if let Some(raw) = posix_acl::access_xattr(stat.mode, &meta.acl) {
        pax.add(&pax::xattr_key(posix_acl::ACCESS_XATTR), &raw);
    }
    if let Some(raw) = posix_acl::default_xattr(&meta.acl) {
        pax.add(&pax::xattr_key(posix_acl::DEFAULT_XATTR), &raw);
    }
    if let Some(text) = pax::acl_access_text(stat.mode, &meta.acl) {
        pax.add(b"SCHILY.acl.access", &text);
    }
    if let Some(text) = pax::acl_default_text(&meta.acl) {
        pax.add(b"SCHILY.acl.default", &text);
    }
}

fn damaged(path: &[u8], e: io::Error) -> ExportError {
    ExportError::Damaged {
        path: std::path::PathBuf::from(shown(path)),
        detail: e.to_string(),
    }
}
