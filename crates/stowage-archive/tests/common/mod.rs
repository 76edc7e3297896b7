//! Shared by the property tests: random trees, encoding them, and a normalised view of what
//! the decoder returns so that both can be compared.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use stowage_archive::format::FileType;
use stowage_archive::{
    payload_slice, Acl, AclDefault, AclGroup, AclGroupObj, AclUser, DecodeError, Decoder,
    EncodeError, Encoder, EntryKind, Event, Format, LinkOffset, Metadata, Mtime, Payload, Stat,
    Xattr,
};

/// A node of a random tree.
#[derive(Debug, Clone)]
pub enum Node {
    File(Metadata, Vec<u8>),
    Symlink(Metadata, Vec<u8>),
    Device(Metadata, u64, u64),
    Special(Metadata),
    /// A hardlink to the file added last before it (dropped if there is none).
    Hardlink,
    Dir(Metadata, BTreeMap<Vec<u8>, Node>),
}

/// What an archive says, normalised: (path, what).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Seen {
    Entry(Vec<Vec<u8>>, Metadata, Kind),
    End(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>, LinkOffset),
    Symlink(Vec<u8>),
    Device(u64, u64),
    Special,
    Hardlink(Vec<u8>, LinkOffset),
}

pub fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(
        any::<u8>().prop_filter("no NUL or /", |b| *b != 0 && *b != b'/'),
        1..10,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn xattr() -> impl Strategy<Value = Xattr> {
    (vec(1u8..=255, 1..20), vec(any::<u8>(), 0..40)).prop_map(|(n, v)| Xattr::new(n, v))
}

fn acl() -> impl Strategy<Value = Acl> {
    let user = (any::<u64>(), 0u64..8).prop_map(|(uid, perms)| AclUser { uid, perms });
    let group = (any::<u64>(), 0u64..8).prop_map(|(gid, perms)| AclGroup { gid, perms });
    let default = any::<[u64; 4]>().prop_map(|p| AclDefault {
        user_obj_perms: p[0],
        group_obj_perms: p[1],
        other_perms: p[2],
        mask_perms: p[3],
    });
    (
        vec(user.clone(), 0..3),
        vec(group.clone(), 0..3),
        proptest::option::of((0u64..8).prop_map(|perms| AclGroupObj { perms })),
        proptest::option::of(default),
        vec(user, 0..2),
        vec(group, 0..2),
    )
        .prop_map(|(users, groups, group_obj, default, du, dg)| Acl {
            users,
            groups,
            group_obj,
            default,
            default_users: du,
            default_groups: dg,
        })
}

pub fn metadata(file_type: FileType) -> impl Strategy<Value = Metadata> {
    let stat = (
        0u64..0o7777,
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        -100_000_000_000i64..100_000_000_000,
        0u32..1_000_000_000,
    )
        .prop_map(move |(perms, flags, uid, gid, secs, nanos)| Stat {
            flags,
            uid,
            gid,
            mtime: Mtime::new(secs, nanos).unwrap(),
            ..Stat::new(file_type, perms)
        });
    (
        stat,
        vec(xattr(), 0..3),
        acl(),
        proptest::option::of(vec(any::<u8>(), 0..20)),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(stat, xattrs, acl, fcaps, quota_project_id)| Metadata {
            stat,
            xattrs,
            acl,
            fcaps,
            quota_project_id,
        })
}

fn leaf() -> impl Strategy<Value = Node> {
    let target = vec(1u8..=255, 1..40);
    prop_oneof![
        3 => (metadata(FileType::Regular), vec(any::<u8>(), 0..600))
            .prop_map(|(m, c)| Node::File(m, c)),
        1 => (metadata(FileType::Symlink), target).prop_map(|(m, t)| Node::Symlink(m, t)),
        1 => (
            prop_oneof![Just(FileType::BlockDevice), Just(FileType::CharDevice)]
                .prop_flat_map(metadata),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(m, a, b)| Node::Device(m, a, b)),
        1 => prop_oneof![Just(FileType::Fifo), Just(FileType::Socket)]
            .prop_flat_map(metadata)
            .prop_map(Node::Special),
        1 => Just(Node::Hardlink),
    ]
}

/// A random directory tree (the root is a directory).
pub fn tree() -> impl Strategy<Value = Node> {
    let dir = leaf().prop_recursive(4, 48, 6, |inner| {
        (
            metadata(FileType::Directory),
            btree_map(name(), inner, 0..6),
        )
            .prop_map(|(m, c)| Node::Dir(m, c))
    });
    (metadata(FileType::Directory), btree_map(name(), dir, 0..6)).prop_map(|(m, c)| Node::Dir(m, c))
}

struct Walk<'e, W: Write, P: Write> {
    enc: &'e mut Encoder<W, P>,
    seen: Vec<Seen>,
    last_file: Option<(Vec<u8>, LinkOffset)>,
}

impl<W: Write, P: Write> Walk<'_, W, P> {
    fn children(
        &mut self,
        path: &[Vec<u8>],
        children: &BTreeMap<Vec<u8>, Node>,
    ) -> Result<(), EncodeError> {
        for (name, node) in children {
            let mut p = path.to_vec();
            p.push(name.clone());
            self.node(p, name, node)?;
        }
        Ok(())
    }

    fn node(&mut self, path: Vec<Vec<u8>>, name: &[u8], node: &Node) -> Result<(), EncodeError> {
        let entry = |m: &Metadata, k| Seen::Entry(path.clone(), m.clone(), k);
        let seen = match node {
            Node::File(m, contents) => {
                let mut w = self.enc.add_file(name, m, contents.len() as u64)?;
                w.write_all(contents).unwrap();
                let link = w.finish()?;
                self.last_file = Some((path.join(&b'/'), link));
                entry(m, Kind::File(contents.clone(), link))
            }
            Node::Symlink(m, t) => {
                self.enc.add_symlink(name, m, t)?;
                entry(m, Kind::Symlink(t.clone()))
            }
            Node::Device(m, a, b) => {
                self.enc.add_device(name, m, *a, *b)?;
                entry(m, Kind::Device(*a, *b))
            }
            Node::Special(m) if m.file_type() == Some(FileType::Fifo) => {
                self.enc.add_fifo(name, m)?;
                entry(m, Kind::Special)
            }
            Node::Special(m) => {
                self.enc.add_socket(name, m)?;
                entry(m, Kind::Special)
            }
            Node::Hardlink => {
                let Some((target, link)) = self.last_file.clone() else {
                    return Ok(());
                };
                self.enc.add_hardlink(name, &target, link)?;
                Seen::Entry(
                    path.clone(),
                    Metadata::default(),
                    Kind::Hardlink(target, link),
                )
            }
            Node::Dir(m, children) => {
                self.enc.create_directory(name, m)?;
                self.seen.push(entry(m, Kind::Dir));
                self.children(&path, children)?;
                self.enc.finish_directory()?;
                Seen::End(path)
            }
        };
        self.seen.push(seen);
        Ok(())
    }
}

/// Encodes `root` (a `Node::Dir`); returns (archive, payload stream, what a decoder must see).
pub fn encode(root: &Node, split: Option<Option<Vec<u8>>>) -> (Vec<u8>, Vec<u8>, Vec<Seen>) {
    let Node::Dir(meta, children) = root else {
        panic!("root must be a directory")
    };
    let mut payload = Vec::new();
    let (out, seen) = {
        let format = match split {
            Some(prelude) => Format::split(&mut payload, prelude),
            None => Format::V1,
        };
        let mut enc = Encoder::new(Vec::new(), format, meta).unwrap();
        let mut walk = Walk {
            enc: &mut enc,
            seen: vec![Seen::Entry(Vec::new(), meta.clone(), Kind::Dir)],
            last_file: None,
        };
        walk.children(&[], children).unwrap();
        let mut seen = walk.seen;
        seen.push(Seen::End(Vec::new()));
        (enc.finish().unwrap().0, seen)
    };
    (out, payload, seen)
}

/// Decodes an archive completely into the normalised view (payloads read through the decoder
/// for v1, from `payload` for v2).
pub fn decode(archive: &[u8], payload: &[u8]) -> Result<Vec<Seen>, DecodeError> {
    let mut decoder = Decoder::new(archive);
    let mut seen = Vec::new();
    while let Some(event) = decoder.next_event()? {
        let e = match event {
            Event::DirectoryEnd(end) => {
                seen.push(Seen::End(end.path));
                continue;
            }
            Event::Entry(e) => e,
        };
        let kind = match e.kind {
            EntryKind::Directory => Kind::Dir,
            EntryKind::File { payload: p, size } => {
                let contents = match p {
                    Payload::Inline => read_inline(&mut decoder, size)?,
                    Payload::Ref(r) => payload_slice(payload, r)?.to_vec(),
                };
                Kind::File(contents, e.filename_offset.unwrap())
            }
            EntryKind::Symlink { target } => Kind::Symlink(target),
            EntryKind::Device(d) => Kind::Device(d.major, d.minor),
            EntryKind::Fifo | EntryKind::Socket => Kind::Special,
            EntryKind::Hardlink {
                target_path,
                target,
            } => Kind::Hardlink(target_path, target),
        };
        seen.push(Seen::Entry(e.path, e.metadata, kind));
    }
    Ok(seen)
}

fn read_inline(decoder: &mut Decoder<&[u8]>, size: u64) -> Result<Vec<u8>, DecodeError> {
    let mut contents = Vec::new();
    let mut buf = [0u8; 97];
    loop {
        let n = decoder.read_payload(&mut buf)?;
        if n == 0 {
            break;
        }
        contents.extend_from_slice(&buf[..n]);
    }
    assert_eq!(contents.len() as u64, size);
    Ok(contents)
}
