//! Layer 2: the pxar archive format of Proxmox Backup Server, encoded and decoded over bytes.
//!
//! * [`format`](mod@format): type constants, item header, limits, name rules, file types.
//! * [`metadata`]: stat, ACLs, xattrs, devices, grouped in [`Metadata`].
//! * [`encoder`]: a streaming [`Encoder`] over `std::io::Write` (unified v1 or split v2).
//! * [`decoder`]: a sequential [`Decoder`] over `std::io::Read`, driving the I/O-free
//!   [`decode_state::DecodeState`] machine, yielding [`Event`]s.
//! * [`goodbye`]: goodbye-table construction, verification and lookup by name hash.
//!
//! Nothing here touches the file system or starts a thread. Decoders check every length and
//! offset and return an error naming the byte offset, never panic, and never allocate more than
//! the spec's limits allow for one item.

pub mod decode_state;
pub mod decoder;
pub mod encoder;
mod error;
pub mod event;
pub mod format;
pub mod goodbye;
mod links;
pub mod metadata;

pub use decoder::{
    check_payload_header, check_payload_stream, payload_slice, Decoder, DirectoryEnd, Entry,
    EntryKind, Event, Payload,
};
pub use encoder::{Encoder, FileWriter, Format};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use format::{FileType, LinkOffset, NameError, PayloadRef};
pub use goodbye::{GoodbyeError, GoodbyeItem, GoodbyeTable};
pub use links::{HardlinkCheck, HardlinkError};
pub use metadata::{
    Acl, AclDefault, AclGroup, AclGroupObj, AclUser, Device, Metadata, Mtime, Stat, Xattr,
};
