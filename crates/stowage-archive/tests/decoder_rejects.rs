//! The decoder refuses every kind of invalid archive with an error naming the offending
//! offset: bad names, item order, sizes, goodbye tables, hardlinks, versions, truncation.

use stowage_archive::format::{self as f, FileType};
use stowage_archive::goodbye::{self, ChildRecord};
use stowage_archive::{
    payload_slice, DecodeError, DecodeErrorKind as K, Decoder, Encoder, Event, Format,
    GoodbyeError, Metadata, NameError, PayloadRef, Stat,
};

fn item(htype: u64, content: &[u8]) -> Vec<u8> {
    let mut v = f::Header::with_content(htype, content.len() as u64)
        .to_bytes()
        .to_vec();
    v.extend_from_slice(content);
    v
}

fn entry(ft: FileType) -> Vec<u8> {
    item(f::ENTRY, &Stat::new(ft, 0o755).to_bytes())
}

fn name(n: &[u8]) -> Vec<u8> {
    item(f::FILENAME, &[n, b"\0"].concat())
}

/// Decodes everything; returns the error (panics if the archive is accepted).
fn rejected(bytes: &[u8]) -> DecodeError {
    let mut decoder = Decoder::new(bytes);
    loop {
        match decoder.next_event() {
            Ok(Some(Event::Entry(_))) | Ok(Some(Event::DirectoryEnd(_))) => {}
            Ok(None) => panic!("archive accepted"),
            Err(e) => {
                assert_eq!(decoder.next_event().unwrap(), None, "fused after an error");
                return e;
            }
        }
    }
}

/// root dir + one child (items given) + a correct goodbye table.
fn one_child(child: &[u8]) -> Vec<u8> {
    let mut v = entry(FileType::Directory);
    let filename_offset = v.len() as u64;
    v.extend_from_slice(child);
    let kids = [ChildRecord {
        hash: f::hash_name(b"x"),
        filename_offset,
        size: child.len() as u64,
        check_size: true,
    }];
    let goodbye_offset = v.len() as u64;
    v.extend(item(
        f::GOODBYE,
        &goodbye::build_table(&kids, goodbye_offset, 0),
    ));
    v
}

fn fifo_named(n: &[u8]) -> Vec<u8> {
    [name(n), entry(FileType::Fifo)].concat()
}

#[test]
fn a_correct_hand_built_archive_is_accepted() {
    let bytes = one_child(&fifo_named(b"x"));
    let events: Vec<_> = Decoder::new(&bytes[..]).collect::<Result<_, _>>().unwrap();
    assert_eq!(events.len(), 3);
}

#[test]
fn bad_names_are_errors_never_returned() {
    for (bad, reason) in [
        (&b"a/b"[..], NameError::Slash),
        (b".", NameError::Dot),
        (b"..", NameError::Dot),
        (b"a\0b", NameError::Nul),
        (b"", NameError::Empty),
    ] {
        let e = rejected(&one_child(&fifo_named(bad)));
        assert!(
            matches!(e.kind, K::InvalidName(r) if r == reason),
            "{bad:?}: {e}"
        );
        assert_eq!(e.offset, 56, "the FILENAME item");
    }
    let e = rejected(&one_child(&item(f::FILENAME, b"x")));
    assert!(matches!(e.kind, K::MissingNul("FILENAME")));
    let long = vec![b'n'; f::MAX_NAME_LEN + 1];
    let e = rejected(&one_child(&fifo_named(&long)));
    assert!(matches!(
        e.kind,
        K::TooLarge {
            item: "FILENAME",
            ..
        }
    ));
}

#[test]
fn children_must_be_in_strictly_increasing_order() {
    for (first, second) in [(&b"b"[..], &b"a"[..]), (b"a", b"a")] {
        let mut v = entry(FileType::Directory);
        v.extend(fifo_named(first));
        let at = v.len() as u64;
        v.extend(fifo_named(second));
        let e = rejected(&v);
        assert!(matches!(e.kind, K::NameOrder));
        assert_eq!(e.offset, at);
    }
}

#[test]
fn attributes_must_follow_the_spec_order() {
    let user = item(f::ACL_USER, &[0; 16]);
    let xattr = item(f::XATTR, b"user.a\0v");
    let group_obj = item(f::ACL_GROUP_OBJ, &[0; 8]);
    for attrs in [
        [user.clone(), xattr.clone()].concat(),
        [group_obj.clone(), group_obj].concat(),
        [item(f::QUOTA_PROJID, &[0; 8]), user].concat(),
    ] {
        let e = rejected(&one_child(&[fifo_named(b"x"), attrs].concat()));
        assert!(matches!(e.kind, K::Unexpected { .. }), "{e}");
    }
    let ok = one_child(&[fifo_named(b"x"), xattr.clone(), xattr].concat());
    assert!(Decoder::new(&ok[..]).all(|r| r.is_ok()));
}

#[test]
fn fixed_size_items_must_have_their_size() {
    let e = rejected(&one_child(
        &[fifo_named(b"x"), item(f::ACL_USER, &[0; 15])].concat(),
    ));
    assert!(matches!(
        e.kind,
        K::WrongSize {
            item: "ACL_USER",
            len: 15,
            expected: 16
        }
    ));
    let e = rejected(&item(f::ENTRY, &[0; 39]));
    assert!(matches!(e.kind, K::WrongSize { item: "ENTRY", .. }));
    let mut huge = entry(FileType::Directory);
    huge.extend(
        f::Header {
            htype: f::XATTR,
            full_size: u64::MAX,
        }
        .to_bytes(),
    );
    let e = rejected(&huge);
    assert!(matches!(e.kind, K::TooLarge { item: "XATTR", .. }));
    assert_eq!(e.offset, 56);
    let tiny = f::Header {
        htype: f::ENTRY,
        full_size: 15,
    }
    .to_bytes();
    assert!(matches!(rejected(&tiny).kind, K::BadHeaderSize { .. }));
}

#[test]
fn entries_need_their_completing_item() {
    let symlink = [name(b"x"), entry(FileType::Symlink)].concat();
    let e = rejected(&one_child(&symlink));
    assert!(matches!(
        e.kind,
        K::Unexpected {
            found: "GOODBYE",
            ..
        }
    ));
    let empty = [symlink.clone(), item(f::SYMLINK, b"\0")].concat();
    assert!(matches!(
        rejected(&one_child(&empty)).kind,
        K::InvalidSymlink
    ));
    let file = [name(b"x"), entry(FileType::Regular)].concat();
    let split_ref = [file.clone(), item(f::PAYLOAD_REF, &[16; 16])].concat();
    assert!(matches!(
        rejected(&one_child(&split_ref)).kind,
        K::Unexpected { .. }
    ));
    let mut odd = entry(FileType::Directory);
    odd.extend(name(b"x"));
    odd.extend(item(
        f::ENTRY,
        &Stat {
            mode: 0o644,
            ..Stat::default()
        }
        .to_bytes(),
    ));
    assert!(matches!(rejected(&odd).kind, K::UnknownFileType(0o644)));
    assert!(matches!(
        rejected(&entry(FileType::Regular)).kind,
        K::RootNotDirectory
    ));
    let unknown = [entry(FileType::Directory), item(0x1234, b"")].concat();
    assert!(matches!(rejected(&unknown).kind, K::UnknownItem(0x1234)));
}

#[test]
fn goodbye_tables_are_verified() {
    let good = one_child(&fifo_named(b"x"));
    let goodbye_at = good.len() - 16 - 48;
    let mut bad_hash = good.clone();
    bad_hash[goodbye_at + 16] ^= 1;
    let e = rejected(&bad_hash);
    assert!(matches!(e.kind, K::Goodbye(GoodbyeError::Item { .. })));
    assert_eq!(e.offset, goodbye_at as u64);
    let mut bad_tail = good.clone();
    bad_tail[goodbye_at + 16 + 24 + 8] ^= 1;
    assert!(matches!(
        rejected(&bad_tail).kind,
        K::Goodbye(GoodbyeError::TailOffset { .. })
    ));
    let mut bad_size = good.clone();
    bad_size[goodbye_at + 16 + 16] ^= 1;
    assert!(matches!(
        rejected(&bad_size).kind,
        K::Goodbye(GoodbyeError::Size { .. })
    ));
    let mut bad_count = good[..goodbye_at].to_vec();
    bad_count.extend(item(f::GOODBYE, &good[goodbye_at + 16 + 24..]));
    assert!(matches!(
        rejected(&bad_count).kind,
        K::WrongSize {
            item: "GOODBYE",
            ..
        }
    ));
}

#[test]
fn hardlinks_must_point_back() {
    for rel in [0u64, 57, u64::MAX] {
        let link = [
            name(b"x"),
            item(f::HARDLINK, &[&rel.to_le_bytes()[..], b"a\0"].concat()),
        ];
        let e = rejected(&one_child(&link.concat()));
        assert!(matches!(e.kind, K::HardlinkOffset(r) if r == rel), "{rel}");
    }
    let link = [
        name(b"x"),
        item(f::HARDLINK, &[&1u64.to_le_bytes()[..], b"../a\0"].concat()),
    ];
    assert!(matches!(
        rejected(&one_child(&link.concat())).kind,
        K::InvalidHardlinkPath(_)
    ));
}

#[test]
fn version_and_prelude_rules() {
    let v3 = item(f::FORMAT_VERSION, &3u64.to_le_bytes());
    assert!(matches!(rejected(&v3).kind, K::BadVersion(3)));
    let late = [
        entry(FileType::Directory),
        item(f::FORMAT_VERSION, &2u64.to_le_bytes()),
    ];
    assert!(matches!(
        rejected(&late.concat()).kind,
        K::Unexpected { .. }
    ));
    let no_version = [item(f::PRELUDE, b""), entry(FileType::Directory)];
    assert!(matches!(
        rejected(&no_version.concat()).kind,
        K::Unexpected { .. }
    ));
    let v2 = item(f::FORMAT_VERSION, &2u64.to_le_bytes());
    let twice = [v2.clone(), item(f::PRELUDE, b""), item(f::PRELUDE, b"")];
    assert!(matches!(
        rejected(&twice.concat()).kind,
        K::Unexpected { .. }
    ));
    let legacy_in_v2 = [v2.clone(), item(f::ENTRY_V1, &[0; 32])];
    assert!(matches!(
        rejected(&legacy_in_v2.concat()).kind,
        K::Unexpected { .. }
    ));
    let inline_in_v2 = [
        v2,
        entry(FileType::Directory),
        name(b"x"),
        entry(FileType::Regular),
        item(f::PAYLOAD, b""),
    ];
    assert!(matches!(
        rejected(&inline_in_v2.concat()).kind,
        K::Unexpected { .. }
    ));
}

fn tiny_archive() -> Vec<u8> {
    let root = Metadata::new(Stat::new(FileType::Directory, 0o755));
    let mut enc = Encoder::new(Vec::new(), Format::unified(), &root).unwrap();
    let file = Metadata::new(Stat::new(FileType::Regular, 0o644));
    let mut w = enc.add_file(b"f", &file, 5).unwrap();
    std::io::Write::write_all(&mut w, b"12345").unwrap();
    let link = w.finish().unwrap();
    enc.create_directory(b"g", &root).unwrap();
    enc.add_hardlink(b"h", b"f", link).unwrap();
    enc.finish_directory().unwrap();
    enc.finish().unwrap().0
}

#[test]
fn every_truncation_and_trailing_data_is_an_error() {
    let bytes = tiny_archive();
    assert!(Decoder::new(&bytes[..]).all(|r| r.is_ok()));
    for len in 0..bytes.len() {
        let e = rejected(&bytes[..len]);
        assert!(matches!(e.kind, K::Truncated), "prefix {len}: {e}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let e = rejected(&longer);
    assert!(matches!(e.kind, K::TrailingData));
    assert_eq!(e.offset, bytes.len() as u64);
}

#[test]
fn legacy_entry_v1_archives_decode() {
    let v1_stat = |mode: u64| {
        let mut b = mode.to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&2_500_000_000u64.to_le_bytes());
        item(f::ENTRY_V1, &b)
    };
    let mut v = v1_stat(0o040755);
    let child = [name(b"x"), v1_stat(0o100644), item(f::PAYLOAD, b"ab")].concat();
    v.extend_from_slice(&child);
    let kids = [ChildRecord {
        hash: f::hash_name(b"x"),
        filename_offset: 48,
        size: child.len() as u64,
        check_size: true,
    }];
    let at = v.len() as u64;
    v.extend(item(f::GOODBYE, &goodbye::build_table(&kids, at, 0)));
    let events: Vec<Event> = Decoder::new(&v[..]).collect::<Result<_, _>>().unwrap();
    let Event::Entry(file) = &events[1] else {
        panic!()
    };
    assert_eq!(file.metadata.stat.mtime.secs, 2);
    assert_eq!(file.metadata.stat.mtime.nanos, 500_000_000);
}

#[test]
fn payload_stream_checks() {
    let mut stream = item(f::PAYLOAD_START_MARKER, b"");
    stream.extend(item(f::PAYLOAD, b"abc"));
    stream.extend(item(f::PAYLOAD_TAIL_MARKER, b""));
    stowage_archive::check_payload_stream(&stream).unwrap();
    let r = PayloadRef {
        offset: 16,
        size: 3,
    };
    assert_eq!(payload_slice(&stream, r).unwrap(), b"abc");
    for bad in [
        PayloadRef {
            offset: 16,
            size: 4,
        },
        PayloadRef {
            offset: 17,
            size: 3,
        },
        PayloadRef { offset: 0, size: 0 },
        PayloadRef {
            offset: u64::MAX,
            size: u64::MAX,
        },
    ] {
        assert!(payload_slice(&stream, bad).is_err(), "{bad:?}");
    }
    assert!(stowage_archive::check_payload_stream(&stream[16..]).is_err());
    assert!(stowage_archive::check_payload_stream(&stream[..stream.len() - 1]).is_err());
}

/// Inputs that once crashed the `pxar_decode` fuzz target (kept in its corpus) decode to an
/// error or to events, without a panic.
#[test]
fn inputs_fuzzing_found_do_not_panic() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pxar_decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("regression-")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut decoder = Decoder::new(&bytes[..]);
        while let Ok(Some(_)) = decoder.next_event() {}
        seen += 1;
    }
    assert!(seen > 0, "no regression inputs found");
}
