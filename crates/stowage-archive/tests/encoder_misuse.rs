//! The encoder refuses misuse with a typed error (and keeps going when nothing was written),
//! and writes reused payload references for change detection.

use std::io::Write;

use stowage_archive::format::FileType;
use stowage_archive::{
    payload_slice, Decoder, EncodeError, Encoder, EntryKind, Event, Format, Metadata, NameError,
    Payload, Stat, Xattr,
};
use stowage_types::ErrorClass;

fn meta(ft: FileType) -> Metadata {
    Metadata::new(Stat::new(ft, 0o640))
}

fn unified() -> Encoder<Vec<u8>> {
    Encoder::new(Vec::new(), Format::unified(), &meta(FileType::Directory)).unwrap()
}

fn decodes(bytes: &[u8]) -> usize {
    Decoder::new(bytes)
        .map(|r| r.unwrap())
        .filter(|e| matches!(e, Event::Entry(_)))
        .count()
}

#[test]
fn refused_names_and_types_leave_the_encoder_usable() {
    let mut enc = unified();
    let fifo = meta(FileType::Fifo);
    for (bad, reason) in [
        (&b""[..], NameError::Empty),
        (b".", NameError::Dot),
        (b"..", NameError::Dot),
        (b"a/b", NameError::Slash),
        (b"a\0", NameError::Nul),
    ] {
        let e = enc.add_fifo(bad, &fifo).unwrap_err();
        assert!(matches!(e, EncodeError::InvalidName { reason: r, .. } if r == reason));
    }
    enc.add_fifo(b"m", &fifo).unwrap();
    assert!(matches!(
        enc.add_fifo(b"m", &fifo),
        Err(EncodeError::NameOrder { .. })
    ));
    assert!(matches!(
        enc.add_fifo(b"a", &fifo),
        Err(EncodeError::NameOrder { .. })
    ));
    assert!(matches!(
        enc.add_socket(b"n", &fifo),
        Err(EncodeError::WrongType { .. })
    ));
    assert!(matches!(
        enc.add_file(b"n", &fifo, 0),
        Err(EncodeError::WrongType { .. })
    ));
    assert!(matches!(
        enc.add_device(b"n", &fifo, 1, 2),
        Err(EncodeError::WrongType { .. })
    ));
    let link = meta(FileType::Symlink);
    assert!(matches!(
        enc.add_symlink(b"n", &link, b""),
        Err(EncodeError::InvalidSymlink { .. })
    ));
    let mut bad_xattr = meta(FileType::Socket);
    bad_xattr
        .xattrs
        .push(Xattr::new(&b"user.\0x"[..], &b""[..]));
    assert!(matches!(
        enc.add_socket(b"n", &bad_xattr),
        Err(EncodeError::InvalidXattrName { .. })
    ));
    let mut huge = meta(FileType::Socket);
    huge.fcaps = Some(vec![0; 70_000]);
    assert!(matches!(
        enc.add_socket(b"n", &huge),
        Err(EncodeError::TooLarge { .. })
    ));
    assert!(matches!(
        enc.finish_directory(),
        Err(EncodeError::NoOpenDirectory)
    ));
    enc.add_socket(b"n", &meta(FileType::Socket)).unwrap();
    let (bytes, _) = enc.finish().unwrap();
    assert_eq!(decodes(&bytes), 3);
}

#[test]
fn file_contents_must_match_the_declared_size() {
    let mut enc = unified();
    let mut w = enc.add_file(b"a", &meta(FileType::Regular), 3).unwrap();
    let e = w.write_all(b"1234").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    w.write_all(b"12").unwrap();
    assert_eq!(w.remaining(), 1);
    let e = w.finish().unwrap_err();
    assert!(matches!(
        e,
        EncodeError::IncompleteFile {
            written: 2,
            size: 3
        }
    ));
    assert!(matches!(enc.finish(), Err(EncodeError::Poisoned)));

    let mut enc = unified();
    {
        let mut w = enc.add_file(b"a", &meta(FileType::Regular), 3).unwrap();
        w.write_all(b"1").unwrap();
    }
    let e = enc.add_fifo(b"b", &meta(FileType::Fifo)).unwrap_err();
    assert!(matches!(e, EncodeError::IncompleteFile { .. }));
}

#[test]
fn structure_errors() {
    let mut enc = unified();
    enc.create_directory(b"d", &meta(FileType::Directory))
        .unwrap();
    let e = enc.finish().unwrap_err();
    assert!(matches!(e, EncodeError::UnfinishedDirectories(1)));

    let mut enc = unified();
    let w = enc.add_file(b"a", &meta(FileType::Regular), 0).unwrap();
    let link = w.finish().unwrap();
    let e = enc
        .add_hardlink(b"b", b"a", stowage_archive::LinkOffset(enc.position()))
        .unwrap_err();
    assert!(matches!(e, EncodeError::HardlinkOffset { .. }));
    let e = enc.add_hardlink(b"b", b"/a", link).unwrap_err();
    assert!(matches!(e, EncodeError::InvalidHardlinkPath { .. }));
    enc.add_hardlink(b"b", b"a", link).unwrap();
    let e = enc
        .add_file_reused(b"c", &meta(FileType::Regular), 1, 16)
        .unwrap_err();
    assert!(matches!(e, EncodeError::NotSplit { .. }));
    let (bytes, _) = enc.finish().unwrap();
    assert_eq!(decodes(&bytes), 3);

    let root = meta(FileType::Directory);
    let big = Some(vec![0; 16 * 1024 * 1024 + 1]);
    let e = Encoder::new(Vec::new(), Format::split(Vec::new(), big), &root)
        .err()
        .unwrap();
    assert!(matches!(e, EncodeError::TooLarge { .. }));
    let e = Encoder::new(Vec::new(), Format::unified(), &meta(FileType::Regular)).err();
    assert!(matches!(e, Some(EncodeError::WrongType { .. })));
}

struct Full;

impl Write for Full {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(28))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_failures_poison_and_classify() {
    let e = Encoder::new(Full, Format::unified(), &meta(FileType::Directory))
        .err()
        .unwrap();
    assert!(matches!(e, EncodeError::Io { offset: 0, .. }));
    assert_eq!(e.class(), ErrorClass::NoSpace);
    let mut enc = Encoder::new(
        Vec::new(),
        Format::split(Full, None),
        &meta(FileType::Directory),
    );
    assert!(matches!(
        enc.as_mut().err(),
        Some(EncodeError::Io {
            stream: "payload",
            ..
        })
    ));
}

/// Change detection: a second archive refers to the payloads of the first one, whose stream
/// the caller appends after its own start marker (as PBS re-appends known chunks), then adds
/// a new file after it.
#[test]
fn reused_payload_references() {
    let root = meta(FileType::Directory);
    let file = meta(FileType::Regular);
    let mut old_payload = Vec::new();
    let mut enc = Encoder::new(Vec::new(), Format::split(&mut old_payload, None), &root).unwrap();
    for (name, contents) in [(&b"a"[..], &b"alpha"[..]), (b"b", b"beta")] {
        let mut w = enc.add_file(name, &file, contents.len() as u64).unwrap();
        w.write_all(contents).unwrap();
        w.finish().unwrap();
    }
    enc.finish().unwrap();

    let mut new_payload = Vec::new();
    let mut enc = Encoder::new(Vec::new(), Format::split(&mut new_payload, None), &root).unwrap();
    let shift = enc.payload_position();
    assert_eq!(shift, 16);
    enc.advance_payload(old_payload.len() as u64).unwrap();
    enc.add_file_reused(b"a", &file, 5, shift + 16).unwrap();
    enc.add_file_reused(b"b", &file, 4, shift + 16 + 16 + 5)
        .unwrap();
    let mut w = enc.add_file(b"c", &file, 5).unwrap();
    w.write_all(b"gamma").unwrap();
    w.finish().unwrap();
    let e = enc.add_file_reused(b"d", &file, 1, 3).unwrap_err();
    assert!(matches!(e, EncodeError::PayloadOffset { .. }));
    let (archive, _) = enc.finish().unwrap();

    // The real stream: our start marker, the old stream, then what the encoder wrote after.
    let stream = [&new_payload[..16], &old_payload[..], &new_payload[16..]].concat();
    stowage_archive::check_payload_stream(&stream).unwrap();
    let mut contents = Vec::new();
    for event in Decoder::new(&archive[..]) {
        if let Event::Entry(e) = event.unwrap() {
            if let EntryKind::File {
                payload: Payload::Ref(r),
                ..
            } = e.kind
            {
                contents.push(payload_slice(&stream, r).unwrap().to_vec());
            }
        }
    }
    assert_eq!(contents, [&b"alpha"[..], b"beta", b"gamma"]);
}
