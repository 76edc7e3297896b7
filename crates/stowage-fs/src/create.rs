//! Encoding a live directory tree as a pxar archive (and its catalog): the walk.
//!
//! Entries are visited in byte order of their names, depth first, with an explicit stack (no
//! recursion limit) and every file-system call relative to an open directory, so paths deeper
//! than PATH_MAX work. Entries that vanish or cannot be read are reported and skipped; the
//! archive stays valid and the backup completes as "partial".
//!
//! With a [`Selection`], only the selected paths and everything below them go in, with the
//! directories on the way to them (holding nothing else); other entries are not even looked at.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use stowage_archive::{Encoder, FileType, LinkOffset, Metadata, Stat};
use stowage_format::CatalogWriter;

use crate::capture::{
    capture, capture_hinted, capture_recorded, capture_unopened_with, read_fresh_dir_sorted,
    Captured, Recorded,
};
use crate::exclude::Excludes;
use crate::prestat::{DirStats, Prestat};
use crate::select::{Selected, Selection};
use crate::{CaptureError, CreateError};

/// What to leave out of an archive.
#[derive(Default)]
pub struct CreateOptions {
    /// Stay on the file system of the root (with a selection: of each selected path): other
    /// mounts appear as empty directories.
    pub one_file_system: bool,
    /// Patterns from the command line (and, as the walk goes, from `.pxarexclude` files).
    pub excludes: Excludes,
    /// Only these paths (relative to the root) and what is below them; `None` for everything.
    pub selection: Option<Selection>,
}

/// Counts of what went into an archive.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CreateStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub other: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Entries left out by exclude patterns or as virtual file systems.
    pub excluded: u64,
    /// Entries that vanished or could not be read; each was reported.
    pub warnings: u64,
    /// Files unchanged since the previous snapshot whose payload was re-referenced, not read.
    pub reused: u64,
}

/// Receives one line per entry that could not be backed up.
pub type Warn<'a> = &'a mut dyn FnMut(String);

/// File systems that hold no data worth keeping (statfs magic numbers).
const VIRTUAL_FS: &[i64] = &[
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x1cd1,      // devpts
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6462_6720, // debugfs
    0x7363_6673, // securityfs
    0x6165_676c, // pstore
    0xcafe_4a11, // bpf
    0x7472_6163, // tracefs
    0x6573_5543, // fusectl
    0x6265_6570, // configfs
    0x1980_0202, // mqueue
    0x4249_4e4d, // binfmt_misc
    0xde5e_81e4, // efivarfs
    0x9584_58f6, // hugetlbfs
];

/// Local file systems that move a file's `ctime` on with every change of its status: change
/// detection may trust an unchanged `ctime` there (ext4, xfs, btrfs, tmpfs, zfs, f2fs,
/// bcachefs). On others (network and FUSE file systems among them) every entry is read.
const KEEPS_CTIME: &[i64] = &[
    0xef53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683e, // btrfs
    0x0102_1994, // tmpfs
    0x2fc1_2fc1, // zfs
    0xf2f5_2010, // f2fs
    0xca45_1a4e, // bcachefs
];

/// What a directory's file system is, for the walk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FsKind {
    Virtual,
    KeepsCtime,
    Other,
}

fn fs_kind(fd: &OwnedFd) -> FsKind {
    match nix::sys::statfs::fstatfs(fd).map(|s| s.filesystem_type().0) {
        Ok(t) if VIRTUAL_FS.contains(&t) => FsKind::Virtual,
        Ok(t) if KEEPS_CTIME.contains(&t) => FsKind::KeepsCtime,
        _ => FsKind::Other,
    }
}

/// Where a directory of the walk lies: the device `one_file_system` keeps to, its own device (a
/// subdirectory on another one is a mount point, whose file system is checked; one on the same
/// device has this one's), and whether that file system keeps `ctime`.
#[derive(Clone, Copy)]
struct FrameFs {
    dev: u64,
    own_dev: u64,
    ctime_kept: bool,
}

struct Frame {
    /// `None` for a directory whose contents are left out.
    fd: Option<Arc<OwnedFd>>,
    /// The stats a helper takes of its regular files ahead of the walker (change detection).
    stats: Option<Arc<DirStats>>,
    /// Entries, sorted, with the type the listing gave for files and directories.
    names: Vec<(OsString, Option<FileType>)>,
    next: usize,
    /// Path of this directory relative to the archive root ("" for the root).
    path: Vec<u8>,
    /// Number of exclude rules before this directory's `.pxarexclude` was read.
    rules_before: usize,
    /// Whether this directory is selected whole (always, without a selection); if not, it is an
    /// ancestor of selected paths and each of its entries is decided by the selection.
    inside: bool,
    /// Its device, file system, and the device `one_file_system` keeps to below it.
    fs: FrameFs,
}

/// Where an entry stands in the walk.
#[derive(Clone, Copy)]
enum Place {
    /// A directory on the way to selected paths.
    Ancestor,
    /// A selected path itself: the top of a selected tree.
    Top,
    /// Below a selected directory (or the root, without a selection) on this device.
    Below(u64),
}

/// Metadata change detection for split archives: re-references the payload of a file that is
/// unchanged since the previous snapshot instead of reading it again.
pub trait PayloadReuse {
    /// If the previous snapshot holds `path` with the same metadata and size, puts its payload
    /// into the payload stream (by appending, by reference, the previous chunks that hold it) and
    /// returns its offset in the new payload stream and the number of bytes appended to it.
    /// `payload_position` is the new payload stream's length so far.
    fn reuse(
        &mut self,
        path: &[u8],
        metadata: &Metadata,
        size: u64,
        payload_position: u64,
    ) -> std::io::Result<Option<(u64, u64)>>;

    /// A new file's payload is about to be written: a good place for a chunk boundary.
    fn new_payload(&mut self);

    /// When the previous snapshot was taken (Unix seconds): a file whose status changed since
    /// then is captured from an open descriptor (its inode flags, say, only that shows).
    fn previous_time(&self) -> Option<i64> {
        None
    }

    /// What the previous snapshot recorded of the directory or symlink `path`, if it holds one
    /// of type `file_type` whose stat (mode, owner, mtime) equals `stat`.
    fn recorded(&mut self, _path: &[u8], _file_type: FileType, _stat: &Stat) -> Option<Recorded> {
        None
    }
}

struct Walk<'a, W: Write, P: Write, C: Write> {
    encoder: &'a mut Encoder<W, P>,
    catalog: Option<&'a mut CatalogWriter<C>>,
    reuse: Option<&'a mut dyn PayloadReuse>,
    options: &'a mut CreateOptions,
    warn: Warn<'a>,
    stats: CreateStats,
    root_dev: u64,
    links: HashMap<(u64, u64), (Vec<u8>, LinkOffset)>,
    buf: Vec<u8>,
    /// With change detection: stats files ahead of the walker on another thread.
    prestat: Option<Prestat>,
}

/// Opens the root of a backup and captures its metadata, for [`Encoder::new`].
pub fn open_root(root: &Path) -> Result<Captured, CreateError> {
    let fail = |why: String| CreateError::Root {
        path: root.to_path_buf(),
        why,
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = nix::fcntl::open(root, flags, Mode::empty()).map_err(|e| fail(e.desc().into()))?;
    capture(dir.as_fd(), OsStr::new(".")).map_err(|e| fail(e.to_string()))
}

/// Walks the tree below `root` (from [`open_root`]) into `encoder` and, if given, `catalog`
/// (whose archive directory the caller has opened). The caller finishes both.
pub fn create_archive<W: Write, P: Write, C: Write>(
    root: Captured,
    encoder: &mut Encoder<W, P>,
    catalog: Option<&mut CatalogWriter<C>>,
    options: &mut CreateOptions,
    warn: Warn<'_>,
) -> Result<CreateStats, CreateError> {
    create_split_archive(root, encoder, catalog, options, warn, None)
}

/// [`create_archive`] for a split archive, re-using unchanged payloads through `reuse`.
pub fn create_split_archive<'a, W: Write, P: Write, C: Write>(
    root: Captured,
    encoder: &'a mut Encoder<W, P>,
    catalog: Option<&'a mut CatalogWriter<C>>,
    options: &'a mut CreateOptions,
    warn: Warn<'a>,
    reuse: Option<&'a mut dyn PayloadReuse>,
) -> Result<CreateStats, CreateError> {
    let root_dev = root.dev;
    let Some(fd) = root.fd else {
        return Err(CreateError::Root {
            path: ".".into(),
            why: "not a directory".into(),
        });
    };
    // Only where files are only stat'ed: change detection that may trust `ctime`s.
    let prestat = reuse
        .as_ref()
        .and_then(|r| r.previous_time())
        .map(|_| Prestat::start());
    let mut walk = Walk {
        prestat,
        encoder,
        catalog,
        reuse,
        options,
        warn,
        stats: CreateStats::default(),
        root_dev,
        links: HashMap::new(),
        buf: vec![0; 1 << 20],
    };
    walk.run(fd)?;
    Ok(walk.stats)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl<W: Write, P: Write, C: Write> Walk<'_, W, P, C> {
    fn run(&mut self, root: OwnedFd) -> Result<(), CreateError> {
        self.stats.directories += 1;
        let inside = match &self.options.selection {
            None => true,
            Some(s) => s.decide(b"") == Selected::Inside,
        };
        let root_dev = self.root_dev;
        let kind = fs_kind(&root);
        let fs = FrameFs {
            dev: root_dev,
            // Below a virtual root every directory is checked, as below a mount point.
            own_dev: match kind {
                FsKind::Virtual => u64::MAX,
                _ => root_dev,
            },
            ctime_kept: kind == FsKind::KeepsCtime,
        };
        let mut stack = vec![self.open_frame(root, Vec::new(), inside, fs)];
        while let Some(frame) = stack.last_mut() {
            // Each name is used once, in order: taken out rather than copied.
            let Some((name, hint)) = frame.names.get_mut(frame.next).map(std::mem::take) else {
                let done = stack.pop();
                if let Some(done) = done {
                    self.options.excludes.truncate(done.rules_before);
                    if let Some(stats) = done.stats {
                        stats.finish();
                    }
                }
                if !stack.is_empty() {
                    self.encoder.finish_directory()?;
                    if let Some(c) = self.catalog.as_deref_mut() {
                        c.end_directory()?;
                    }
                }
                continue;
            };
            let index = frame.next;
            frame.next += 1;
            let path = join(&frame.path, name.as_bytes());
            let Some(dir) = frame.fd.as_ref() else {
                continue;
            };
            let place = match (frame.inside, &self.options.selection) {
                (true, _) | (false, None) => Place::Below(frame.fs.dev),
                (false, Some(selection)) => match selection.decide(&path) {
                    Selected::Inside => Place::Top,
                    Selected::Ancestor => Place::Ancestor,
                    Selected::Outside => continue,
                },
            };
            let done = frame.stats.as_ref().and_then(|s| s.take(index));
            let trust = frame.fs.ctime_kept;
            let captured = self.capture_entry(dir.as_fd(), &name, (hint, trust), &path, done);
            let captured = match captured {
                Ok(c) => c,
                Err(e) => {
                    let parent = Path::new(OsStr::from_bytes(&frame.path));
                    self.warning(e.with_parent(parent).to_string());
                    continue;
                }
            };
            let entry = (path, captured, place, frame.fs);
            if let Some(child) = self.add_entry(dir.as_fd(), &name, entry)? {
                stack.push(child);
            }
        }
        Ok(())
    }

    /// Captures one entry. With change detection on a file system that keeps `ctime` (`trust`),
    /// a file is only stat'ed until it must be read (`done`: the stat a helper already took), and
    /// an unchanged directory or symlink takes what the previous snapshot recorded of it instead
    /// of reading its attributes again.
    fn capture_entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        (hint, trust): (Option<FileType>, bool),
        path: &[u8],
        done: Option<crate::prestat::Stat>,
    ) -> Result<Captured, CaptureError> {
        let Some(reuse) = self.reuse.as_deref_mut() else {
            return capture_hinted(dir, name, hint);
        };
        let since = reuse.previous_time().filter(|_| trust);
        match (hint, since) {
            (Some(FileType::Directory | FileType::Symlink), Some(since)) => {
                let mut previous = |t: FileType, stat: &Stat| reuse.recorded(path, t, stat);
                capture_recorded(dir, name, hint, since, &mut previous)
            }
            _ => capture_unopened_with(dir, name, hint, since, done),
        }
    }

    fn warning(&mut self, message: String) {
        self.stats.warnings += 1;
        (self.warn)(message);
    }

    /// Reads a directory's names (and its `.pxarexclude`) for the walk.
    fn open_frame(&mut self, fd: OwnedFd, path: Vec<u8>, inside: bool, fs: FrameFs) -> Frame {
        let rules_before = self.options.excludes.len();
        let names = match read_fresh_dir_sorted(fd.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                self.warning(format!("{}/: {e}", String::from_utf8_lossy(&path)));
                Vec::new()
            }
        };
        if names.iter().any(|(n, _)| n.as_bytes() == b".pxarexclude") {
            self.read_exclude_file(&fd, &path);
        }
        let fd = Arc::new(fd);
        let stats = self
            .prestat
            .as_ref()
            .map(|p| p.directory(fd.clone(), &names));
        Frame {
            fd: Some(fd),
            stats,
            names,
            next: 0,
            path,
            rules_before,
            inside,
            fs,
        }
    }

    fn read_exclude_file(&mut self, dir: &OwnedFd, path: &[u8]) {
        let name = OsString::from(".pxarexclude");
        let result = capture(dir.as_fd(), &name).and_then(|c| {
            let mut text = Vec::new();
            if let Some(fd) = c.fd {
                let read = std::fs::File::from(fd).take(1 << 20).read_to_end(&mut text);
                read.map_err(|source| crate::CaptureError::Io {
                    path: Path::new(".pxarexclude").to_path_buf(),
                    op: "read",
                    source,
                })?;
            }
            Ok(text)
        });
        match result {
            Ok(text) => {
                for e in self.options.excludes.add_file(path, &text) {
                    self.warning(format!(
                        "{}/.pxarexclude: {e}",
                        String::from_utf8_lossy(path)
                    ));
                }
            }
            Err(e) => self.warning(format!(
                "{}/.pxarexclude: {e}",
                String::from_utf8_lossy(path)
            )),
        }
    }

    /// Adds one entry; returns the frame to descend into for a directory.
    /// Adds one entry: its path, what was captured of it, where it stands in the walk, and where
    /// its directory lies.
    fn add_entry(
        &mut self,
        dir: BorrowedFd<'_>,
        os_name: &OsStr,
        (path, c, place, parent): (Vec<u8>, Captured, Place, FrameFs),
    ) -> Result<Option<Frame>, CreateError> {
        let name = os_name.as_bytes();
        let is_dir = c.file_type == FileType::Directory;
        if matches!(place, Place::Ancestor) && !is_dir {
            // Selected paths are below it: as it is no directory, they do not exist.
            return Ok(None);
        }
        if self.options.excludes.is_excluded(&path, is_dir) {
            self.stats.excluded += 1;
            return Ok(None);
        }
        let meta = &c.metadata;
        match c.file_type {
            FileType::Directory => {
                self.stats.directories += 1;
                self.encoder.create_directory(name, meta)?;
                if let Some(cat) = self.catalog.as_deref_mut() {
                    cat.start_directory(name)?;
                }
                let Some(fd) = c.fd else {
                    return Ok(Some(self.empty_frame(path)));
                };
                let (inside, dev) = match place {
                    Place::Ancestor => (false, c.dev),
                    Place::Top => (true, c.dev),
                    Place::Below(dev) => (true, dev),
                };
                let foreign = inside && self.options.one_file_system && c.dev != dev;
                let kind = match c.dev == parent.own_dev {
                    true => None, // the parent's file system
                    false => Some(fs_kind(&fd)),
                };
                if foreign || kind == Some(FsKind::Virtual) {
                    self.stats.excluded += 1;
                    return Ok(Some(self.empty_frame(path)));
                }
                let fs = FrameFs {
                    dev,
                    own_dev: c.dev,
                    ctime_kept: kind.map_or(parent.ctime_kept, |k| k == FsKind::KeepsCtime),
                };
                return Ok(Some(self.open_frame(fd, path, inside, fs)));
            }
            FileType::Regular => self.add_file(dir, os_name, path, c)?,
            FileType::Symlink => {
                self.stats.symlinks += 1;
                let target = c.symlink_target.as_deref().unwrap_or_default();
                self.encoder.add_symlink(name, meta, target)?;
                self.catalog_add(|cat| cat.add_symlink(name))?;
            }
            FileType::BlockDevice | FileType::CharDevice => {
                self.stats.other += 1;
                let dev = c.device.unwrap_or_default();
                self.encoder.add_device(name, meta, dev.major, dev.minor)?;
                if c.file_type == FileType::BlockDevice {
                    self.catalog_add(|cat| cat.add_block_device(name))?;
                } else {
                    self.catalog_add(|cat| cat.add_char_device(name))?;
                }
            }
            FileType::Fifo => {
                self.stats.other += 1;
                self.encoder.add_fifo(name, meta)?;
                self.catalog_add(|cat| cat.add_fifo(name))?;
            }
            FileType::Socket => {
                self.stats.other += 1;
                self.encoder.add_socket(name, meta)?;
                self.catalog_add(|cat| cat.add_socket(name))?;
            }
        }
        Ok(None)
    }

    /// A directory whose contents are left out (another file system, a virtual one).
    fn empty_frame(&self, path: Vec<u8>) -> Frame {
        Frame {
            fd: None,
            stats: None,
            names: Vec::new(),
            next: 0,
            path,
            rules_before: self.options.excludes.len(),
            inside: true,
            fs: FrameFs {
                dev: self.root_dev,
                own_dev: self.root_dev,
                ctime_kept: false,
            },
        }
    }

    fn catalog_add(
        &mut self,
        f: impl FnOnce(&mut CatalogWriter<C>) -> Result<(), stowage_format::CatalogError>,
    ) -> Result<(), CreateError> {
        if let Some(cat) = self.catalog.as_deref_mut() {
            f(cat)?;
        }
        Ok(())
    }

    /// With change detection, re-references the payload of a file unchanged since the previous
    /// snapshot and returns `None`; otherwise gives the capture back.
    fn try_reuse(
        &mut self,
        name: &[u8],
        path: &[u8],
        c: Captured,
    ) -> Result<Option<Captured>, CreateError> {
        let Some(reuse) = self.reuse.as_deref_mut() else {
            return Ok(Some(c));
        };
        let (size, position) = (c.size, self.encoder.payload_position());
        let Some((offset, appended)) = reuse
            .reuse(path, &c.metadata, size, position)
            .map_err(CreateError::Write)?
        else {
            return Ok(Some(c));
        };
        self.encoder.advance_payload(appended)?;
        let link = self
            .encoder
            .add_file_reused(name, &c.metadata, size, offset)?;
        self.stats.reused += 1;
        self.stats.bytes += size;
        self.catalog_add(|cat| cat.add_file(name, size, c.metadata.stat.mtime.secs))?;
        if c.nlink > 1 {
            self.links.insert((c.dev, c.ino), (path.to_vec(), link));
        }
        Ok(None)
    }

    fn add_file(
        &mut self,
        dir: BorrowedFd<'_>,
        os_name: &OsStr,
        path: Vec<u8>,
        c: Captured,
    ) -> Result<(), CreateError> {
        let name = os_name.as_bytes();
        if c.nlink > 1 {
            if let Some((target, offset)) = self.links.get(&(c.dev, c.ino)) {
                let (target, offset) = (target.clone(), *offset);
                self.stats.hardlinks += 1;
                self.encoder.add_hardlink(name, &target, offset)?;
                return self.catalog_add(|cat| cat.add_hardlink(name));
            }
        }
        self.stats.files += 1;
        let Some(c) = self.try_reuse(name, &path, c)? else {
            return Ok(());
        };
        let c = match c.fd {
            Some(_) => c,
            // Only stat'ed so far (see `capture_unopened_with`): open it, take what it is now, and
            // ask again (its inode flags, say, only the open file shows).
            None => match capture_hinted(dir, os_name, Some(FileType::Regular)) {
                Ok(now) if now.file_type == FileType::Regular => {
                    match self.try_reuse(name, &path, now)? {
                        Some(now) => now,
                        None => return Ok(()),
                    }
                }
                Ok(_) => {
                    self.stats.files -= 1;
                    self.warning(format!(
                        "{}: changed type while being backed up; left out",
                        String::from_utf8_lossy(&path)
                    ));
                    return Ok(());
                }
                Err(e) => {
                    self.stats.files -= 1;
                    let parent = Path::new(OsStr::from_bytes(&path)).parent();
                    self.warning(e.with_parent(parent.unwrap_or(Path::new(""))).to_string());
                    return Ok(());
                }
            },
        };
        if let Some(reuse) = self.reuse.as_deref_mut() {
            reuse.new_payload();
        }
        let size = c.size;
        let mut writer = self.encoder.add_file(name, &c.metadata, size)?;
        let link = writer.link_offset();
        let mut copied = 0u64;
        let mut failure = None;
        if let Some(fd) = c.fd {
            let mut file = std::fs::File::from(fd);
            while copied < size {
                let want = (size - copied).min(self.buf.len() as u64) as usize;
                match file.read(&mut self.buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => {
                        writer
                            .write_all(&self.buf[..n])
                            .map_err(CreateError::Write)?;
                        copied += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        if copied < size {
            // The archive promised `size` bytes: fill with zeros and say so.
            self.buf[..].fill(0);
            while copied < size {
                let n = (size - copied).min(self.buf.len() as u64) as usize;
                writer
                    .write_all(&self.buf[..n])
                    .map_err(CreateError::Write)?;
                copied += n as u64;
            }
            writer.finish()?;
            let why = failure.unwrap_or_else(|| "it shrank while being read".into());
            self.warning(format!(
                "{}: {why}; the rest of its {size} bytes was stored as zeros",
                String::from_utf8_lossy(&path)
            ));
        } else {
            writer.finish()?;
        }
        self.stats.bytes += size;
        self.catalog_add(|cat| cat.add_file(name, size, c.metadata.stat.mtime.secs))?;
        if c.nlink > 1 {
            self.links.insert((c.dev, c.ino), (path, link));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use stowage_archive::Format;
    use stowage_format::CatalogReader;

    use super::*;

    /// A small tree: `etc/{hosts,hosts.allow,passwd,crontab,pve/a.cfg,pve/nodes/n1/host.fw}`,
    /// `root/{other,.ssh/authorized_keys}`, `usr/bin/ls`, an empty `var` and `link -> etc`.
    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::Builder::new()
            .prefix("stowage-fs-select-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let root = tmp.path();
        for dir in ["etc/pve/nodes/n1", "root/.ssh", "usr/bin", "var"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "etc/hosts",
            "etc/hosts.allow",
            "etc/passwd",
            "etc/crontab",
            "etc/pve/a.cfg",
            "etc/pve/nodes/n1/host.fw",
            "root/other",
            "root/.ssh/authorized_keys",
            "usr/bin/ls",
        ] {
            fs::write(root.join(file), file).unwrap();
        }
        symlink("etc", root.join("link")).unwrap();
        tmp
    }

    /// The paths an archive of `root` holds (from its catalog), and the walk's counts.
    fn walk(root: &Path, options: &mut CreateOptions) -> (Vec<String>, CreateStats) {
        let captured = open_root(root).unwrap();
        let mut encoder = Encoder::new(Vec::new(), Format::unified(), &captured.metadata).unwrap();
        let mut catalog = CatalogWriter::new(Vec::new()).unwrap();
        catalog.start_directory(b"t.pxar.didx").unwrap();
        let mut warnings = Vec::new();
        let mut warn = |m: String| warnings.push(m);
        let stats = create_archive(
            captured,
            &mut encoder,
            Some(&mut catalog),
            options,
            &mut warn,
        )
        .unwrap();
        encoder.finish().unwrap();
        catalog.end_directory().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let bytes = catalog.finish().unwrap();
        let paths = CatalogReader::new(&bytes)
            .unwrap()
            .walk()
            .map(|item| String::from_utf8(item.unwrap().0).unwrap())
            .filter_map(|p| p.strip_prefix("t.pxar.didx/").map(str::to_string))
            .collect();
        (paths, stats)
    }

    fn selecting(paths: &[&str]) -> CreateOptions {
        let mut selection = Selection::new();
        for p in paths {
            selection.add(p.as_bytes()).unwrap();
        }
        CreateOptions {
            selection: Some(selection),
            ..CreateOptions::default()
        }
    }

    #[test]
    fn a_selection_keeps_selected_paths_their_contents_and_ancestors() {
        let tmp = tree();
        let mut options = selecting(&[
            "/etc/hosts",
            "etc/pve",
            "root/.ssh",
            // Missing, below a file, below a symlink: nothing.
            "missing/x",
            "etc/crontab/x",
            "link/hosts",
        ]);
        let (paths, stats) = walk(tmp.path(), &mut options);
        let expected = [
            "etc",
            "etc/hosts",
            "etc/pve",
            "etc/pve/a.cfg",
            "etc/pve/nodes",
            "etc/pve/nodes/n1",
            "etc/pve/nodes/n1/host.fw",
            "root",
            "root/.ssh",
            "root/.ssh/authorized_keys",
        ];
        assert_eq!(paths, expected);
        assert_eq!((stats.files, stats.directories), (4, 7));
        assert_eq!((stats.excluded, stats.warnings), (0, 0));
    }

    #[test]
    fn excludes_apply_inside_a_selection() {
        let tmp = tree();
        let mut options = selecting(&["etc/pve", "etc/hosts"]);
        options.excludes.add(b"/etc/pve/nodes").unwrap();
        options.excludes.add(b"hosts").unwrap();
        let (paths, stats) = walk(tmp.path(), &mut options);
        assert_eq!(paths, ["etc", "etc/pve", "etc/pve/a.cfg"]);
        assert_eq!(stats.excluded, 2);
    }

    #[test]
    fn selected_symlinks_and_files_are_kept_as_they_are() {
        let tmp = tree();
        let (paths, stats) = walk(tmp.path(), &mut selecting(&["link", "usr/bin/ls"]));
        assert_eq!(paths, ["link", "usr", "usr/bin", "usr/bin/ls"]);
        assert_eq!((stats.files, stats.symlinks), (1, 1));
    }

    #[test]
    fn selecting_the_root_or_nothing() {
        let tmp = tree();
        let (all, _) = walk(tmp.path(), &mut CreateOptions::default());
        assert_eq!(all.len(), 19, "{all:?}");
        let (root, _) = walk(tmp.path(), &mut selecting(&["/", "etc/hosts"]));
        assert_eq!(root, all);
        let (none, stats) = walk(tmp.path(), &mut selecting(&[]));
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(stats.directories, 1);
    }
}
