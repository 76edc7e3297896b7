//! Converting between the kernel's POSIX ACL xattrs (`system.posix_acl_access`,
//! `system.posix_acl_default`) and pxar's ACL items. Pure: bytes in, values out.
//!
//! Kernel format: a little-endian u32 version (2), then 8-byte entries (u16 tag, u16 perms,
//! u32 id). pxar keeps the owner, owning-group and other permissions of an access ACL in the
//! mode bits (the group bits hold the mask when there is one) and stores only what the mode
//! cannot say.

use stowage_archive::metadata::{perms, Acl, AclDefault, AclGroup, AclGroupObj, AclUser};

pub const ACCESS_XATTR: &[u8] = b"system.posix_acl_access";
pub const DEFAULT_XATTR: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;
/// `AclDefault::mask_perms` when the default ACL has no mask.
const NO_MASK: u64 = perms::NO_MASK;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("POSIX ACL xattr has {0} bytes, not a version header and whole 8-byte entries")]
    Length(usize),
    #[error("POSIX ACL xattr has version {0}, expected 2")]
    Version(u32),
    #[error("POSIX ACL xattr has an unknown tag {0:#x}")]
    Tag(u16),
}

#[derive(Debug, Default)]
struct Parsed {
    user_obj: Option<u64>,
    group_obj: Option<u64>,
    other: Option<u64>,
    mask: Option<u64>,
    users: Vec<AclUser>,
    groups: Vec<AclGroup>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, AclError> {
    if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
        return Err(AclError::Length(bytes.len()));
    }
    let version = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if version != VERSION {
        return Err(AclError::Version(version));
    }
    let mut p = Parsed::default();
    for e in bytes[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perms = u64::from(u16::from_le_bytes([e[2], e[3]]) & 7);
        let id = u64::from(u32::from_le_bytes([e[4], e[5], e[6], e[7]]));
        match tag {
            USER_OBJ => p.user_obj = Some(perms),
            GROUP_OBJ => p.group_obj = Some(perms),
            OTHER => p.other = Some(perms),
            MASK => p.mask = Some(perms),
            USER => p.users.push(AclUser { uid: id, perms }),
            GROUP => p.groups.push(AclGroup { gid: id, perms }),
            other => return Err(AclError::Tag(other)),
        }
    }
    p.users.sort();
    p.groups.sort();
    Ok(p)
}

/// pxar's ACL of an entry from its two kernel xattrs (either may be absent).
pub fn acl_from_xattrs(access: Option<&[u8]>, default: Option<&[u8]>) -> Result<Acl, AclError> {
    let mut acl = Acl::default();
    if let Some(bytes) = access {
        let p = parse(bytes)?;
        // A minimal ACL (owner, group, other only) is the mode itself: nothing to store.
        if p.mask.is_some() || !p.users.is_empty() || !p.groups.is_empty() {
            acl.users = p.users;
            acl.groups = p.groups;
            acl.group_obj = p.group_obj.map(|perms| AclGroupObj { perms });
        }
    }
    if let Some(bytes) = default {
        let p = parse(bytes)?;
        acl.default = Some(AclDefault {
            user_obj_perms: p.user_obj.unwrap_or(0),
            group_obj_perms: p.group_obj.unwrap_or(0),
            other_perms: p.other.unwrap_or(0),
            mask_perms: p.mask.unwrap_or(NO_MASK),
        });
        acl.default_users = p.users;
        acl.default_groups = p.groups;
    }
    Ok(acl)
}

fn push(out: &mut Vec<u8>, tag: u16, perms: u64, id: u32) {
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&((perms & 7) as u16).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
}

fn id32(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(UNDEFINED_ID)
}

/// The `system.posix_acl_access` value for `mode` and `acl`, or `None` when the mode alone says
/// everything (no named entries, no owning-group entry).
pub fn access_xattr(mode: u64, acl: &Acl) -> Option<Vec<u8>> {
    if acl.users.is_empty() && acl.groups.is_empty() && acl.group_obj.is_none() {
        return None;
    }
    let group_bits = (mode >> 3) & 7;
    let mut out = VERSION.to_le_bytes().to_vec();
    push(&mut out, USER_OBJ, (mode >> 6) & 7, UNDEFINED_ID);
    for u in &acl.users {
        push(&mut out, USER, u.perms, id32(u.uid));
    }
    let group_obj = acl.group_obj.map(|g| g.perms).unwrap_or(group_bits);
    push(&mut out, GROUP_OBJ, group_obj, UNDEFINED_ID);
    for g in &acl.groups {
        push(&mut out, GROUP, g.perms, id32(g.gid));
    }
    push(&mut out, MASK, group_bits, UNDEFINED_ID);
    push(&mut out, OTHER, mode & 7, UNDEFINED_ID);
    Some(out)
}

/// The `system.posix_acl_default` value of a directory, or `None` without a default ACL.
pub fn default_xattr(acl: &Acl) -> Option<Vec<u8>> {
    let d = acl.default?;
    let mut out = VERSION.to_le_bytes().to_vec();
    push(&mut out, USER_OBJ, d.user_obj_perms, UNDEFINED_ID);
    for u in &acl.default_users {
        push(&mut out, USER, u.perms, id32(u.uid));
    }
    push(&mut out, GROUP_OBJ, d.group_obj_perms, UNDEFINED_ID);
    for g in &acl.default_groups {
        push(&mut out, GROUP, g.perms, id32(g.gid));
    }
    if d.mask_perms != NO_MASK {
        push(&mut out, MASK, d.mask_perms, UNDEFINED_ID);
    }
    push(&mut out, OTHER, d.other_perms, UNDEFINED_ID);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xattr(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        for &(tag, perms, id) in entries {
            push(&mut out, tag, u64::from(perms), id);
        }
        out
    }

    #[test]
    fn extended_access_acl_round_trips_through_the_mode() {
        // user::rw- user:1000:r-- group::r-x group:50:rw- mask::rwx other::---
        let kernel = xattr(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 4, 1000),
            (GROUP_OBJ, 5, UNDEFINED_ID),
            (GROUP, 6, 50),
            (MASK, 7, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]);
        let acl = acl_from_xattrs(Some(&kernel), None).unwrap();
        assert_eq!(
            acl.users,
            vec![AclUser {
                uid: 1000,
                perms: 4
            }]
        );
        assert_eq!(acl.groups, vec![AclGroup { gid: 50, perms: 6 }]);
        assert_eq!(acl.group_obj, Some(AclGroupObj { perms: 5 }));
        // The mode as the kernel shows it: owner rw-, group bits = mask rwx, other ---.
        let mode = 0o100670;
        assert_eq!(access_xattr(mode, &acl), Some(kernel));
    }

    #[test]
    fn minimal_acl_is_just_the_mode() {
        let kernel = xattr(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (GROUP_OBJ, 4, UNDEFINED_ID),
            (OTHER, 4, UNDEFINED_ID),
        ]);
        let acl = acl_from_xattrs(Some(&kernel), None).unwrap();
        assert!(acl.is_empty());
        assert_eq!(access_xattr(0o100644, &acl), None);
    }

    #[test]
    fn default_acl_round_trips_with_and_without_mask() {
        for with_mask in [true, false] {
            let mut entries = vec![
                (USER_OBJ, 7, UNDEFINED_ID),
                (USER, 5, 33),
                (GROUP_OBJ, 5, UNDEFINED_ID),
            ];
            if with_mask {
                entries.push((MASK, 5, UNDEFINED_ID));
            }
            entries.push((OTHER, 1, UNDEFINED_ID));
            let kernel = xattr(&entries);
            let acl = acl_from_xattrs(None, Some(&kernel)).unwrap();
            let d = acl.default.unwrap();
            assert_eq!(d.mask_perms, if with_mask { 5 } else { NO_MASK });
            assert_eq!(default_xattr(&acl), Some(kernel));
        }
    }

    #[test]
    fn bad_xattrs_are_errors() {
        assert_eq!(
            acl_from_xattrs(Some(&[2, 0, 0]), None),
            Err(AclError::Length(3))
        );
        assert_eq!(
            acl_from_xattrs(Some(&xattr(&[])[..3]), None),
            Err(AclError::Length(3))
        );
        let mut v1 = xattr(&[]);
        v1[0] = 1;
        assert_eq!(acl_from_xattrs(Some(&v1), None), Err(AclError::Version(1)));
        assert_eq!(
            acl_from_xattrs(Some(&xattr(&[(0x40, 7, 0)])), None),
            Err(AclError::Tag(0x40))
        );
    }
}
