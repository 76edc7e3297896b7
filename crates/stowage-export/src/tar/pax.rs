//! PAX extended-header records (POSIX.1-2001 `x` entries) the way GNU tar writes and reads them:
//! `mtime` with nanoseconds, `path`/`linkpath` as raw bytes, `SCHILY.xattr.<name>` with raw
//! values, and `SCHILY.acl.access`/`SCHILY.acl.default` in the text form of `acl_to_text`.

use std::io::{self, Write};

use stowage_archive::metadata::perms;
use stowage_archive::{Acl, Mtime};

/// Largest value of a 12-byte octal header field (size, mtime).
pub(crate) const MAX_OCTAL_12: u64 = 0o777_7777_7777;
/// Largest value of an 8-byte octal header field (uid, gid, device numbers).
pub(crate) const MAX_OCTAL_8: u64 = 0o777_7777;

/// The records of one `x` entry.
///
/// Built here rather than with `tar::Builder::append_pax_extensions` because that takes keys
/// as `&str`, and an xattr name (part of the key) may be any bytes.
#[derive(Default)]
pub(crate) struct PaxRecords {
    data: Vec<u8>,
}

impl PaxRecords {
    /// Adds `LEN KEY=VALUE\n`, where LEN counts the whole record including its own digits.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let rest = 3 + key.len() + value.len(); // space, '=', newline
        let mut digits = 1;
        while rest + digits >= 10usize.pow(digits as u32) {
            digits += 1;
        }
        let _ = write!(self.data, "{} ", rest + digits);
        self.data.extend_from_slice(key);
        self.data.push(b'=');
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
    }

    /// Appends the `x` entry holding the records (nothing when there are none).
    pub fn append_to<W: Write>(&self, builder: &mut ::tar::Builder<W>) -> io::Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let mut header = ::tar::Header::new_ustar();
        put_bytes(&mut header.as_old_mut().name, b"././@PaxHeader");
        header.set_mode(0o644);
        header.set_size(self.data.len() as u64);
        header.set_entry_type(::tar::EntryType::XHeader);
        header.set_cksum();
        builder.append(&header, self.data.as_slice())
    }

    #[cfg(test)]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

/// Copies `bytes` into a NUL-padded header field; false if they do not fit.
pub(crate) fn put_bytes(field: &mut [u8], bytes: &[u8]) -> bool {
    if bytes.len() > field.len() || bytes.contains(&0) {
        return false;
    }
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    true
}

/// A PAX time: decimal seconds, with the fraction only when there is one (`-1.5` is 1.5 s
/// before the epoch).
pub(crate) fn time(m: Mtime) -> String {
    let nanos = m.as_nanos();
    let abs = nanos.unsigned_abs();
    let sign = if nanos < 0 { "-" } else { "" };
    let (secs, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        let frac = format!("{frac:09}");
        format!("{sign}{secs}.{}", frac.trim_end_matches('0'))
    }
}

/// The key of an xattr record: `SCHILY.xattr.` and the name, with `%` and `=` escaped as GNU
/// tar does (`%25`, `%3D`; `=` would end the key).
pub(crate) fn xattr_key(name: &[u8]) -> Vec<u8> {
    let mut key = b"SCHILY.xattr.".to_vec();
    for &b in name {
        match b {
            b'%' => key.extend_from_slice(b"%25"),
            b'=' => key.extend_from_slice(b"%3D"),
            _ => key.push(b),
        }
    }
    key
}

fn rwx(p: u64) -> [u8; 3] {
    [
        if p & perms::READ != 0 { b'r' } else { b'-' },
        if p & perms::WRITE != 0 { b'w' } else { b'-' },
        if p & perms::EXECUTE != 0 { b'x' } else { b'-' },
    ]
}

fn line(out: &mut Vec<u8>, tag: &str, id: Option<u64>, p: u64) {
    out.extend_from_slice(tag.as_bytes());
    out.push(b':');
    if let Some(id) = id {
        out.extend_from_slice(id.to_string().as_bytes());
    }
    out.push(b':');
    out.extend_from_slice(&rwx(p));
    out.push(b'\n');
}

/// `SCHILY.acl.access` text (numeric ids) of an extended access ACL, `None` when the mode says
/// everything. The owner, other and mask permissions come from the mode (pxar keeps them there;
/// the group bits of the mode hold the mask).
pub(crate) fn acl_access_text(mode: u64, acl: &Acl) -> Option<Vec<u8>> {
    if acl.users.is_empty() && acl.groups.is_empty() && acl.group_obj.is_none() {
        return None;
    }
    let group_bits = (mode >> 3) & 7;
    let mut out = Vec::new();
    line(&mut out, "user", None, (mode >> 6) & 7);
    for u in &acl.users {
        line(&mut out, "user", Some(u.uid), u.perms);
    }
    let group_obj = acl.group_obj.map_or(group_bits, |g| g.perms);
    line(&mut out, "group", None, group_obj);
    for g in &acl.groups {
        line(&mut out, "group", Some(g.gid), g.perms);
    }
    line(&mut out, "mask", None, group_bits);
    line(&mut out, "other", None, mode & 7);
    Some(out)
}

/// `SCHILY.acl.default` text (numeric ids) of a directory's default ACL, if it has one.
pub(crate) fn acl_default_text(acl: &Acl) -> Option<Vec<u8>> {
    let d = acl.default?;
    let mut out = Vec::new();
    line(&mut out, "user", None, d.user_obj_perms);
    for u in &acl.default_users {
        line(&mut out, "user", Some(u.uid), u.perms);
    }
    line(&mut out, "group", None, d.group_obj_perms);
    for g in &acl.default_groups {
        line(&mut out, "group", Some(g.gid), g.perms);
    }
    if d.mask_perms != perms::NO_MASK {
        line(&mut out, "mask", None, d.mask_perms);
    }
    line(&mut out, "other", None, d.other_perms);
    Some(out)
}

#[cfg(test)]
mod tests {
    use stowage_archive::{AclDefault, AclGroup, AclGroupObj, AclUser};

    use super::*;

    #[test]
    fn record_lengths_count_themselves() {
        let mut r = PaxRecords::default();
        r.add(b"mtime", b"1.5");
        r.add(b"path", &[b'a'; 91]); // 4 + 91 + 3 = 98 (+2 digits = 100: three digits)
        r.add(b"path", &[b'a'; 90]); // 97 + 2 = 99
        let text = r.bytes();
        let mut rest = text;
        while !rest.is_empty() {
            let space = rest.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&rest[..space])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(rest[len - 1], b'\n');
            rest = &rest[len..];
        }
        assert!(text.starts_with(b"13 mtime=1.5\n101 path=aaa"));
    }

    #[test]
    fn times() {
        assert_eq!(
            time(Mtime::new(1_700_000_000, 123_456_789).unwrap()),
            "1700000000.123456789"
        );
        assert_eq!(time(Mtime::new(5, 500_000_000).unwrap()), "5.5");
        assert_eq!(time(Mtime::new(5, 0).unwrap()), "5");
        assert_eq!(time(Mtime::new(-2, 500_000_000).unwrap()), "-1.5");
        assert_eq!(time(Mtime::new(-1, 999_999_999).unwrap()), "-0.000000001");
        assert_eq!(time(Mtime::new(-3, 0).unwrap()), "-3");
    }

    #[test]
    fn xattr_keys_escape_like_gnu_tar() {
        assert_eq!(xattr_key(b"user.a=b%c"), b"SCHILY.xattr.user.a%3Db%25c");
    }

    #[test]
    fn acl_texts() {
        let mut acl = Acl::default();
        assert_eq!(acl_access_text(0o100644, &acl), None);
        acl.users.push(AclUser {
            uid: 1234,
            perms: 4,
        });
        acl.groups.push(AclGroup { gid: 50, perms: 6 });
        acl.group_obj = Some(AclGroupObj { perms: 5 });
        let text = acl_access_text(0o100670, &acl).unwrap();
        assert_eq!(
            text,
            b"user::rw-\nuser:1234:r--\ngroup::r-x\ngroup:50:rw-\nmask::rwx\nother::---\n"
        );
        assert_eq!(acl_default_text(&acl), None);
        acl.default = Some(AclDefault {
            user_obj_perms: 7,
            group_obj_perms: 5,
            other_perms: 1,
            mask_perms: perms::NO_MASK,
        });
        acl.default_users.push(AclUser { uid: 33, perms: 5 });
        assert_eq!(
            acl_default_text(&acl).unwrap(),
            b"user::rwx\nuser:33:r-x\ngroup::r-x\nother::--x\n"
        );
    }
}
