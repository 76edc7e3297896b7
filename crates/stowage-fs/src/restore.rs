//! Restoring entries into a target directory, strictly relative to open directory
//! descriptors, never following a symlink and never writing outside the target, whatever names
//! the archive holds.
//!
//! The [`Restorer`] keeps a stack of open directories mirroring the archive walk. A directory
//! is created (mode 0700, so only the restoring user can use it meanwhile) when entered and gets
//! its metadata when left, after all its children are written.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, makedev, mkdirat, mknodat, Mode, SFlag};
use nix::unistd::{linkat, symlinkat, unlinkat, UnlinkatFlags};
use stowage_archive::format::{check_name, check_relative_path, MAX_PATH_LEN};
use stowage_archive::{FileType, Metadata};

use crate::apply::{self, ApplyCtx, Creator, Node, RestoreStats};
use crate::chattr;
use crate::error::RestoreError;
use crate::parallel::Pool;
use crate::writer::{FileWriter, Incomplete, Target};

/// Restore settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Replace existing files, symlinks and other non-directories (they are unlinked, never
    /// followed or written through) and merge into existing directories. Without it an
    /// existing entry is an error.
    pub overwrite: bool,
}

/// An entered directory, waiting for its metadata.
#[derive(Debug)]
struct OpenDir {
    fd: OwnedFd,
    metadata: Metadata,
    /// Created by this restore below a plain directory: new entries get the creator's group
    /// (no setgid bit passes its group on).
    plain: bool,
}

/// Creates archive entries below a target directory; see the module documentation.
#[derive(Debug)]
pub struct Restorer {
    root: OwnedFd,
    stack: Vec<OpenDir>,
    /// Path of the current directory, relative to the target.
    path: PathBuf,
    options: RestoreOptions,
    ctx: ApplyCtx,
    /// Threads writing file content, if the restore asked for them.
    pool: Option<Pool>,
    creator: Creator,
    /// The target directory passes no group on to new entries (it has no setgid bit).
    root_plain: bool,
    /// Files left incomplete by a failure, removed when the restorer goes.
    incomplete: Incomplete,
    /// Hardlinks made while the writer threads may still be writing their target: (link,
    /// target), both relative to the target directory. A link to a file left incomplete goes
    /// with it.
    links: Vec<(PathBuf, PathBuf)>,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const OPATH_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Restorer {
    /// A restorer writing below the open directory `target`.
    pub fn new(target: OwnedFd, options: RestoreOptions) -> Result<Restorer, RestoreError> {
        let st = fstat(&target).map_err(RestoreError::io(Path::new("."), "stat"))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(RestoreError::io(Path::new("."), "restore into")(
                Errno::ENOTDIR,
            ));
        }
        Ok(Restorer {
            root: target,
            stack: Vec::new(),
            path: PathBuf::new(),
            options,
            ctx: ApplyCtx::new(nix::unistd::geteuid().is_root()),
            pool: None,
            creator: Creator::current(),
            root_plain: st.st_mode & libc::S_ISGID == 0,
            incomplete: Incomplete::default(),
            links: Vec::new(),
        })
    }

    /// File content is written by `threads` threads of its own, in pieces, many files at once
    /// (see [`create_file`](Restorer::create_file)); without this call, by the caller's thread.
    pub fn with_writers(mut self, threads: usize) -> Restorer {
        self.pool = Some(Pool::new(threads, self.ctx.is_root));
        self
    }

    /// A restorer writing below the existing directory `target` (which may itself be reached
    /// through symlinks: the user named it).
    pub fn open(target: &Path, options: RestoreOptions) -> Result<Restorer, RestoreError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = open(target, flags, Mode::empty()).map_err(RestoreError::io(target, "open"))?;
        Restorer::new(fd, options)
    }

    /// What was skipped so far.
    pub fn stats(&self) -> RestoreStats {
        self.ctx.stats
    }

    /// How many directories are entered.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// The current directory, relative to the target (empty at the top).
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory `name` (or, with `overwrite`, reuses an existing one) and makes it
    /// the current directory. Its metadata is applied by [`leave_dir`](Restorer::leave_dir).
    pub fn enter_dir(&mut self, name: &OsStr, metadata: &Metadata) -> Result<(), RestoreError> {
        let path = self.entry_path(name)?;
        let dir = self.cur();
        // A directory this restore makes has no setgid bit of its own; one it merges into may.
        let mut plain = self.cur_plain();
        match mkdirat(dir, name, Mode::S_IRWXU) {
            Ok(()) => {}
            Err(Errno::EEXIST) if self.options.overwrite => {
                if is_dir_at(dir, name, &path)? {
                    plain = false;
                } else {
                    unlink(dir, name, &path)?;
                    mkdirat(dir, name, Mode::S_IRWXU)
                        .map_err(RestoreError::io(&path, "create directory"))?;
                }
            }
            Err(Errno::EEXIST) => return Err(RestoreError::Exists { path }),
            Err(e) => return Err(RestoreError::io(&path, "create directory")(e)),
        }
        // O_NOFOLLOW: a symlink put in place meanwhile is refused (ELOOP), not entered.
        let fd = openat(dir, name, DIR_FLAGS, Mode::empty())
            .map_err(RestoreError::io(&path, "open directory"))?;
        self.stack.push(OpenDir {
            fd,
            metadata: metadata.clone(),
            plain,
        });
        self.path = path;
        Ok(())
    }

    /// Applies the current directory's metadata (owner, mode, xattrs, ACLs, mtime) and returns
    /// to its parent.
    pub fn leave_dir(&mut self) -> Result<(), RestoreError> {
        let Some(dir) = self.stack.pop() else {
            return Err(RestoreError::Unbalanced {
                path: PathBuf::from("."),
                detail: "leave_dir without enter_dir",
            });
        };
        let result = apply::apply(
            Node::Open(dir.fd.as_fd()),
            &dir.metadata,
            &mut self.ctx,
            &self.path,
        );
        self.path.pop();
        result
    }

    /// Creates the regular file `name` and returns the writer of its `size` bytes of content;
    /// [`FileWriter::finish`] applies `metadata`.
    pub fn create_file(
        &mut self,
        name: &OsStr,
        metadata: &Metadata,
        size: u64,
    ) -> Result<FileWriter<'_>, RestoreError> {
        let path = self.entry_path(name)?;
        expect_type(
            metadata,
            &[FileType::Regular],
            "mode (not a regular file)",
            &path,
        )?;
        // O_CREAT | O_EXCL never follows a symlink at the name, not even a dangling one.
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        // Owner and mode are set after the content, unless the new file gets them at once.
        let preset = self.creator.created_as_wanted(metadata, self.cur_plain());
        let mode = match preset {
            Some(bits) => Mode::from_bits_truncate(bits as libc::mode_t),
            None => Mode::S_IRUSR | Mode::S_IWUSR,
        };
        let fd = self.create_with(name, &path, "file", "create", |dir| {
            openat(dir, name, flags, mode)
        })?;
        let early = metadata.stat.flags & chattr::ON_EMPTY_FILE;
        if early != 0 {
            apply::set_flags_on(fd.as_fd(), early, &mut self.ctx, &path)?;
        }
        let target = Target::new(
            File::from(fd),
            path,
            metadata,
            size,
            preset.is_some(),
            &self.incomplete,
        );
        Ok(FileWriter::new(target, &mut self.ctx, self.pool.as_ref()))
    }

    /// Creates the symlink `name` pointing to `target` (which is stored, never followed).
    pub fn symlink(
        &mut self,
        name: &OsStr,
        metadata: &Metadata,
        target: &[u8],
    ) -> Result<(), RestoreError> {
        let path = self.entry_path(name)?;
        expect_type(
            metadata,
            &[FileType::Symlink],
            "mode (not a symlink)",
            &path,
        )?;
        if target.is_empty() || target.len() > MAX_PATH_LEN || target.contains(&0) {
            return Err(RestoreError::Invalid {
                path,
                what: "symlink target (empty, too long or with a NUL byte)",
            });
        }
        let target = OsStr::from_bytes(target);
        self.create_with(name, &path, "symlink", "create symlink", |dir| {
            symlinkat(target, dir, name)
        })?;
        self.apply_special(name, metadata, &path)
    }

    /// Creates the block or character device `name` (the type comes from the mode).
    pub fn device(
        &mut self,
        name: &OsStr,
        metadata: &Metadata,
        major: u64,
        minor: u64,
    ) -> Result<(), RestoreError> {
        let types = [FileType::BlockDevice, FileType::CharDevice];
        let path = self.entry_path(name)?;
        let kind = expect_type(metadata, &types, "mode (not a device)", &path)?;
        self.make_node(name, metadata, kind, makedev(major, minor), path)
    }

    /// Creates the named pipe `name`.
    pub fn fifo(&mut self, name: &OsStr, metadata: &Metadata) -> Result<(), RestoreError> {
        let path = self.entry_path(name)?;
        let kind = expect_type(metadata, &[FileType::Fifo], "mode (not a fifo)", &path)?;
        self.make_node(name, metadata, kind, 0, path)
    }

    /// Creates the unix socket node `name` (nobody listens on it, as after a reboot).
    pub fn socket(&mut self, name: &OsStr, metadata: &Metadata) -> Result<(), RestoreError> {
        let path = self.entry_path(name)?;
        let kind = expect_type(metadata, &[FileType::Socket], "mode (not a socket)", &path)?;
        self.make_node(name, metadata, kind, 0, path)
    }

    /// Creates `name` as a hard link to `target_path`, a path relative to the restore target
    /// (as pxar stores it) that is resolved one component at a time without following
    /// symlinks; a target with an absolute, empty, `.` or `..` component is refused.
    pub fn hardlink(&mut self, name: &OsStr, target_path: &[u8]) -> Result<(), RestoreError> {
        const NOT_RESTORED: &str = "no entry of that path comes before the link in the archive";
        let path = self.entry_path(name)?;
        let bad = |reason: String| RestoreError::BadLinkTarget {
            path: path.clone(),
            target: String::from_utf8_lossy(target_path).into_owned(),
            reason,
        };
        check_relative_path(target_path).map_err(|e| bad(e.to_string()))?;
        let mut parts = target_path.split(|&b| b == b'/').map(OsStr::from_bytes);
        let last = parts.next_back().expect("split yields at least one part");
        let mut parent: Option<OwnedFd> = None;
        for part in parts {
            let at = parent.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let flags = OPATH_FLAGS | OFlag::O_DIRECTORY;
            let next = openat(at, part, flags, Mode::empty()).map_err(|e| match e {
                Errno::ELOOP => bad("it passes through a symlink".into()),
                // O_NOFOLLOW | O_DIRECTORY on a symlink fails with ENOTDIR too.
                Errno::ENOTDIR if is_symlink_at(at, part) => {
                    bad("it passes through a symlink".into())
                }
                Errno::ENOTDIR => bad("it passes through a non-directory".into()),
                Errno::ENOENT => bad(NOT_RESTORED.into()),
                e => RestoreError::io(&path, "resolve the hardlink target of")(e),
            })?;
            parent = Some(next);
        }
        let from = parent.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
        // A target that is not there is the archive's fault, not the restore target's.
        match fstatat(from, last, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => return Err(bad(NOT_RESTORED.into())),
            Err(e) => return Err(RestoreError::io(&path, "resolve the hardlink target of")(e)),
            Ok(_) => {}
        }
        // No AT_SYMLINK_FOLLOW: if the target is a symlink, the link is to the symlink itself.
        self.create_with(name, &path, "hardlink", "create hardlink", |dir| {
            linkat(from, last, dir, name, AtFlags::empty())
        })?;
        if self.pool.is_some() {
            let target = PathBuf::from(OsStr::from_bytes(target_path));
            self.links.push((path, target));
        }
        Ok(())
    }

    /// Ends the restore: every entered directory must have been left. `root_metadata`, if
    /// given, is applied to the target directory itself (as the archive's root entry).
    pub fn finish(
        mut self,
        root_metadata: Option<&Metadata>,
    ) -> Result<RestoreStats, RestoreError> {
        if !self.stack.is_empty() {
            return Err(RestoreError::Unbalanced {
                path: self.path.clone(),
                detail: "finish with directories still entered",
            });
        }
        if let Some(pool) = self.pool.take() {
            pool.join(&mut self.ctx)?;
        }
        for (path, flags) in std::mem::take(&mut self.ctx.deferred_flags) {
            let fd = open_beneath(self.root.as_fd(), &path)?;
            apply::set_flags_on(fd.as_fd(), flags, &mut self.ctx, &path)?;
        }
        if let Some(meta) = root_metadata {
            let node = Node::Open(self.root.as_fd());
            apply::apply(node, meta, &mut self.ctx, Path::new("."))?;
        }
        Ok(self.ctx.stats)
    }

    /// Whether new entries in the current directory get the creator's group.
    fn cur_plain(&self) -> bool {
        self.stack.last().map_or(self.root_plain, |d| d.plain)
    }

    /// The directory new entries go into.
    fn cur(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map_or(self.root.as_fd(), |d| d.fd.as_fd())
    }

    /// Checks that `name` is one normal path component and returns its path for messages.
    fn entry_path(&self, name: &OsStr) -> Result<PathBuf, RestoreError> {
        let path = self.path.join(name);
        match check_name(name.as_bytes()) {
            Ok(()) => Ok(path),
            Err(source) => Err(RestoreError::BadName { path, source }),
        }
    }

    /// Runs `make` in the current directory; on `EEXIST` either fails with
    /// [`RestoreError::Exists`] or, with `overwrite`, unlinks the existing non-directory and
    /// runs `make` once more.
    fn create_with<T>(
        &self,
        name: &OsStr,
        path: &Path,
        what: &'static str,
        op: &'static str,
        make: impl Fn(BorrowedFd<'_>) -> nix::Result<T>,
    ) -> Result<T, RestoreError> {
        let dir = self.cur();
        match make(dir) {
            Err(Errno::EEXIST) if self.options.overwrite => {
                if is_dir_at(dir, name, path)? {
                    return Err(RestoreError::IsDirectory {
                        path: path.to_path_buf(),
                        what,
                    });
                }
                unlink(dir, name, path)?;
                make(dir).map_err(RestoreError::io(path, op))
            }
            Err(Errno::EEXIST) => Err(RestoreError::Exists {
                path: path.to_path_buf(),
            }),
            other => other.map_err(RestoreError::io(path, op)),
        }
    }

    fn make_node(
        &mut self,
        name: &OsStr,
        metadata: &Metadata,
        kind: SFlag,
        dev: libc::dev_t,
        path: PathBuf,
    ) -> Result<(), RestoreError> {
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        self.create_with(name, &path, "special file", "create", |dir| {
            mknodat(dir, name, kind, mode, dev)
        })?;
        self.apply_special(name, metadata, &path)
    }

    /// Applies metadata to a just-created symlink, device, fifo or socket through an `O_PATH`
    /// descriptor (so a swapped-in symlink is never followed).
    fn apply_special(
        &mut self,
        name: &OsStr,
        metadata: &Metadata,
        path: &Path,
    ) -> Result<(), RestoreError> {
        let dir = self
            .stack
            .last()
            .map_or(self.root.as_fd(), |d| d.fd.as_fd());
        let opath = openat(dir, name, OPATH_FLAGS, Mode::empty())
            .map_err(RestoreError::io(path, "open"))?;
        let node = Node::Special {
            dir,
            name,
            opath: opath.as_fd(),
        };
        apply::apply(node, metadata, &mut self.ctx, path)
    }
}

/// Whether `name` in `dir` is a directory (not following a symlink).
fn is_dir_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<bool, RestoreError> {
    let st =
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(RestoreError::io(path, "stat"))?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn unlink(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<(), RestoreError> {
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(RestoreError::io(path, "remove"))
}

/// Checks the file type of `metadata` against what the caller creates (`what` says what the
/// mode should describe); returns the matching `mknod` kind.
fn expect_type(
    metadata: &Metadata,
    allowed: &[FileType],
    what: &'static str,
    path: &Path,
) -> Result<SFlag, RestoreError> {
    match metadata.file_type() {
        Some(ft) if allowed.contains(&ft) => {
            Ok(SFlag::from_bits_truncate(ft.mode_bits() as libc::mode_t))
        }
        _ => Err(RestoreError::Invalid {
            path: path.to_path_buf(),
            what,
        }),
    }
}

/// A restore that ends (failed, or finished with an error) removes the files whose content did
/// not all arrive: whatever it leaves behind is whole.
impl Drop for Restorer {
    fn drop(&mut self) {
        // The writer threads finish first: their files are then all accounted for.
        drop(self.pool.take());
        let mut incomplete = match self.incomplete.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return,
        };
        let linked: Vec<PathBuf> = self
            .links
            .iter()
            .filter(|(_, target)| incomplete.contains(target))
            .map(|(link, _)| link.clone())
            .collect();
        incomplete.extend(linked);
        for path in incomplete {
            let (Some(name), parent) = (path.file_name(), path.parent()) else {
                continue;
            };
            let dir = match parent.filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => match open_beneath(self.root.as_fd(), p) {
                    Ok(fd) => Some(fd),
                    Err(_) => continue, // its directory is gone or moved: nothing to remove
                },
                None => None,
            };
            let at = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            let _ = unlinkat(at, name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Opens the entry at `path` below `root` for reading, refusing any symlink on the way
/// or a path leading out (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
fn open_beneath(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, RestoreError> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| RestoreError::io(path, "open")(Errno::EINVAL))?;
    // SAFETY: an all-zero open_how is valid; the fields set below are plain integers.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `cpath` is NUL-terminated and `how` is valid for its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            cpath.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(RestoreError::io(path, "open")(Errno::last()));
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `name` in `dir` is a symlink (itself, not followed).
fn is_symlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}
