//! The byte-level building blocks of the cases: dynamic and fixed indexes written out without
//! checks, DataBlobs and zstd frames made by hand, patching and splicing crafted bytes into
//! encoded archives, pxar items and metadata, and the good archives, catalogs, images and
//! configuration files that the control case and the cases damaged elsewhere are built from.

use stowage_archive::format::{self, Header};
use stowage_archive::{Encoder, Format, LinkOffset, Metadata, Mtime, Stat};
use stowage_format::blob::{encode_uncompressed, MAGIC_COMPRESSED};
use stowage_format::{sha256, CatalogWriter, DynamicIndex, FixedIndex};
use stowage_types::Digest;

use super::{Case, BACKUP_TIME, CTIME, UUID};

/// A dynamic index with these entries, encoded without any check (hostile ones too).
pub(super) fn didx(entries: Vec<(u64, Digest)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (end, digest) in &entries {
        body.extend_from_slice(&end.to_le_bytes());
        body.extend_from_slice(&digest.0);
    }
    let mut out = vec![0u8; 4096];
    out[..8].copy_from_slice(&stowage_format::dynamic_index::MAGIC);
    out[8..24].copy_from_slice(&UUID);
    out[24..32].copy_from_slice(&CTIME.to_le_bytes());
    out[32..64].copy_from_slice(&sha256(&body).0);
    out.extend_from_slice(&body);
    if let Ok(index) = DynamicIndex::decode(&out) {
        assert_eq!(
            index.encode().unwrap(),
            out,
            "the library encodes it the same"
        );
    }
    out
}

/// A fixed index, encoded without any check (hostile ones too).
pub(super) fn fidx(size: u64, chunk_size: u64, digests: &[Digest]) -> Vec<u8> {
    let body: Vec<u8> = digests.iter().flat_map(|d| d.0).collect();
    let mut out = vec![0u8; 4096];
    out[..8].copy_from_slice(&stowage_format::fixed_index::MAGIC);
    out[8..24].copy_from_slice(&UUID);
    out[24..32].copy_from_slice(&CTIME.to_le_bytes());
    out[32..64].copy_from_slice(&sha256(&body).0);
    out[64..72].copy_from_slice(&size.to_le_bytes());
    out[72..80].copy_from_slice(&chunk_size.to_le_bytes());
    out.extend_from_slice(&body);
    if let Ok(index) = FixedIndex::decode(&out) {
        assert_eq!(
            index.encode().unwrap(),
            out,
            "the library encodes it the same"
        );
    }
    out
}

/// CRC-32 (IEEE), bit by bit: enough for a few small blobs.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A compressed DataBlob around `frame` (any bytes), with a correct CRC.
pub(super) fn compressed_blob(frame: &[u8]) -> Vec<u8> {
    let mut out = MAGIC_COMPRESSED.to_vec();
    out.extend_from_slice(&crc32(frame).to_le_bytes());
    out.extend_from_slice(frame);
    out
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Window descriptor of a 128 KiB window (exponent 7, mantissa 0).
const ZSTD_WINDOW_128K: u8 = 7 << 3;
const ZSTD_BLOCK_MAX: u32 = 128 << 10;

fn zstd_block_header(last: bool, block_type: u32, size: u32) -> [u8; 3] {
    let v = u32::from(last) | (block_type << 1) | (size << 3);
    [v as u8, (v >> 8) as u8, (v >> 16) as u8]
}

/// A zstd frame whose header declares `declared` bytes of content, holding `data` (at most
/// 128 KiB) in one raw block.
pub(super) fn zstd_declaring(declared: u64, data: &[u8]) -> Vec<u8> {
    assert!(data.len() <= ZSTD_BLOCK_MAX as usize);
    let mut f = ZSTD_MAGIC.to_vec();
    // Frame_Content_Size of 8 bytes, a window descriptor, no checksum, no dictionary.
    f.push(0b1100_0000);
    f.push(ZSTD_WINDOW_128K);
    f.extend_from_slice(&declared.to_le_bytes());
    f.extend_from_slice(&zstd_block_header(true, 0, data.len() as u32));
    f.extend_from_slice(data);
    f
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB of `byte`, with no content size in its
/// header: 4 bytes per 128 KiB of output.
pub(super) fn zstd_rle(byte: u8, blocks: usize) -> Vec<u8> {
    let mut f = ZSTD_MAGIC.to_vec();
    f.push(0); // no Frame_Content_Size, a window descriptor
    f.push(ZSTD_WINDOW_128K);
    for i in 0..blocks {
        f.extend_from_slice(&zstd_block_header(i + 1 == blocks, 1, ZSTD_BLOCK_MAX));
        f.push(byte);
    }
    f
}

/// Where `from` occurs in `bytes`: it must occur exactly once.
fn only_occurrence(bytes: &[u8], from: &[u8]) -> usize {
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        at.len(),
        1,
        "{:?} occurs once",
        String::from_utf8_lossy(from)
    );
    at[0]
}

/// Replaces the one occurrence of `from` in `bytes` by `to` (of the same length).
pub(super) fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "patches keep the length");
    let at = only_occurrence(bytes, from);
    bytes[at..at + to.len()].copy_from_slice(to);
}

/// Replaces the one occurrence of `from` by `to` (of any length): later offsets shift.
pub(super) fn splice(bytes: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    let at = only_occurrence(bytes, from);
    bytes.splice(at..at + from.len(), to.iter().copied());
}

pub(super) fn header(htype: u64, content: u64) -> [u8; 16] {
    Header::with_content(htype, content).to_bytes()
}

/// The FILENAME item of `name`.
pub(super) fn filename_item(name: &[u8]) -> Vec<u8> {
    let mut item = header(format::FILENAME, name.len() as u64 + 1).to_vec();
    item.extend_from_slice(name);
    item.push(0);
    item
}

/// Replaces the FILENAME item of `from` by one of `to` (same length).
pub(super) fn rename(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    patch(bytes, &filename_item(from), &filename_item(to));
}

/// Sets the full size of the one item header of `htype` with `content` bytes to `full_size`.
pub(super) fn resize_item(bytes: &mut [u8], htype: u64, content: u64, full_size: u64) {
    let mut to = header(htype, content);
    to[8..].copy_from_slice(&full_size.to_le_bytes());
    patch(bytes, &header(htype, content), &to);
}

fn meta(file_type: format::FileType, perms: u64) -> Metadata {
    let mut stat = Stat::new(file_type, perms);
    stat.mtime = Mtime::new(BACKUP_TIME - 3600, 0).unwrap();
    Metadata::new(stat)
}

pub(super) fn dir_meta() -> Metadata {
    meta(format::FileType::Directory, 0o755)
}

pub(super) fn file_meta() -> Metadata {
    meta(format::FileType::Regular, 0o644)
}

pub(super) fn link_meta() -> Metadata {
    meta(format::FileType::Symlink, 0o777)
}

type Enc = Encoder<Vec<u8>>;

/// A unified archive built by `build`.
pub(super) fn unified(build: impl FnOnce(&mut Enc)) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), Format::unified(), &dir_meta()).unwrap();
    build(&mut enc);
    enc.finish().unwrap().0
}

/// A split archive built by `build`: (metadata stream, payload stream).
pub(super) fn split(build: impl FnOnce(&mut Encoder<Vec<u8>, Vec<u8>>)) -> (Vec<u8>, Vec<u8>) {
    let format = Format::split(Vec::new(), None);
    let mut enc = Encoder::new(Vec::new(), format, &dir_meta()).unwrap();
    build(&mut enc);
    let (meta, payload) = enc.finish().unwrap();
    (meta, payload.unwrap())
}

pub(super) fn add_file<W: std::io::Write, P: std::io::Write>(
    enc: &mut Encoder<W, P>,
    name: &[u8],
    data: &[u8],
) -> LinkOffset {
    add_file_with(enc, name, &file_meta(), data)
}

pub(super) fn add_file_with<W: std::io::Write, P: std::io::Write>(
    enc: &mut Encoder<W, P>,
    name: &[u8],
    meta: &Metadata,
    data: &[u8],
) -> LinkOffset {
    use std::io::Write as _;
    let mut w = enc.add_file(name, meta, data.len() as u64).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// A tree archive `root.pxar` (one chunk per 4 KiB of stream) and nothing else.
pub(super) fn tree_case(name: &'static str, about: &'static str, archive: Vec<u8>) -> Case {
    let mut case = Case::new(name, about);
    case.stream("root.pxar.didx", &archive, 4096);
    case
}

/// The archive of the control case and of the cases whose damage lies elsewhere.
pub(super) fn good_tree(tag: &str) -> Vec<u8> {
    unified(|e| {
        e.create_directory(b"dir", &dir_meta()).unwrap();
        let file = add_file(e, b"file", format!("hello from {tag}\n").as_bytes());
        e.finish_directory().unwrap();
        e.add_hardlink(b"hard", b"dir/file", file).unwrap();
        e.add_symlink(b"link", &link_meta(), b"dir/file").unwrap();
    })
}

/// The catalog of [`good_tree`].
pub(super) fn good_catalog(tag: &str) -> Vec<u8> {
    let mut w = CatalogWriter::new(Vec::new()).unwrap();
    w.start_directory(b"root.pxar.didx").unwrap();
    w.start_directory(b"dir").unwrap();
    let size = format!("hello from {tag}\n").len() as u64;
    w.add_file(b"file", size, BACKUP_TIME - 3600).unwrap();
    w.end_directory().unwrap();
    w.add_hardlink(b"hard").unwrap();
    w.add_symlink(b"link").unwrap();
    w.end_directory().unwrap();
    w.finish().unwrap()
}

pub(super) fn good_image(tag: &str) -> Vec<u8> {
    let mut data = vec![0u8; 1024];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ tag.len() as u8;
    }
    data[..tag.len()].copy_from_slice(tag.as_bytes());
    data
}

pub(super) fn good_conf(tag: &str) -> Vec<u8> {
    format!("# {tag}\nmemory: 2048\ncores: 2\n").into_bytes()
}

/// A snapshot with every kind of archive, all good: `root.pxar` with its catalog, `disk.img`,
/// `qemu-server.conf`.
pub(super) fn full_snapshot(name: &'static str, about: &'static str) -> Case {
    let mut case = Case::new(name, about);
    case.stream("root.pxar.didx", &good_tree(name), 4096);
    case.stream("catalog.pcat1.didx", &good_catalog(name), 4096);
    case.image("disk.img.fidx", &good_image(name));
    case.file(
        "qemu-server.conf.blob",
        encode_uncompressed(&good_conf(name)),
    );
    case
}
