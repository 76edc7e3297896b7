//! The frozen vocabulary of pxar (spec §7.1–7.3): item type constants, the 16-byte item header,
//! size limits, file-name rules and file-type bits.
//!
//! The metadata structures carried by items (stat, ACLs, xattrs, ...) live in
//! [`crate::metadata`]; this module holds what every item shares.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

/// SipHash-2-4 key 0: the first 16 hex digits of SHA-1("PROXMOX ARCHIVE FORMAT").
pub const HASH_KEY_0: u64 = 0x83ac_3f1c_fbb4_50db;
/// SipHash-2-4 key 1: the next 16 hex digits of SHA-1("PROXMOX ARCHIVE FORMAT").
pub const HASH_KEY_1: u64 = 0xaa4f_1b68_7936_9fbd;

/// `__PROXMOX_FORMAT_VERSION__`: u64 version, only written by v2 archives (value 2).
pub const FORMAT_VERSION: u64 = 0x730f_6c75_df16_a40d;
/// `__PROXMOX_FORMAT_ENTRY_V2__`: the 40-byte stat.
pub const ENTRY: u64 = 0xd595_6474_e588_acef;
/// `__PROXMOX_FORMAT_ENTRY__`: the legacy 32-byte stat (read only).
pub const ENTRY_V1: u64 = 0x11da_850a_1c1c_ceff;
/// `__PROXMOX_FORMAT_PRELUDE__`: arbitrary bytes after the version item (v2 only).
pub const PRELUDE: u64 = 0xe309_d79d_9f7b_771b;
/// `__PROXMOX_FORMAT_FILENAME__`: name bytes + NUL.
pub const FILENAME: u64 = 0x1670_1121_0639_17b3;
/// `__PROXMOX_FORMAT_SYMLINK__`: target bytes + NUL.
pub const SYMLINK: u64 = 0x27f9_71e7_dbf5_dc5f;
/// `__PROXMOX_FORMAT_DEVICE__`: major u64, minor u64.
pub const DEVICE: u64 = 0x9fc9_e906_586d_5ce9;
/// `__PROXMOX_FORMAT_XATTR__`: name + NUL + value.
pub const XATTR: u64 = 0x0dab_0229_b57d_cd03;
/// `__PROXMOX_FORMAT_ACL_USER__`: uid u64, perms u64.
pub const ACL_USER: u64 = 0x2ce8_540a_457d_55b8;
/// `__PROXMOX_FORMAT_ACL_GROUP__`: gid u64, perms u64.
pub const ACL_GROUP: u64 = 0x136e_3ece_b04c_03ab;
/// `__PROXMOX_FORMAT_ACL_GROUP_OBJ__`: perms u64.
pub const ACL_GROUP_OBJ: u64 = 0x1086_8031_e958_2876;
/// `__PROXMOX_FORMAT_ACL_DEFAULT__`: user_obj, group_obj, other, mask perms.
pub const ACL_DEFAULT: u64 = 0xbbbb_1341_5a68_96f5;
/// `__PROXMOX_FORMAT_ACL_DEFAULT_USER__`: uid u64, perms u64.
pub const ACL_DEFAULT_USER: u64 = 0xc893_57b4_0532_cd1f;
/// `__PROXMOX_FORMAT_ACL_DEFAULT_GROUP__`: gid u64, perms u64.
pub const ACL_DEFAULT_GROUP: u64 = 0xf90a_8a58_1603_8ffe;
/// `__PROXMOX_FORMAT_FCAPS__`: raw `security.capability` value.
pub const FCAPS: u64 = 0x2da9_dd9d_b5f7_fb67;
/// `__PROXMOX_FORMAT_QUOTA_PROJID__`: u64 project id.
pub const QUOTA_PROJID: u64 = 0xe075_40e8_2f7d_1cbb;
/// `__PROXMOX_FORMAT_HARDLINK__`: u64 relative offset + target path + NUL.
pub const HARDLINK: u64 = 0x5126_9c84_22bd_7275;
/// `__PROXMOX_FORMAT_PXAR_PAYLOAD__`: file contents.
pub const PAYLOAD: u64 = 0x2814_7a1b_0b7c_1a25;
/// `__PROXMOX_FORMAT_PXAR_PAYLOAD_REF__`: payload-stream offset u64, size u64.
pub const PAYLOAD_REF: u64 = 0x419d_3d6b_c4ba_977e;
/// `__PROXMOX_FORMAT_GOODBYE__`: the goodbye table of a directory.
pub const GOODBYE: u64 = 0x2fec_4fa6_42d5_731d;
/// `__PROXMOX_FORMAT_PXAR_GOODBYE_TAIL_MARKER__`: hash of the last goodbye item.
pub const GOODBYE_TAIL_MARKER: u64 = 0xef5e_ed5b_753e_1555;
/// `__PROXMOX_FORMAT_PXAR_PAYLOAD_START_MARKER__`: first item of a `.ppxar`.
pub const PAYLOAD_START_MARKER: u64 = 0x834c_68c2_194a_4ed2;
/// `__PROXMOX_FORMAT_PXAR_PAYLOAD_TAIL_MARKER__`: last item of a `.ppxar`.
pub const PAYLOAD_TAIL_MARKER: u64 = 0x6c72_b78b_984c_81b5;

/// Size of an item header.
pub const HEADER_SIZE: u64 = 16;
/// Longest file name (one path component), without its NUL.
pub const MAX_NAME_LEN: usize = 4096;
/// Longest symlink target or hardlink target path, without its NUL.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest extended-attribute name (Linux `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// Largest XATTR or FCAPS content (255 + 64 KiB).
pub const MAX_XATTR_CONTENT: u64 = 255 + 65536;
/// Largest PRELUDE this implementation writes or reads. The spec sets no limit (upstream writes
/// a small JSON object); 16 MiB keeps a hostile archive from forcing a large allocation.
pub const MAX_PRELUDE_LEN: u64 = 16 * 1024 * 1024;
/// Size of one payload-stream item before the payload (the PAYLOAD header), and so the offset of
/// the first PAYLOAD header in a `.ppxar` (after PAYLOAD_START_MARKER).
pub const PAYLOAD_START_SIZE: u64 = HEADER_SIZE;

/// The only FORMAT_VERSION value that exists.
pub const VERSION_2: u64 = 2;

/// SipHash-2-4 with the pxar keys: goodbye-table hash of a child name (no NUL).
pub fn hash_name(name: &[u8]) -> u64 {
    let mut hasher = SipHasher24::new_with_keys(HASH_KEY_0, HASH_KEY_1);
    hasher.write(name);
    hasher.finish()
}

/// Human name of an item type, for error messages.
pub fn type_name(htype: u64) -> &'static str {
    match htype {
        FORMAT_VERSION => "FORMAT_VERSION",
        ENTRY => "ENTRY",
        ENTRY_V1 => "ENTRY_V1",
        PRELUDE => "PRELUDE",
        FILENAME => "FILENAME",
        SYMLINK => "SYMLINK",
        DEVICE => "DEVICE",
        XATTR => "XATTR",
        ACL_USER => "ACL_USER",
        ACL_GROUP => "ACL_GROUP",
        ACL_GROUP_OBJ => "ACL_GROUP_OBJ",
        ACL_DEFAULT => "ACL_DEFAULT",
        ACL_DEFAULT_USER => "ACL_DEFAULT_USER",
        ACL_DEFAULT_GROUP => "ACL_DEFAULT_GROUP",
        FCAPS => "FCAPS",
        QUOTA_PROJID => "QUOTA_PROJID",
        HARDLINK => "HARDLINK",
        PAYLOAD => "PAYLOAD",
        PAYLOAD_REF => "PAYLOAD_REF",
        GOODBYE => "GOODBYE",
        GOODBYE_TAIL_MARKER => "GOODBYE_TAIL_MARKER",
        PAYLOAD_START_MARKER => "PAYLOAD_START_MARKER",
        PAYLOAD_TAIL_MARKER => "PAYLOAD_TAIL_MARKER",
        _ => "unknown",
    }
}

/// Largest content an item of this type may carry in a metadata stream, or `None` when the
/// type has no fixed bound (PAYLOAD, GOODBYE: checked by their context).
pub fn max_content_size(htype: u64) -> Option<u64> {
    let path = MAX_PATH_LEN as u64 + 1;
    Some(match htype {
        FORMAT_VERSION | ACL_GROUP_OBJ | QUOTA_PROJID => 8,
        ENTRY => 40,
        ENTRY_V1 => 32,
        PRELUDE => MAX_PRELUDE_LEN,
        FILENAME => MAX_NAME_LEN as u64 + 1,
        SYMLINK => path,
        HARDLINK => path + 8,
        DEVICE | ACL_USER | ACL_GROUP | ACL_DEFAULT_USER | ACL_DEFAULT_GROUP | PAYLOAD_REF => 16,
        ACL_DEFAULT => 32,
        XATTR | FCAPS => MAX_XATTR_CONTENT,
        _ => return None,
    })
}

/// The 16-byte header in front of every item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Item type (one of the constants of this module).
    pub htype: u64,
    /// 16 + content length.
    pub full_size: u64,
}

impl Header {
    /// A header for `content_len` bytes of content.
    pub fn with_content(htype: u64, content_len: u64) -> Self {
        Header {
            htype,
            full_size: content_len.saturating_add(HEADER_SIZE),
        }
    }

    /// Content length, or `None` if `full_size` is smaller than a header.
    pub fn content_size(&self) -> Option<u64> {
        self.full_size.checked_sub(HEADER_SIZE)
    }

    /// Little-endian bytes.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.htype.to_le_bytes());
        b[8..].copy_from_slice(&self.full_size.to_le_bytes());
        b
    }

    /// Parses 16 little-endian bytes.
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        Header {
            htype: le_u64(b, 0),
            full_size: le_u64(b, 8),
        }
    }
}

/// Reads a little-endian u64 at `at`, or 0 past the end (callers check lengths first).
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at.saturating_add(8)) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// Reads a little-endian u32 at `at`, or 0 past the end (callers check lengths first).
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at.saturating_add(4)) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

/// Why a file name (one path component) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is '.' or '..'")]
    Dot,
    #[error("the name contains '/'")]
    Slash,
    #[error("the name contains a NUL byte")]
    Nul,
    #[error("the name is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
}

/// Checks that `name` is a single normal path component: not empty, not `.`/`..`, no `/` or
/// NUL, at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name == b"." || name == b".." {
        Err(NameError::Dot)
    } else if name.len() > MAX_NAME_LEN {
        Err(NameError::TooLong)
    } else if name.contains(&b'/') {
        Err(NameError::Slash)
    } else if name.contains(&0) {
        Err(NameError::Nul)
    } else {
        Ok(())
    }
}

/// Checks a hardlink target: a relative path of valid names joined by `/`, at most
/// [`MAX_PATH_LEN`] bytes.
pub fn check_relative_path(path: &[u8]) -> Result<(), NameError> {
    if path.len() > MAX_PATH_LEN {
        return Err(NameError::TooLong);
    }
    path.split(|&b| b == b'/').try_for_each(check_name)
}

/// File-type and permission bits of `mode` (spec §7.3).
pub mod mode {
    pub const IFMT: u64 = 0o170000;
    pub const IFSOCK: u64 = 0o140000;
    pub const IFLNK: u64 = 0o120000;
    pub const IFREG: u64 = 0o100000;
    pub const IFBLK: u64 = 0o060000;
    pub const IFDIR: u64 = 0o040000;
    pub const IFCHR: u64 = 0o020000;
    pub const IFIFO: u64 = 0o010000;
    pub const ISUID: u64 = 0o4000;
    pub const ISGID: u64 = 0o2000;
    pub const ISVTX: u64 = 0o1000;
}

/// The file type encoded in the `IFMT` bits of a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Directory,
    Regular,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The type of `mode`, or `None` for an unknown `IFMT` value.
    pub fn from_mode(mode_bits: u64) -> Option<FileType> {
        Some(match mode_bits & mode::IFMT {
            mode::IFDIR => FileType::Directory,
            mode::IFREG => FileType::Regular,
            mode::IFLNK => FileType::Symlink,
            mode::IFBLK => FileType::BlockDevice,
            mode::IFCHR => FileType::CharDevice,
            mode::IFIFO => FileType::Fifo,
            mode::IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// The `IFMT` bits of this type.
    pub fn mode_bits(self) -> u64 {
        match self {
            FileType::Directory => mode::IFDIR,
            FileType::Regular => mode::IFREG,
            FileType::Symlink => mode::IFLNK,
            FileType::BlockDevice => mode::IFBLK,
            FileType::CharDevice => mode::IFCHR,
            FileType::Fifo => mode::IFIFO,
            FileType::Socket => mode::IFSOCK,
        }
    }

    /// Whether this is a block or character device.
    pub fn is_device(self) -> bool {
        matches!(self, FileType::BlockDevice | FileType::CharDevice)
    }
}

/// Offset of a file's FILENAME header in the metadata stream, handed out by the encoder so a
/// later hardlink can refer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkOffset(pub u64);

/// A PAYLOAD_REF: where a file's PAYLOAD header sits in the payload stream, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadRef {
    /// Offset of the PAYLOAD *header* in the payload stream.
    pub offset: u64,
    /// File size (the PAYLOAD content length).
    pub size: u64,
}

impl PayloadRef {
    /// The 16 content bytes of a PAYLOAD_REF item.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    /// Parses the content of a PAYLOAD_REF item (exactly 16 bytes, checked by the caller).
    pub fn from_bytes(b: &[u8]) -> Self {
        PayloadRef {
            offset: le_u64(b, 0),
            size: le_u64(b, 8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type constant is SipHash-2-4 (pxar keys) of its marker string (spec §7.2).
    #[test]
    fn constants_are_hashes_of_their_markers() {
        let table: &[(u64, &str)] = &[
            (FORMAT_VERSION, "__PROXMOX_FORMAT_VERSION__"),
            (ENTRY, "__PROXMOX_FORMAT_ENTRY_V2__"),
            (ENTRY_V1, "__PROXMOX_FORMAT_ENTRY__"),
            (PRELUDE, "__PROXMOX_FORMAT_PRELUDE__"),
            (FILENAME, "__PROXMOX_FORMAT_FILENAME__"),
            (SYMLINK, "__PROXMOX_FORMAT_SYMLINK__"),
            (DEVICE, "__PROXMOX_FORMAT_DEVICE__"),
            (XATTR, "__PROXMOX_FORMAT_XATTR__"),
            (ACL_USER, "__PROXMOX_FORMAT_ACL_USER__"),
            (ACL_GROUP, "__PROXMOX_FORMAT_ACL_GROUP__"),
            (ACL_GROUP_OBJ, "__PROXMOX_FORMAT_ACL_GROUP_OBJ__"),
            (ACL_DEFAULT, "__PROXMOX_FORMAT_ACL_DEFAULT__"),
            (ACL_DEFAULT_USER, "__PROXMOX_FORMAT_ACL_DEFAULT_USER__"),
            (ACL_DEFAULT_GROUP, "__PROXMOX_FORMAT_ACL_DEFAULT_GROUP__"),
            (FCAPS, "__PROXMOX_FORMAT_FCAPS__"),
            (QUOTA_PROJID, "__PROXMOX_FORMAT_QUOTA_PROJID__"),
            (HARDLINK, "__PROXMOX_FORMAT_HARDLINK__"),
            (PAYLOAD, "__PROXMOX_FORMAT_PXAR_PAYLOAD__"),
            (PAYLOAD_REF, "__PROXMOX_FORMAT_PXAR_PAYLOAD_REF__"),
            (GOODBYE, "__PROXMOX_FORMAT_GOODBYE__"),
            (
                GOODBYE_TAIL_MARKER,
                "__PROXMOX_FORMAT_PXAR_GOODBYE_TAIL_MARKER__",
            ),
            (
                PAYLOAD_START_MARKER,
                "__PROXMOX_FORMAT_PXAR_PAYLOAD_START_MARKER__",
            ),
            (
                PAYLOAD_TAIL_MARKER,
                "__PROXMOX_FORMAT_PXAR_PAYLOAD_TAIL_MARKER__",
            ),
        ];
        for (value, marker) in table {
            assert_eq!(hash_name(marker.as_bytes()), *value, "{marker}");
            assert_ne!(type_name(*value), "unknown", "{marker}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(b"a"), Ok(()));
        assert_eq!(check_name(b"\xff\xfe..x"), Ok(()));
        assert_eq!(check_name(b"..."), Ok(()));
        assert_eq!(check_name(b""), Err(NameError::Empty));
        assert_eq!(check_name(b"."), Err(NameError::Dot));
        assert_eq!(check_name(b".."), Err(NameError::Dot));
        assert_eq!(check_name(b"a/b"), Err(NameError::Slash));
        assert_eq!(check_name(b"a\0b"), Err(NameError::Nul));
        assert_eq!(check_name(&[b'x'; MAX_NAME_LEN]), Ok(()));
        assert_eq!(
            check_name(&[b'x'; MAX_NAME_LEN + 1]),
            Err(NameError::TooLong)
        );
        assert_eq!(check_relative_path(b"a/b/c"), Ok(()));
        assert_eq!(check_relative_path(b"/a"), Err(NameError::Empty));
        assert_eq!(check_relative_path(b"a//b"), Err(NameError::Empty));
        assert_eq!(check_relative_path(b"a/../b"), Err(NameError::Dot));
    }

    #[test]
    fn header_round_trips() {
        let h = Header::with_content(FILENAME, 7);
        assert_eq!(h.full_size, 23);
        assert_eq!(Header::from_bytes(&h.to_bytes()), h);
        assert_eq!(h.content_size(), Some(7));
        let bad = Header {
            htype: ENTRY,
            full_size: 3,
        };
        assert_eq!(bad.content_size(), None);
    }

    #[test]
    fn file_types_round_trip() {
        for ft in [
            FileType::Directory,
            FileType::Regular,
            FileType::Symlink,
            FileType::BlockDevice,
            FileType::CharDevice,
            FileType::Fifo,
            FileType::Socket,
        ] {
            assert_eq!(FileType::from_mode(ft.mode_bits() | 0o755), Some(ft));
        }
        assert_eq!(FileType::from_mode(0o644), None);
        assert_eq!(FileType::from_mode(0o170000), None);
    }
}
