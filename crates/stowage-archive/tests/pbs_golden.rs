//! Golden tests on archives written by Proxmox Backup Server itself (`../shared/testdata/pbs`):
//! both `.mpxar` files decode completely, every goodbye table verifies and finds every child by
//! name hash, and the payload references fit the payload index.

use std::collections::HashMap;

use stowage_archive::format::{self, Header};
use stowage_archive::goodbye::{self, GoodbyeTable};
use stowage_archive::{Decoder, Entry, EntryKind, Event, Payload, PayloadRef};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/pbs/");

fn testdata(name: &str) -> Option<Vec<u8>> {
    let path = format!("{DIR}{name}");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!("skipped: {path} is absent");
            None
        }
    }
}

struct Decoded {
    entries: Vec<Entry>,
    ends: Vec<stowage_archive::DirectoryEnd>,
    prelude: Option<Vec<u8>>,
    split: bool,
}

fn decode(bytes: &[u8]) -> Decoded {
    let mut decoder = Decoder::new(bytes);
    let mut entries = Vec::new();
    let mut ends = Vec::new();
    while let Some(event) = decoder.next_event().expect("PBS archive decodes") {
        match event {
            Event::Entry(e) => entries.push(*e),
            Event::DirectoryEnd(d) => ends.push(d),
        }
    }
    assert_eq!(decoder.position(), bytes.len() as u64);
    Decoded {
        entries,
        ends,
        prelude: decoder.prelude().map(<[u8]>::to_vec),
        split: decoder.is_split(),
    }
}

fn u64_at(bytes: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Walks every goodbye table independently of the decoder: the table parses, its tail points
/// at the directory's ENTRY, and a hash lookup of every child name lands on that child's
/// FILENAME. Returns, per child FILENAME offset, the size its goodbye item records.
fn check_goodbye_tables(bytes: &[u8], d: &Decoded) -> HashMap<u64, u64> {
    let mut sizes = HashMap::new();
    for end in &d.ends {
        let at = end.goodbye_offset;
        let header = Header::from_bytes(bytes[at as usize..][..16].try_into().unwrap());
        assert_eq!(header.htype, format::GOODBYE);
        let content = &bytes[at as usize + 16..(at + header.full_size) as usize];
        let table = GoodbyeTable::parse(content).unwrap();
        assert_eq!(table.len(), end.children);
        let dir = d.entries.iter().find(|e| e.path == end.path).unwrap();
        let entry_at = if end.path.is_empty() {
            0
        } else {
            dir.entry_offset
        };
        assert_eq!(at - table.tail().offset, entry_at);
        assert_eq!(table.tail().size, header.full_size);
        let children: Vec<&Entry> = d
            .entries
            .iter()
            .filter(|e| e.path.len() == end.path.len() + 1 && e.path.starts_with(&end.path))
            .collect();
        assert_eq!(children.len(), end.children);
        for child in children {
            let found = table.lookup(child.name().unwrap());
            assert_eq!(found.len(), 1);
            let target = found[0].target(at).unwrap();
            assert_eq!(Some(target), child.filename_offset.map(|o| o.0));
            let name_header =
                Header::from_bytes(bytes[target as usize..][..16].try_into().unwrap());
            assert_eq!(name_header.htype, format::FILENAME);
            let name = &bytes[target as usize + 16..(target + name_header.full_size) as usize - 1];
            assert_eq!(name, child.name().unwrap());
            sizes.insert(target, found[0].size);
        }
    }
    sizes
}

fn check_tree(d: &Decoded) -> Vec<PayloadRef> {
    assert!(d.split, "FORMAT_VERSION 2");
    assert_eq!(d.entries.len(), 111, "root + 10 folders + 100 files");
    assert_eq!(d.ends.len(), 11, "11 goodbye tables");
    assert!(d.ends.iter().all(|e| e.children == 10));
    assert_eq!(d.ends.last().unwrap().path, Vec::<Vec<u8>>::new());
    let mut refs = Vec::new();
    for e in &d.entries {
        match &e.kind {
            EntryKind::Directory => assert!(e.path.len() <= 1),
            EntryKind::File {
                size,
                payload: Payload::Ref(r),
            } => {
                assert_eq!(e.path.len(), 2);
                assert!(e.path[0].starts_with(b"folder_") && e.path[1].starts_with(b"file_"));
                assert_eq!(*size, r.size);
                refs.push(*r);
            }
            other => panic!("unexpected entry {other:?}"),
        }
    }
    assert_eq!(refs.len(), 100);
    refs
}

/// The payload stream's size is the last end offset of its dynamic index; payloads are laid
/// out back to back after PAYLOAD_START_MARKER and before PAYLOAD_TAIL_MARKER. `shift` is
/// where that stream begins inside the stream the references point into.
fn check_refs_against_payload_index(refs: &[PayloadRef], shift: u64) {
    let Some(didx) = testdata("backup-client-pxar-data.ppxar.didx") else {
        return;
    };
    assert_eq!((didx.len() - 4096) / 40, 100);
    let stream_size = u64_at(&didx, didx.len() as u64 - 40);
    let mut next = format::PAYLOAD_START_SIZE;
    for r in refs {
        assert_eq!(r.offset - shift, next);
        next = r.offset - shift + 16 + r.size;
    }
    assert_eq!(next + 16, stream_size, "then the PAYLOAD_TAIL_MARKER");
}

#[test]
fn decodes_pbs_data_mpxar() {
    let Some(bytes) = testdata("backup-client-pxar-data.mpxar") else {
        return;
    };
    assert_eq!(bytes.len(), 15070);
    let d = decode(&bytes);
    assert_eq!(d.prelude, None);
    let refs = check_tree(&d);
    check_refs_against_payload_index(&refs, 0);
    let sizes = check_goodbye_tables(&bytes, &d);
    // Quirk (spec §7.5): here the goodbye size of each file includes its payload size.
    for e in d
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
    {
        let at = e.filename_offset.unwrap().0;
        let meta = e.entry_offset + 16 + 40 + 32 - at;
        assert_eq!(sizes[&at], meta + 1_048_576);
    }
}

#[test]
fn decodes_pbs_expected_mpxar() {
    let Some(bytes) = testdata("backup-client-pxar-expected.mpxar") else {
        return;
    };
    assert_eq!(bytes.len(), 15086);
    let d = decode(&bytes);
    assert_eq!(d.prelude.as_deref(), Some(&[][..]), "an empty PRELUDE");
    let refs = check_tree(&d);
    // The re-encoding reused the old payloads: its payload stream is a new
    // PAYLOAD_START_MARKER followed by the old stream's chunks, so every reference points 16
    // bytes further than in the original.
    check_refs_against_payload_index(&refs, 16);
    let sizes = check_goodbye_tables(&bytes, &d);
    // Here goodbye sizes of files are their exact metadata extent.
    for e in d
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
    {
        let at = e.filename_offset.unwrap().0;
        assert_eq!(sizes[&at], e.entry_offset + 16 + 40 + 32 - at);
    }
}

/// Random access as a reader would do it: the last 24 bytes are the root's tail item.
#[test]
fn random_access_from_the_archive_tail() {
    for name in [
        "backup-client-pxar-data.mpxar",
        "backup-client-pxar-expected.mpxar",
    ] {
        let Some(bytes) = testdata(name) else {
            return;
        };
        let len = bytes.len() as u64;
        let tail = goodbye::archive_tail(&bytes[bytes.len() - 24..]).unwrap();
        let goodbye_at = len - tail.size;
        assert_eq!(
            goodbye_at - tail.offset,
            0,
            "root ENTRY offset is archive offset 0"
        );
        let table = GoodbyeTable::parse(&bytes[goodbye_at as usize + 16..]).unwrap();
        let folder = table.lookup(b"folder_7");
        assert_eq!(folder.len(), 1);
        let at = folder[0].target(goodbye_at).unwrap() as usize;
        assert_eq!(&bytes[at + 16..at + 25], b"folder_7\0");
        // The folder's own table ends where its goodbye item says the child ends.
        let folder_end = at as u64 + folder[0].size;
        let sub =
            goodbye::archive_tail(&bytes[folder_end as usize - 24..folder_end as usize]).unwrap();
        let sub_at = folder_end - sub.size;
        let sub_table =
            GoodbyeTable::parse(&bytes[sub_at as usize + 16..folder_end as usize]).unwrap();
        let file = sub_table.lookup(b"file_3");
        let file_at = file[0].target(sub_at).unwrap() as usize;
        assert_eq!(&bytes[file_at + 16..file_at + 23], b"file_3\0");
        assert!(table.lookup(b"file_3").is_empty());
    }
}

/// Re-encodes a decoded split archive with stowage's encoder. Files are added as reused
/// payload references (`reuse`) or with zero contents written to a discarded payload stream.
fn reencode(d: &Decoded, reuse: bool) -> Vec<u8> {
    use stowage_archive::{Encoder, Format};
    let root = &d.entries[0];
    let format = Format::split(std::io::sink(), d.prelude.clone());
    let mut enc = Encoder::new(Vec::new(), format, &root.metadata).unwrap();
    let mut events: Vec<(u64, Option<&Entry>)> = Vec::new();
    events.extend(d.entries[1..].iter().map(|e| (e.entry_offset, Some(e))));
    // The last DirectoryEnd is the root's, closed by `finish`.
    let (_, sub_dirs) = d.ends.split_last().unwrap();
    events.extend(sub_dirs.iter().map(|e| (e.goodbye_offset, None)));
    events.sort_by_key(|(at, _)| *at);
    for (_, event) in events {
        let Some(e) = event else {
            enc.finish_directory().unwrap();
            continue;
        };
        let name = e.name().unwrap();
        match &e.kind {
            EntryKind::Directory => enc.create_directory(name, &e.metadata).unwrap(),
            EntryKind::File {
                size,
                payload: Payload::Ref(r),
            } if reuse => {
                enc.add_file_reused(name, &e.metadata, *size, r.offset)
                    .unwrap();
            }
            EntryKind::File { size, .. } => {
                let mut w = enc.add_file(name, &e.metadata, *size).unwrap();
                std::io::copy(&mut std::io::repeat(0).take(*size), &mut w).unwrap();
                w.finish().unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    enc.finish().unwrap().0
}

use std::io::Read as _;

/// Re-encoding the PBS re-encoded archive (reused payloads, exact goodbye sizes, empty
/// PRELUDE) gives the very same bytes.
#[test]
fn reencoding_expected_mpxar_is_byte_identical() {
    let Some(bytes) = testdata("backup-client-pxar-expected.mpxar") else {
        return;
    };
    let again = reencode(&decode(&bytes), true);
    assert!(again == bytes, "re-encoded archive differs");
}

/// Re-encoding the original with newly written payloads gives the same bytes except the
/// goodbye sizes of files, which PBS wrote including the payload size (spec §7.5 quirk) and
/// stowage writes as the exact metadata extent.
#[test]
fn reencoding_data_mpxar_differs_only_in_file_goodbye_sizes() {
    let Some(bytes) = testdata("backup-client-pxar-data.mpxar") else {
        return;
    };
    let d = decode(&bytes);
    let mut patched = bytes.clone();
    for end in &d.ends {
        let at = end.goodbye_offset;
        let content = &bytes[at as usize + 16..][..24 * (end.children + 1)];
        let table = GoodbyeTable::parse(content).unwrap();
        for (slot, item) in table.items().enumerate() {
            let target = item.target(at).unwrap();
            let is_file = d.entries.iter().any(|e| {
                e.filename_offset.map(|o| o.0) == Some(target)
                    && matches!(e.kind, EntryKind::File { .. })
            });
            if is_file {
                let size_at = at as usize + 16 + slot * 24 + 16;
                let fixed = item.size - 1_048_576;
                patched[size_at..size_at + 8].copy_from_slice(&fixed.to_le_bytes());
            }
        }
    }
    assert_ne!(patched, bytes);
    let again = reencode(&d, false);
    assert!(
        again == patched,
        "re-encoded archive differs beyond file goodbye sizes"
    );
}
