//! What pxar records about an entry (spec §7.2–7.4): the stat (ENTRY, legacy ENTRY_V1),
//! extended attributes, POSIX ACLs, file capabilities and the quota project id, grouped in
//! [`Metadata`], with their item encodings.

use std::time::{Duration, SystemTime};

use crate::error::DecodeErrorKind;
use crate::format::{self, le_u32, le_u64, FileType};

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// A modification time: seconds since the epoch (negative before 1970) and nanoseconds, always
/// normalised to `0 <= nanos < 1e9` (so 1.5 s before the epoch is `secs = -2, nanos = 5e8`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mtime {
    pub secs: i64,
    pub nanos: u32,
}

impl Mtime {
    /// A time from its fields, or `None` if `nanos >= 1e9`.
    pub fn new(secs: i64, nanos: u32) -> Option<Mtime> {
        (nanos < NANOS_PER_SEC).then_some(Mtime { secs, nanos })
    }

    /// `d` after the epoch (saturating at `i64::MAX` seconds).
    pub fn after_epoch(d: Duration) -> Mtime {
        Mtime {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }

    /// `d` before the epoch, by the spec's pre-1970 rule: seconds = −(whole seconds) − 1 and
    /// nanos = 1e9 − fraction when there is a fraction, else −(whole seconds) and 0.
    pub fn before_epoch(d: Duration) -> Mtime {
        let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        match d.subsec_nanos() {
            0 => Mtime {
                secs: -whole,
                nanos: 0,
            },
            frac => Mtime {
                secs: -whole - 1,
                nanos: NANOS_PER_SEC - frac,
            },
        }
    }

    /// The time of a [`SystemTime`].
    pub fn from_system_time(t: SystemTime) -> Mtime {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Mtime::after_epoch(d),
            Err(e) => Mtime::before_epoch(e.duration()),
        }
    }

    /// From signed nanoseconds since the epoch (floor division, same as the pre-1970 rule);
    /// saturates outside the range of `i64` seconds.
    pub fn from_nanos(nanos: i128) -> Mtime {
        let secs = nanos.div_euclid(i128::from(NANOS_PER_SEC));
        let frac = nanos.rem_euclid(i128::from(NANOS_PER_SEC));
        Mtime {
            secs: i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }),
            nanos: u32::try_from(frac).unwrap_or(0),
        }
    }

    /// Signed nanoseconds since the epoch.
    pub fn as_nanos(&self) -> i128 {
        i128::from(self.secs) * i128::from(NANOS_PER_SEC) + i128::from(self.nanos)
    }
}

/// The ENTRY item: mode (with file type), chattr/FAT flags, owner and mtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    /// `st_mode` including the file-type bits ([`format::mode`]).
    pub mode: u64,
    /// PBS feature-flag bits for chattr / FAT attributes.
    pub flags: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Mtime,
}

impl Stat {
    /// Content size of an ENTRY item.
    pub const SIZE: usize = 40;
    /// Content size of a legacy ENTRY_V1 item.
    pub const V1_SIZE: usize = 32;

    /// A stat of the given type and permission bits, owned by root, mtime 0.
    pub fn new(file_type: FileType, permissions: u64) -> Stat {
        Stat {
            mode: file_type.mode_bits() | (permissions & !format::mode::IFMT),
            ..Stat::default()
        }
    }

    /// The file type, or `None` if the type bits are unknown.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    /// The mode without the file-type bits.
    pub fn permissions(&self) -> u64 {
        self.mode & !format::mode::IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == Some(FileType::Directory)
    }

    pub fn is_regular_file(&self) -> bool {
        self.file_type() == Some(FileType::Regular)
    }

    /// ENTRY content bytes (the padding after the nanoseconds is zero).
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.mode.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.uid.to_le_bytes());
        b[20..24].copy_from_slice(&self.gid.to_le_bytes());
        b[24..32].copy_from_slice(&self.mtime.secs.to_le_bytes());
        b[32..36].copy_from_slice(&self.mtime.nanos.to_le_bytes());
        b
    }

    /// Parses ENTRY content (40 bytes; the padding is ignored, nanoseconds must be < 1e9).
    pub fn from_bytes(b: &[u8]) -> Result<Stat, DecodeErrorKind> {
        check_len("ENTRY", b, Self::SIZE)?;
        let nanos = le_u32(b, 32);
        let mtime =
            Mtime::new(le_u64(b, 24) as i64, nanos).ok_or(DecodeErrorKind::BadTimestamp(nanos))?;
        Ok(Stat {
            mode: le_u64(b, 0),
            flags: le_u64(b, 8),
            uid: le_u32(b, 16),
            gid: le_u32(b, 20),
            mtime,
        })
    }

    /// Parses legacy ENTRY_V1 content (32 bytes, mtime as u64 nanoseconds since the epoch).
    pub fn from_v1_bytes(b: &[u8]) -> Result<Stat, DecodeErrorKind> {
        check_len("ENTRY_V1", b, Self::V1_SIZE)?;
        Ok(Stat {
            mode: le_u64(b, 0),
            flags: le_u64(b, 8),
            uid: le_u32(b, 16),
            gid: le_u32(b, 20),
            mtime: Mtime::from_nanos(i128::from(le_u64(b, 24))),
        })
    }
}

/// Device numbers of a block or character device (DEVICE item).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Device {
    pub major: u64,
    pub minor: u64,
}

impl Device {
    pub fn to_bytes(&self) -> [u8; 16] {
        pair_bytes(self.major, self.minor)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Device, DecodeErrorKind> {
        check_len("DEVICE", b, 16)?;
        Ok(Device {
            major: le_u64(b, 0),
            minor: le_u64(b, 8),
        })
    }
}

/// ACL permission bits and the "no mask" value.
pub mod perms {
    pub const READ: u64 = 4;
    pub const WRITE: u64 = 2;
    pub const EXECUTE: u64 = 1;
    /// `ACL_DEFAULT.mask` when the default ACL has no mask entry.
    pub const NO_MASK: u64 = u64::MAX;
}

/// A named-user ACL entry (ACL_USER, ACL_DEFAULT_USER).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclUser {
    pub uid: u64,
    pub perms: u64,
}

/// A named-group ACL entry (ACL_GROUP, ACL_DEFAULT_GROUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclGroup {
    pub gid: u64,
    pub perms: u64,
}

/// The owning-group entry of an access ACL (ACL_GROUP_OBJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclGroupObj {
    pub perms: u64,
}

/// The base entries of a default ACL (ACL_DEFAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclDefault {
    pub user_obj_perms: u64,
    pub group_obj_perms: u64,
    pub other_perms: u64,
    /// [`perms::NO_MASK`] when there is no mask.
    pub mask_perms: u64,
}

/// The POSIX ACL of an entry, in item order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Acl {
    pub users: Vec<AclUser>,
    pub groups: Vec<AclGroup>,
    pub group_obj: Option<AclGroupObj>,
    pub default: Option<AclDefault>,
    pub default_users: Vec<AclUser>,
    pub default_groups: Vec<AclGroup>,
}

impl Acl {
    /// Whether no ACL item is present.
    pub fn is_empty(&self) -> bool {
        *self == Acl::default()
    }
}

/// An extended attribute: name (no NUL, 1..=255 bytes) and value bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Xattr {
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Xattr {
        Xattr {
            name: name.into(),
            value: value.into(),
        }
    }

    /// XATTR content: name + NUL + value.
    pub fn to_content(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.name.len() + 1 + self.value.len());
        v.extend_from_slice(&self.name);
        v.push(0);
        v.extend_from_slice(&self.value);
        v
    }

    /// Parses XATTR content: the name runs to the first NUL.
    pub fn from_content(b: &[u8]) -> Result<Xattr, DecodeErrorKind> {
        let nul = b
            .iter()
            .position(|&c| c == 0)
            .ok_or(DecodeErrorKind::InvalidXattr("no NUL after the name"))?;
        let (name, value) = (&b[..nul], &b[nul + 1..]);
        if name.is_empty() {
            return Err(DecodeErrorKind::InvalidXattr("empty name"));
        }
        if name.len() > format::MAX_XATTR_NAME_LEN {
            return Err(DecodeErrorKind::InvalidXattr("name longer than 255 bytes"));
        }
        Ok(Xattr::new(name, value))
    }

    /// Whether the name is acceptable (1..=255 bytes, no NUL).
    pub fn name_is_valid(&self) -> bool {
        (1..=format::MAX_XATTR_NAME_LEN).contains(&self.name.len()) && !self.name.contains(&0)
    }
}

/// Everything pxar stores about an entry besides its name and contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    pub stat: Stat,
    /// In the order they are written (the order the kernel lists them).
    pub xattrs: Vec<Xattr>,
    pub acl: Acl,
    /// Raw `security.capability` value.
    pub fcaps: Option<Vec<u8>>,
    pub quota_project_id: Option<u64>,
}

impl Metadata {
    /// Metadata with only a stat.
    pub fn new(stat: Stat) -> Metadata {
        Metadata {
            stat,
            ..Metadata::default()
        }
    }

    /// The file type of the stat.
    pub fn file_type(&self) -> Option<FileType> {
        self.stat.file_type()
    }

    /// Calls `item` with (type, content) for each item after ENTRY, in spec §7.4 order.
    pub(crate) fn for_each_item<E>(
        &self,
        mut item: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for x in &self.xattrs {
            item(format::XATTR, &x.to_content())?;
        }
        let acl = &self.acl;
        for u in &acl.users {
            item(format::ACL_USER, &pair_bytes(u.uid, u.perms))?;
        }
        for g in &acl.groups {
            item(format::ACL_GROUP, &pair_bytes(g.gid, g.perms))?;
        }
        if let Some(o) = &acl.group_obj {
            item(format::ACL_GROUP_OBJ, &o.perms.to_le_bytes())?;
        }
        if let Some(d) = &acl.default {
            item(format::ACL_DEFAULT, &default_bytes(d))?;
        }
        for u in &acl.default_users {
            item(format::ACL_DEFAULT_USER, &pair_bytes(u.uid, u.perms))?;
        }
        for g in &acl.default_groups {
            item(format::ACL_DEFAULT_GROUP, &pair_bytes(g.gid, g.perms))?;
        }
        if let Some(f) = &self.fcaps {
            item(format::FCAPS, f)?;
        }
        if let Some(q) = self.quota_project_id {
            item(format::QUOTA_PROJID, &q.to_le_bytes())?;
        }
        Ok(())
    }

    /// Adds the content of one attribute item (checked by the caller to be allowed here).
    pub(crate) fn apply_item(&mut self, htype: u64, b: &[u8]) -> Result<(), DecodeErrorKind> {
        let acl = &mut self.acl;
        match htype {
            format::XATTR => self.xattrs.push(Xattr::from_content(b)?),
            format::ACL_USER => acl.users.push(user(b, "ACL_USER")?),
            format::ACL_GROUP => acl.groups.push(group(b, "ACL_GROUP")?),
            format::ACL_GROUP_OBJ => {
                check_len("ACL_GROUP_OBJ", b, 8)?;
                acl.group_obj = Some(AclGroupObj {
                    perms: le_u64(b, 0),
                });
            }
            format::ACL_DEFAULT => {
                check_len("ACL_DEFAULT", b, 32)?;
                acl.default = Some(AclDefault {
                    user_obj_perms: le_u64(b, 0),
                    group_obj_perms: le_u64(b, 8),
                    other_perms: le_u64(b, 16),
                    mask_perms: le_u64(b, 24),
                });
            }
            format::ACL_DEFAULT_USER => acl.default_users.push(user(b, "ACL_DEFAULT_USER")?),
            format::ACL_DEFAULT_GROUP => acl.default_groups.push(group(b, "ACL_DEFAULT_GROUP")?),
            format::FCAPS => self.fcaps = Some(b.to_vec()),
            format::QUOTA_PROJID => {
                check_len("QUOTA_PROJID", b, 8)?;
                self.quota_project_id = Some(le_u64(b, 0));
            }
            other => {
                return Err(DecodeErrorKind::Unexpected {
                    found: format::type_name(other),
                    expected: "an attribute item",
                })
            }
        }
        Ok(())
    }
}

/// Position of an attribute item type in the spec §7.4 order, and whether it may repeat;
/// `None` for items that are not attributes.
pub(crate) fn attribute_rank(htype: u64) -> Option<(u8, bool)> {
    Some(match htype {
        format::XATTR => (1, true),
        format::ACL_USER => (2, true),
        format::ACL_GROUP => (3, true),
        format::ACL_GROUP_OBJ => (4, false),
        format::ACL_DEFAULT => (5, false),
        format::ACL_DEFAULT_USER => (6, true),
        format::ACL_DEFAULT_GROUP => (7, true),
        format::FCAPS => (8, false),
        format::QUOTA_PROJID => (9, false),
        _ => return None,
    })
}

fn pair_bytes(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

fn default_bytes(d: &AclDefault) -> [u8; 32] {
    let mut out = [0u8; 32];
    let fields = [
        d.user_obj_perms,
        d.group_obj_perms,
        d.other_perms,
        d.mask_perms,
    ];
    for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn user(b: &[u8], item: &'static str) -> Result<AclUser, DecodeErrorKind> {
    check_len(item, b, 16)?;
    Ok(AclUser {
        uid: le_u64(b, 0),
        perms: le_u64(b, 8),
    })
}

fn group(b: &[u8], item: &'static str) -> Result<AclGroup, DecodeErrorKind> {
    check_len(item, b, 16)?;
    Ok(AclGroup {
        gid: le_u64(b, 0),
        perms: le_u64(b, 8),
    })
}

pub(crate) fn check_len(
    item: &'static str,
    b: &[u8],
    expected: usize,
) -> Result<(), DecodeErrorKind> {
    if b.len() == expected {
        Ok(())
    } else {
        Err(DecodeErrorKind::WrongSize {
            item,
            len: b.len() as u64,
            expected: expected as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pre_1970_rule() {
        let m = Mtime::before_epoch(Duration::new(1, 500_000_000));
        assert_eq!((m.secs, m.nanos), (-2, 500_000_000));
        let m = Mtime::before_epoch(Duration::new(2, 0));
        assert_eq!((m.secs, m.nanos), (-2, 0));
        let m = Mtime::before_epoch(Duration::new(0, 1));
        assert_eq!((m.secs, m.nanos), (-1, 999_999_999));
        assert_eq!(
            Mtime::from_nanos(-1_500_000_000),
            Mtime::new(-2, 500_000_000).unwrap()
        );
        let before = SystemTime::UNIX_EPOCH - Duration::new(10, 250);
        assert_eq!(Mtime::from_system_time(before).as_nanos(), -10_000_000_250);
        assert_eq!(Mtime::new(0, 1_000_000_000), None);
    }

    #[test]
    fn stat_layout() {
        let stat = Stat {
            mode: format::mode::IFREG | 0o644,
            flags: 0x10000,
            uid: 1000,
            gid: 100,
            mtime: Mtime::new(-2, 5).unwrap(),
        };
        let b = stat.to_bytes();
        assert_eq!(&b[0..8], &(0o100644u64).to_le_bytes());
        assert_eq!(&b[16..20], &1000u32.to_le_bytes());
        assert_eq!(&b[24..32], &(-2i64).to_le_bytes());
        assert_eq!(&b[32..36], &5u32.to_le_bytes());
        assert_eq!(&b[36..40], &[0; 4]);
        assert_eq!(Stat::from_bytes(&b).unwrap(), stat);
        let mut bad = b;
        bad[32..36].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        assert!(matches!(
            Stat::from_bytes(&bad),
            Err(DecodeErrorKind::BadTimestamp(_))
        ));
        assert!(Stat::from_bytes(&b[..39]).is_err());
    }

    #[test]
    fn legacy_entry_v1() {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&(format::mode::IFDIR | 0o755).to_le_bytes());
        b[16..20].copy_from_slice(&7u32.to_le_bytes());
        b[24..32].copy_from_slice(&1_500_000_000u64.to_le_bytes());
        let stat = Stat::from_v1_bytes(&b).unwrap();
        assert!(stat.is_dir());
        assert_eq!(stat.uid, 7);
        assert_eq!(stat.mtime, Mtime::new(1, 500_000_000).unwrap());
    }

    #[test]
    fn xattr_content() {
        let x = Xattr::new(&b"user.a"[..], &b"\0v\0"[..]);
        assert_eq!(Xattr::from_content(&x.to_content()).unwrap(), x);
        assert!(Xattr::from_content(b"novalue").is_err());
        assert!(Xattr::from_content(b"\0value").is_err());
        assert!(
            Xattr::from_content(&[b'n'; 256].iter().chain(b"\0").copied().collect::<Vec<_>>())
                .is_err()
        );
    }

    #[test]
    fn attribute_items_round_trip() {
        let mut m = Metadata::new(Stat::new(FileType::Directory, 0o755));
        m.xattrs.push(Xattr::new(&b"user.x"[..], &b"1"[..]));
        m.acl.users.push(AclUser {
            uid: 1,
            perms: perms::READ,
        });
        m.acl.groups.push(AclGroup {
            gid: 2,
            perms: perms::WRITE,
        });
        m.acl.group_obj = Some(AclGroupObj {
            perms: perms::EXECUTE,
        });
        m.acl.default = Some(AclDefault {
            user_obj_perms: 7,
            group_obj_perms: 5,
            other_perms: 0,
            mask_perms: perms::NO_MASK,
        });
        m.acl.default_users.push(AclUser { uid: 3, perms: 6 });
        m.acl.default_groups.push(AclGroup { gid: 4, perms: 4 });
        m.fcaps = Some(vec![1, 2, 3]);
        m.quota_project_id = Some(99);
        let mut back = Metadata::new(m.stat);
        let mut last_rank = 0;
        m.for_each_item(|htype, content| {
            let (rank, _) = attribute_rank(htype).unwrap();
            assert!(rank > last_rank);
            last_rank = rank;
            back.apply_item(htype, content)
        })
        .unwrap();
        assert_eq!(back, m);
    }

    proptest! {
        #[test]
        fn mtime_nanos_round_trip(n in any::<i64>(), extra in any::<i32>()) {
            let nanos = i128::from(n) * 1000 + i128::from(extra);
            let m = Mtime::from_nanos(nanos);
            prop_assert!(m.nanos < NANOS_PER_SEC);
            prop_assert_eq!(m.as_nanos(), nanos);
        }

        #[test]
        fn before_epoch_is_floor(secs in 0u64..1 << 40, frac in 0u32..NANOS_PER_SEC) {
            let m = Mtime::before_epoch(Duration::new(secs, frac));
            prop_assert_eq!(m.as_nanos(), -(i128::from(secs) * 1_000_000_000 + i128::from(frac)));
        }
    }
}
