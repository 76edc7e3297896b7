//! The file-system edge of stowage: capture what pxar records about entries of a live file
//! system, and create entries with that metadata on restore.
//!
//! * [`capture()`] and [`read_dir_sorted`]: stat, open, extended attributes, ACLs and file
//!   capabilities of one entry, relative to an open directory.
//! * [`Restorer`]: creates files, directories, symlinks, devices, fifos, sockets and hardlinks
//!   below a target directory, relative to open directories, never following symlinks and
//!   never leaving the target; [`FileWriter`] writes content sparsely.
//! * [`create_archive`]: the walk that encodes a live tree as a pxar archive and its catalog,
//!   with [`Excludes`] (PBS's path patterns and `.pxarexclude` files) and an optional
//!   [`Selection`] (only some paths of the tree).
//! * [`posix_acl`]: conversion between the kernel's ACL xattrs and pxar's ACL items.
//!
//! Everything works on file descriptors, so paths longer than `PATH_MAX` are no problem. Linux
//! only (`O_PATH`, `/proc/self/fd`).

mod apply;
pub mod capture;
mod chattr;
mod create;
mod error;
pub mod exclude;
mod parallel;
pub mod posix_acl;
mod prestat;
pub mod restore;
pub mod select;
mod writer;
mod xattr;

pub use apply::RestoreStats;
pub use capture::{capture, read_dir_sorted, Captured, Recorded};
pub use create::{
    create_archive, create_split_archive, open_root, CreateOptions, CreateStats, PayloadReuse, Warn,
};
pub use error::{CaptureError, CreateError, RestoreError};
pub use exclude::{Excludes, PatternError};
pub use restore::{RestoreOptions, Restorer};
pub use select::{SelectError, Selected, Selection};
pub use writer::FileWriter;
pub use xattr::{is_archived_xattr, CAPABILITY_XATTR};
