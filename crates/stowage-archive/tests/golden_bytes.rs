//! Byte-exact golden test: a tiny archive (root directory, file "a" with 3 bytes, symlink "b")
//! assembled by hand from the spec's tables (§7.1–7.6), compared with the encoder's output and
//! decoded back.

use stowage_archive::format::FileType;
use stowage_archive::{
    payload_slice, Decoder, EncodeError, Encoder, EntryKind, Event, Format, Metadata, Mtime,
    Payload, Stat,
};

// Type constants, copied from the spec's table (§7.2), not from the crate.
const ENTRY: u64 = 0xd5956474e588acef;
const FILENAME: u64 = 0x16701121063917b3;
const SYMLINK: u64 = 0x27f971e7dbf5dc5f;
const PAYLOAD: u64 = 0x28147a1b0b7c1a25;
const PAYLOAD_REF: u64 = 0x419d3d6bc4ba977e;
const GOODBYE: u64 = 0x2fec4fa642d5731d;
const TAIL: u64 = 0xef5eed5b753e1555;
const FORMAT_VERSION: u64 = 0x730f6c75df16a40d;
const START_MARKER: u64 = 0x834c68c2194a4ed2;
const TAIL_MARKER: u64 = 0x6c72b78b984c81b5;
// SipHash-2-4 with the pxar keys of "a" and "b" (hash("a") < hash("b")).
const HASH_A: u64 = 0x0c26e9067c2c7bcf;
const HASH_B: u64 = 0x4d1da3f512e8c733;

const MTIME: i64 = 1_700_000_000;

fn item(htype: u64, content: &[u8]) -> Vec<u8> {
    let mut v = htype.to_le_bytes().to_vec();
    v.extend_from_slice(&(16 + content.len() as u64).to_le_bytes());
    v.extend_from_slice(content);
    v
}

fn stat_bytes(mode: u64) -> Vec<u8> {
    let mut v = mode.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes()); // flags
    v.extend_from_slice(&1000u32.to_le_bytes()); // uid
    v.extend_from_slice(&100u32.to_le_bytes()); // gid
    v.extend_from_slice(&MTIME.to_le_bytes());
    v.extend_from_slice(&7u32.to_le_bytes()); // nanos
    v.extend_from_slice(&[0; 4]); // padding
    v
}

fn goodbye(items: &[(u64, u64, u64)]) -> Vec<u8> {
    let content: Vec<u8> = items
        .iter()
        .flat_map(|(h, o, s)| [h.to_le_bytes(), o.to_le_bytes(), s.to_le_bytes()].concat())
        .collect();
    item(GOODBYE, &content)
}

fn meta(file_type: FileType, perms: u64) -> Metadata {
    Metadata::new(Stat {
        uid: 1000,
        gid: 100,
        mtime: Mtime::new(MTIME, 7).unwrap(),
        ..Stat::new(file_type, perms)
    })
}

/// Encodes the tiny tree; `prelude` selects a split archive.
fn encode_tiny(split: Option<Option<Vec<u8>>>) -> Result<(Vec<u8>, Vec<u8>), EncodeError> {
    let root = meta(FileType::Directory, 0o755);
    let file = meta(FileType::Regular, 0o644);
    let link = meta(FileType::Symlink, 0o777);
    let mut payload = Vec::new();
    let out = {
        let format = match split {
            Some(prelude) => Format::split(&mut payload, prelude),
            None => Format::V1,
        };
        let mut enc = Encoder::new(Vec::new(), format, &root)?;
        let mut w = enc.add_file(b"a", &file, 3)?;
        std::io::Write::write_all(&mut w, b"xyz").unwrap();
        w.finish()?;
        enc.add_symlink(b"b", &link, b"a")?;
        enc.finish()?.0
    };
    Ok((out, payload))
}

#[test]
fn unified_archive_bytes() {
    let mut want = Vec::new();
    want.extend(item(ENTRY, &stat_bytes(0o040755))); // 0..56
    want.extend(item(FILENAME, b"a\0")); // 56..74
    want.extend(item(ENTRY, &stat_bytes(0o100644))); // 74..130
    want.extend(item(PAYLOAD, b"xyz")); // 130..149
    want.extend(item(FILENAME, b"b\0")); // 149..167
    want.extend(item(ENTRY, &stat_bytes(0o120777))); // 167..223
    want.extend(item(SYMLINK, b"a\0")); // 223..241
    assert_eq!(want.len(), 241);
    // Two children sorted by hash [a, b], BST layout for n = 2 is [1, 0].
    want.extend(goodbye(&[
        (HASH_B, 241 - 149, 241 - 149),
        (HASH_A, 241 - 56, 149 - 56),
        (TAIL, 241, 16 + 3 * 24),
    ]));
    let (got, payload) = encode_tiny(None).unwrap();
    assert!(payload.is_empty());
    assert_eq!(got, want);

    let mut decoder = Decoder::new(&got[..]);
    let mut seen = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        if let Event::Entry(e) = &event {
            if matches!(e.kind, EntryKind::File { .. }) {
                let mut contents = Vec::new();
                std::io::Read::read_to_end(&mut decoder.payload_reader(), &mut contents).unwrap();
                assert_eq!(contents, b"xyz");
            }
        }
        seen.push(event);
    }
    assert_eq!(seen.len(), 4, "root, a, b, end of root");
    assert!(!decoder.is_split());
}

#[test]
fn split_archive_bytes() {
    let mut want = item(FORMAT_VERSION, &2u64.to_le_bytes()); // 0..24
    want.extend(item(0xe309d79d9f7b771b, b"{}")); // PRELUDE 24..42
    want.extend(item(ENTRY, &stat_bytes(0o040755))); // 42..98
    want.extend(item(FILENAME, b"a\0")); // 98..116
    want.extend(item(ENTRY, &stat_bytes(0o100644))); // 116..172
    let payload_ref = [16u64.to_le_bytes(), 3u64.to_le_bytes()].concat();
    want.extend(item(PAYLOAD_REF, &payload_ref)); // 172..204
    want.extend(item(FILENAME, b"b\0")); // 204..222
    want.extend(item(ENTRY, &stat_bytes(0o120777))); // 222..278
    want.extend(item(SYMLINK, b"a\0")); // 278..296
    assert_eq!(want.len(), 296);
    want.extend(goodbye(&[
        (HASH_B, 296 - 204, 296 - 204),
        (HASH_A, 296 - 98, 204 - 98),
        // The root's tail points to archive offset 0, before the version item.
        (TAIL, 296, 16 + 3 * 24),
    ]));
    let mut want_payload = item(START_MARKER, b"");
    want_payload.extend(item(PAYLOAD, b"xyz"));
    want_payload.extend(item(TAIL_MARKER, b""));

    let (got, payload) = encode_tiny(Some(Some(b"{}".to_vec()))).unwrap();
    assert_eq!(got, want);
    assert_eq!(payload, want_payload);

    let mut decoder = Decoder::new(&got[..]);
    let mut files = 0;
    while let Some(event) = decoder.next_event().unwrap() {
        if let Event::Entry(e) = event {
            if let EntryKind::File {
                payload: Payload::Ref(r),
                ..
            } = e.kind
            {
                assert_eq!(payload_slice(&payload, r).unwrap(), b"xyz");
                files += 1;
            }
        }
    }
    assert_eq!(files, 1);
    assert!(decoder.is_split());
    assert_eq!(decoder.prelude(), Some(&b"{}"[..]));
    stowage_archive::check_payload_stream(&payload).unwrap();
}
