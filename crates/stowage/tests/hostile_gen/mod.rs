//! The generator of the hostile-input corpus under `tests/hostile/`: crafted snapshots, one
//! directory per case, each holding the files of a snapshot directory (`index.json.blob`,
//! indexes, blobs) and a `chunks/` directory with the chunk files it needs.
//!
//! Everything is deterministic (fixed uuids, ctimes and backup time; uncompressed blobs, or zstd
//! frames written out here byte by byte), so regenerating gives the same bytes. The checked-in
//! files are the corpus; this code documents how they were made. Regenerate with
//! `STOWAGE_REGENERATE_HOSTILE=1 cargo test -p stowage --test hostile_input regenerate`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use stowage_archive::format::{self, Header};
use stowage_archive::{AclUser, Encoder, Format, LinkOffset, Metadata, Mtime, Stat, Xattr};
use stowage_format::blob::{encode_uncompressed, MAGIC_COMPRESSED};
use stowage_format::catalog::varint::encode_varint;
use stowage_format::{sha256, CatalogWriter, CryptMode, DynamicIndex, FileEntry, FixedIndex};
use stowage_types::Digest;

/// Every case is the snapshot `host/1/2023-11-14T22:13:20Z`.
pub const BACKUP_TYPE: &str = "host";
pub const BACKUP_ID: &str = "1";
pub const BACKUP_TIME: i64 = 1_700_000_000;
pub const SNAPSHOT: &str = "host/1/2023-11-14T22:13:20Z";

const UUID: [u8; 16] = *b"stowage-hostile!";
const CTIME: i64 = BACKUP_TIME;
/// 2^60: the "huge" size declared by many cases.
pub const HUGE: u64 = 1 << 60;
const MIB: u64 = 1 << 20;

/// The snapshot files and chunks of one case.
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    /// File name in the snapshot directory -> bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Chunk file name (64 hex digits) -> bytes.
    pub chunks: BTreeMap<String, Vec<u8>>,
    /// The manifest's file list, in order; `manifest_raw` replaces the whole manifest.
    entries: Vec<FileEntry>,
    manifest_raw: Option<Vec<u8>>,
}

impl Case {
    fn new(name: &'static str, about: &'static str) -> Case {
        Case {
            name,
            about,
            files: BTreeMap::new(),
            chunks: BTreeMap::new(),
            entries: Vec::new(),
            manifest_raw: None,
        }
    }

    /// Stores `data` as an uncompressed chunk; returns its digest.
    fn chunk(&mut self, data: &[u8]) -> Digest {
        let digest = sha256(data);
        self.chunks
            .insert(digest.to_hex(), encode_uncompressed(data));
        digest
    }

    /// Stores `blob` (any bytes) as the chunk file of `digest`.
    fn chunk_file(&mut self, digest: Digest, blob: Vec<u8>) {
        self.chunks.insert(digest.to_hex(), blob);
    }

    /// A snapshot file listed in the manifest as an honest writer would list these bytes.
    fn file(&mut self, name: &str, bytes: Vec<u8>) {
        self.entries.push(honest_entry(name, &bytes));
        self.files.insert(name.to_string(), bytes);
    }

    /// A dynamic index over `stream`, cut into chunks of at most `piece` bytes.
    fn stream(&mut self, name: &str, stream: &[u8], piece: usize) {
        let mut entries = Vec::new();
        let mut end = 0u64;
        for part in stream.chunks(piece) {
            end += part.len() as u64;
            entries.push((end, self.chunk(part)));
        }
        self.file(name, didx(entries));
    }

    /// A fixed index (4 MiB chunks) over a small image: one chunk.
    fn image(&mut self, name: &str, data: &[u8]) {
        let digest = self.chunk(data);
        self.file(name, fidx(data.len() as u64, 4 * MIB, &[digest]));
    }

    /// The whole manifest: `files` as listed, or the raw replacement.
    fn manifest(&self) -> Vec<u8> {
        if let Some(raw) = &self.manifest_raw {
            return raw.clone();
        }
        let json = serde_json::json!({
            "backup-type": BACKUP_TYPE,
            "backup-id": BACKUP_ID,
            "backup-time": BACKUP_TIME,
            "files": self.entries,
            "signature": null,
            "unprotected": {},
        });
        encode_uncompressed(&serde_json::to_vec_pretty(&json).unwrap())
    }

    /// Writes the case into `dir` (which must not exist yet).
    fn write(&self, dir: &Path) {
        fs::create_dir_all(dir.join("chunks")).unwrap();
        fs::write(dir.join("index.json.blob"), self.manifest()).unwrap();
        for (name, bytes) in &self.files {
            fs::write(dir.join(name), bytes).unwrap();
        }
        for (name, bytes) in &self.chunks {
            fs::write(dir.join("chunks").join(name), bytes).unwrap();
        }
    }
}

/// The manifest entry an honest writer makes for these bytes (also for hostile ones: what it
/// would compute from them), so that readers get past the manifest to the hostile part.
fn honest_entry(name: &str, bytes: &[u8]) -> FileEntry {
    let body = bytes.get(4096..).unwrap_or_default();
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
    };
    let (csum, size) = if name.ends_with(".didx") {
        let complete = body.len() / 40;
        let size = complete.checked_sub(1).map_or(0, |i| u64_at(body, i * 40));
        (sha256(body), size)
    } else if name.ends_with(".fidx") {
        (sha256(body), u64_at(bytes, 64))
    } else {
        (sha256(bytes), bytes.len() as u64)
    };
    FileEntry {
        crypt_mode: CryptMode::None,
        csum,
        filename: name.to_string(),
        size,
    }
}

/// A dynamic index with these entries, encoded without any check (hostile ones too).
fn didx(entries: Vec<(u64, Digest)>) -> Vec<u8> {
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
fn fidx(size: u64, chunk_size: u64, digests: &[Digest]) -> Vec<u8> {
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
fn compressed_blob(frame: &[u8]) -> Vec<u8> {
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
fn zstd_declaring(declared: u64, data: &[u8]) -> Vec<u8> {
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
fn zstd_rle(byte: u8, blocks: usize) -> Vec<u8> {
    let mut f = ZSTD_MAGIC.to_vec();
    f.push(0); // no Frame_Content_Size, a window descriptor
    f.push(ZSTD_WINDOW_128K);
    for i in 0..blocks {
        f.extend_from_slice(&zstd_block_header(i + 1 == blocks, 1, ZSTD_BLOCK_MAX));
        f.push(byte);
    }
    f
}

/// Replaces the one occurrence of `from` in `bytes` by `to` (of the same length).
fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "patches keep the length");
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
    bytes[at[0]..at[0] + to.len()].copy_from_slice(to);
}

/// Replaces the one occurrence of `from` by `to` (of any length): later offsets shift.
fn splice(bytes: &mut Vec<u8>, from: &[u8], to: &[u8]) {
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
    bytes.splice(at[0]..at[0] + from.len(), to.iter().copied());
}

fn header(htype: u64, content: u64) -> [u8; 16] {
    Header::with_content(htype, content).to_bytes()
}

/// The FILENAME item of `name`.
fn filename_item(name: &[u8]) -> Vec<u8> {
    let mut item = header(format::FILENAME, name.len() as u64 + 1).to_vec();
    item.extend_from_slice(name);
    item.push(0);
    item
}

/// Replaces the FILENAME item of `from` by one of `to` (same length).
fn rename(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    patch(bytes, &filename_item(from), &filename_item(to));
}

/// Sets the full size of the one item header of `htype` with `content` bytes to `full_size`.
fn resize_item(bytes: &mut [u8], htype: u64, content: u64, full_size: u64) {
    let mut to = header(htype, content);
    to[8..].copy_from_slice(&full_size.to_le_bytes());
    patch(bytes, &header(htype, content), &to);
}

fn meta(file_type: format::FileType, perms: u64) -> Metadata {
    let mut stat = Stat::new(file_type, perms);
    stat.mtime = Mtime::new(BACKUP_TIME - 3600, 0).unwrap();
    Metadata::new(stat)
}

fn dir_meta() -> Metadata {
    meta(format::FileType::Directory, 0o755)
}

fn file_meta() -> Metadata {
    meta(format::FileType::Regular, 0o644)
}

fn link_meta() -> Metadata {
    meta(format::FileType::Symlink, 0o777)
}

type Enc = Encoder<Vec<u8>>;

/// A unified archive built by `build`.
fn unified(build: impl FnOnce(&mut Enc)) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), Format::unified(), &dir_meta()).unwrap();
    build(&mut enc);
    enc.finish().unwrap().0
}

/// A split archive built by `build`: (metadata stream, payload stream).
fn split(build: impl FnOnce(&mut Encoder<Vec<u8>, Vec<u8>>)) -> (Vec<u8>, Vec<u8>) {
    let format = Format::split(Vec::new(), None);
    let mut enc = Encoder::new(Vec::new(), format, &dir_meta()).unwrap();
    build(&mut enc);
    let (meta, payload) = enc.finish().unwrap();
    (meta, payload.unwrap())
}

fn add_file<W: std::io::Write, P: std::io::Write>(
    enc: &mut Encoder<W, P>,
    name: &[u8],
    data: &[u8],
) -> LinkOffset {
    add_file_with(enc, name, &file_meta(), data)
}

fn add_file_with<W: std::io::Write, P: std::io::Write>(
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
fn tree_case(name: &'static str, about: &'static str, archive: Vec<u8>) -> Case {
    let mut case = Case::new(name, about);
    case.stream("root.pxar.didx", &archive, 4096);
    case
}

/// The archive of the control case and of the cases whose damage lies elsewhere.
fn good_tree(tag: &str) -> Vec<u8> {
    unified(|e| {
        e.create_directory(b"dir", &dir_meta()).unwrap();
        let file = add_file(e, b"file", format!("hello from {tag}\n").as_bytes());
        e.finish_directory().unwrap();
        e.add_hardlink(b"hard", b"dir/file", file).unwrap();
        e.add_symlink(b"link", &link_meta(), b"dir/file").unwrap();
    })
}

/// The catalog of [`good_tree`].
fn good_catalog(tag: &str) -> Vec<u8> {
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

fn good_image(tag: &str) -> Vec<u8> {
    let mut data = vec![0u8; 1024];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ tag.len() as u8;
    }
    data[..tag.len()].copy_from_slice(tag.as_bytes());
    data
}

fn good_conf(tag: &str) -> Vec<u8> {
    format!("# {tag}\nmemory: 2048\ncores: 2\n").into_bytes()
}

/// A snapshot with every kind of archive, all good: `root.pxar` with its catalog, `disk.img`,
/// `qemu-server.conf`.
fn full_snapshot(name: &'static str, about: &'static str) -> Case {
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

/// All cases, in a fixed order.
pub fn cases() -> Vec<Case> {
    let mut all = vec![control()];
    all.extend(name_cases());
    all.extend(duplicate_cases());
    all.extend(hardlink_cases());
    all.extend(huge_item_cases());
    all.extend(index_cases());
    all.extend(blob_cases());
    all.extend(manifest_cases());
    all.extend(split_cases());
    all.extend(catalog_cases());
    all
}

fn control() -> Case {
    let mut case = full_snapshot(
        "control",
        "Not hostile: a good snapshot with a tree archive and its catalog, a split tree archive \
         (`split.pxar`), an image and a blob. Every command succeeds on it under the same limits.",
    );
    let (meta, payload) = split(|e| {
        add_file(e, b"a", b"first file of the split archive\n");
        e.create_directory(b"d", &dir_meta()).unwrap();
        add_file(e, b"b", b"second file\n");
        e.finish_directory().unwrap();
    });
    case.stream("split.mpxar.didx", &meta, 4096);
    case.stream("split.ppxar.didx", &payload, 4096);
    case
}

// 1. Names that are not one plain path component.
fn name_cases() -> Vec<Case> {
    let mut slash = unified(|e| {
        add_file(e, b"axb", b"a file named a/b\n");
    });
    rename(&mut slash, b"axb", b"a/b");
    let mut dot = unified(|e| {
        add_file(e, b"x", b"a file named .\n");
    });
    rename(&mut dot, b"x", b".");
    let mut dotdot = unified(|e| {
        e.create_directory(b"xy", &dir_meta()).unwrap();
        add_file(e, b"escape", b"written beside the target\n");
        e.finish_directory().unwrap();
    });
    rename(&mut dotdot, b"xy", b"..");
    let mut escape = unified(|e| {
        add_file(e, b"xx-escape", b"written beside the target\n");
    });
    rename(&mut escape, b"xx-escape", b"../escape");
    let mut absolute = unified(|e| {
        e.create_directory(b"xetc", &dir_meta()).unwrap();
        add_file(e, b"stowage-hostile-escape", b"written into /etc\n");
        e.finish_directory().unwrap();
    });
    rename(&mut absolute, b"xetc", b"/etc");
    let mut empty = unified(|e| {
        add_file(e, b"x", b"a file with an empty name\n");
    });
    splice(&mut empty, &filename_item(b"x"), &filename_item(b""));
    vec![
        tree_case(
            "name-slash",
            "A file named `a/b` (a FILENAME item containing `/`).",
            slash,
        ),
        tree_case("name-dot", "A file named `.`.", dot),
        tree_case(
            "name-dotdot",
            "A directory named `..` holding a file `escape`: followed, it would land beside the \
             restore target.",
            dotdot,
        ),
        tree_case(
            "name-escape",
            "A file named `../escape`: joined to the target path, it would land beside it.",
            escape,
        ),
        tree_case(
            "name-absolute",
            "A directory named `/etc` holding `stowage-hostile-escape`: joined to a path, it would \
             write into the real /etc.",
            absolute,
        ),
        tree_case(
            "name-empty",
            "A file with an empty name (a FILENAME item of just the NUL).",
            empty,
        ),
    ]
}

// 2. Two entries of the same name in one directory.
fn duplicate_cases() -> Vec<Case> {
    let mut link_dir = unified(|e| {
        e.add_symlink(b"d", &link_meta(), b"..").unwrap();
        e.create_directory(b"e", &dir_meta()).unwrap();
        add_file(e, b"escaped", b"through the symlink, beside the target\n");
        e.finish_directory().unwrap();
    });
    rename(&mut link_dir, b"e", b"d");
    let mut dir_file = unified(|e| {
        e.create_directory(b"d", &dir_meta()).unwrap();
        add_file(e, b"inner", b"inside the directory\n");
        e.finish_directory().unwrap();
        add_file(e, b"e", b"a file over the directory\n");
    });
    rename(&mut dir_file, b"e", b"d");
    vec![
        tree_case(
            "dup-symlink-then-dir",
            "A symlink `d` -> `..` followed by a directory `d` holding a file: a restore that \
             reused the existing `d` would write through the symlink, beside the target.",
            link_dir,
        ),
        tree_case(
            "dup-dir-then-file",
            "A directory `d` followed by a regular file `d` in the same directory.",
            dir_file,
        ),
    ]
}

// 3. Hardlinks whose target path is hostile.
fn hardlink_cases() -> Vec<Case> {
    let linked = |path: &[u8]| {
        let path = path.to_vec();
        unified(move |e| {
            let file = add_file(e, b"b-file", b"the file the link points at\n");
            e.add_hardlink(b"c-hard", &path, file).unwrap();
        })
    };
    let mut absolute = linked(b"xetc/passwd");
    patch(&mut absolute, b"xetc/passwd\0", b"/etc/passwd\0");
    let mut dotdot = linked(b"ab/escape");
    patch(&mut dotdot, b"ab/escape\0", b"../escape\0");
    let through = unified(|e| {
        e.add_symlink(b"a-link", &link_meta(), b"/etc").unwrap();
        let file = add_file(e, b"b-file", b"the file the link's offset points at\n");
        e.add_hardlink(b"c-hard", b"a-link/passwd", file).unwrap();
    });
    let missing = linked(b"nothere");
    vec![
        tree_case(
            "hardlink-absolute",
            "A hardlink `c-hard` whose target path is `/etc/passwd`.",
            absolute,
        ),
        tree_case(
            "hardlink-dotdot",
            "A hardlink `c-hard` whose target path is `../escape`.",
            dotdot,
        ),
        tree_case(
            "hardlink-through-symlink",
            "A symlink `a-link` -> `/etc` and a hardlink `c-hard` to `a-link/passwd`: resolved \
             naively, the link would be made to /etc/passwd.",
            through,
        ),
        tree_case(
            "hardlink-missing",
            "A hardlink `c-hard` to `nothere`, which is not in the archive (its offset points at \
             `b-file`).",
            missing,
        ),
    ]
}

// 4. Item headers declaring huge sizes.
fn huge_item_cases() -> Vec<Case> {
    let content = b"0123456789";
    let mut payload = unified(|e| {
        add_file(e, b"big", content);
    });
    resize_item(
        &mut payload,
        format::PAYLOAD,
        content.len() as u64,
        HUGE + 16,
    );
    let xattr = Xattr::new(b"user.hostile".to_vec(), b"value".to_vec());
    let xattr_len = xattr.to_content().len() as u64;
    let mut with_xattr = file_meta();
    with_xattr.xattrs.push(xattr);
    let mut xattr_archive = unified(|e| {
        add_file_with(e, b"f", &with_xattr, b"xattr\n");
    });
    resize_item(&mut xattr_archive, format::XATTR, xattr_len, HUGE);
    let mut with_acl = file_meta();
    with_acl.acl.users.push(AclUser {
        uid: 1000,
        perms: 6,
    });
    let mut acl_archive = unified(|e| {
        add_file_with(e, b"f", &with_acl, b"acl\n");
    });
    resize_item(&mut acl_archive, format::ACL_USER, 16, HUGE);
    let mut filename = unified(|e| {
        add_file(e, b"f", b"name\n");
    });
    resize_item(&mut filename, format::FILENAME, 2, HUGE);
    let mut goodbye = unified(|e| {
        add_file(e, b"f", b"goodbye\n");
    });
    resize_item(&mut goodbye, format::GOODBYE, 48, HUGE);
    let mut goodbye_item = unified(|e| {
        add_file(e, b"f", b"goodbye item\n");
    });
    // The root's table: the child's item, then the tail; the child's size field.
    let at = goodbye_item.len() - 48 + 16;
    goodbye_item[at..at + 8].copy_from_slice(&HUGE.to_le_bytes());
    vec![
        tree_case(
            "pxar-payload-2p60",
            "A file `big` whose PAYLOAD header declares 2^60 bytes; the archive ends a few bytes \
             later.",
            payload,
        ),
        tree_case(
            "pxar-xattr-huge",
            "A file `f` whose XATTR item header declares 2^60 bytes of content.",
            xattr_archive,
        ),
        tree_case(
            "pxar-acl-huge",
            "A file `f` whose ACL_USER item header declares 2^60 bytes of content.",
            acl_archive,
        ),
        tree_case(
            "pxar-filename-huge",
            "A FILENAME item header declaring a name of 2^60 bytes.",
            filename,
        ),
        tree_case(
            "pxar-goodbye-huge",
            "The root's GOODBYE item header declares a table of 2^60 bytes.",
            goodbye,
        ),
        tree_case(
            "pxar-goodbye-item-huge",
            "The root's goodbye table says its child `f` spans 2^60 bytes.",
            goodbye_item,
        ),
    ]
}

// 5. Hostile indexes.
fn index_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let tree = |name: &'static str, about: &'static str, index: &dyn Fn(&mut Case) -> Vec<u8>| {
        let mut case = Case::new(name, about);
        let bytes = index(&mut case);
        case.file("root.pxar.didx", bytes);
        case
    };
    cases.push(tree(
        "didx-not-increasing",
        "`root.pxar.didx` whose second end offset (50) lies before the first (100).",
        &|c| {
            let archive = good_tree("didx-not-increasing");
            let a = c.chunk(&archive[..100]);
            let b = c.chunk(&archive[100..150]);
            didx(vec![(100, a), (50, b)])
        },
    ));
    cases.push(tree(
        "didx-chunk-2p60",
        "`root.pxar.didx` with one chunk that claims 2^60 bytes (the chunk, zstd-compressed, \
         holds a small archive).",
        &|c| {
            // Compressed: a reader that trusted the index would make room for 2^60 bytes to
            // decompress into.
            let archive = good_tree("didx-chunk-2p60");
            let a = sha256(&archive);
            let frame = zstd_declaring(archive.len() as u64, &archive);
            c.chunk_file(a, compressed_blob(&frame));
            didx(vec![(HUGE, a)])
        },
    ));
    cases.push(tree(
        "didx-bad-magic",
        "`root.pxar.didx` whose header magic is that of a fixed index.",
        &|c| {
            let archive = good_tree("didx-bad-magic");
            let a = c.chunk(&archive);
            let mut bytes = didx(vec![(archive.len() as u64, a)]);
            bytes[..8].copy_from_slice(&stowage_format::fixed_index::MAGIC);
            bytes
        },
    ));
    cases.push(tree(
        "didx-truncated",
        "`root.pxar.didx` cut in the middle of its second entry.",
        &|c| {
            let archive = good_tree("didx-truncated");
            let a = c.chunk(&archive[..200]);
            let b = c.chunk(&archive[200..]);
            let mut bytes = didx(vec![(200, a), (archive.len() as u64, b)]);
            bytes.truncate(4096 + 40 + 17);
            bytes
        },
    ));
    cases.push(tree(
        "didx-short-header",
        "`root.pxar.didx` of 100 bytes: not even a whole header.",
        &|c| {
            let archive = good_tree("didx-short-header");
            let a = c.chunk(&archive);
            let mut bytes = didx(vec![(archive.len() as u64, a)]);
            bytes.truncate(100);
            bytes
        },
    ));
    let image = |name: &'static str, about: &'static str, index: &dyn Fn(&mut Case) -> Vec<u8>| {
        let mut case = Case::new(name, about);
        let bytes = index(&mut case);
        case.file("disk.img.fidx", bytes);
        case
    };
    cases.push(image(
        "fidx-size-2p60",
        "`disk.img.fidx` declaring an image of 2^60 bytes in 4 MiB chunks, with one digest.",
        &|c| {
            let d = c.chunk(&good_image("fidx-size-2p60"));
            fidx(HUGE, 4 * MIB, &[d])
        },
    ));
    cases.push(image(
        "fidx-count-mismatch",
        "`disk.img.fidx` declaring 8 MiB + 1 byte (3 chunks of 4 MiB) with 2 digests.",
        &|c| {
            let d = c.chunk(&good_image("fidx-count-mismatch"));
            fidx(8 * MIB + 1, 4 * MIB, &[d, d])
        },
    ));
    cases
}

// 6. Hostile DataBlobs: chunks and `.blob` files.
fn blob_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let image_chunk = |name: &'static str, about: &'static str, blob: &dyn Fn(&[u8]) -> Vec<u8>| {
        let mut case = Case::new(name, about);
        let data = good_image(name);
        let digest = sha256(&data);
        case.chunk_file(digest, blob(&data));
        case.file("disk.img.fidx", fidx(data.len() as u64, 4 * MIB, &[digest]));
        case
    };
    cases.push(image_chunk(
        "chunk-zstd-size-2p60",
        "The chunk of `disk.img` is a zstd frame whose header declares 2^60 bytes of content.",
        &|data| compressed_blob(&zstd_declaring(HUGE, data)),
    ));
    cases.push(image_chunk(
        "chunk-bad-crc",
        "The chunk of `disk.img` has a wrong CRC.",
        &|data| {
            let mut blob = encode_uncompressed(data);
            blob[8] ^= 0xff;
            blob
        },
    ));
    cases.push(image_chunk(
        "chunk-digest-mismatch",
        "The chunk file named by the digest of `disk.img`'s data holds a valid blob of other data.",
        &|data| {
            let mut other = data.to_vec();
            other[100] ^= 1;
            encode_uncompressed(&other)
        },
    ));
    // A zip bomb in a tree archive whose index claims the largest chunk there is (16 MiB).
    let mut bomb = Case::new(
        "chunk-zip-bomb",
        "`root.pxar.didx` has one chunk of 16 MiB (the largest a chunker makes) whose blob (4 KiB) \
         is a zstd frame of 128 MiB without a declared size.",
    );
    let bomb_blob = compressed_blob(&zstd_rle(b'A', 1024));
    let bomb_digest = sha256(b"stowage hostile zip bomb");
    bomb.chunk_file(bomb_digest, bomb_blob.clone());
    bomb.file("root.pxar.didx", didx(vec![(16 * MIB, bomb_digest)]));
    cases.push(bomb);

    let blob_file = |name: &'static str, about: &'static str, blob: Vec<u8>| {
        let mut case = Case::new(name, about);
        case.file("qemu-server.conf.blob", blob);
        case
    };
    cases.push(blob_file(
        "blob-zstd-size-2p60",
        "`qemu-server.conf.blob` is a zstd frame whose header declares 2^60 bytes of content.",
        compressed_blob(&zstd_declaring(HUGE, &good_conf("blob-zstd-size-2p60"))),
    ));
    cases.push(blob_file(
        "blob-zip-bomb",
        "`qemu-server.conf.blob` (4 KiB) is a zstd frame without a declared size that expands to \
         128 MiB + 128 KiB, beyond the 128 MiB blob limit.",
        compressed_blob(&zstd_rle(b'B', 1025)),
    ));
    let mut bad_crc = encode_uncompressed(&good_conf("blob-bad-crc"));
    bad_crc[9] ^= 0xff;
    cases.push(blob_file(
        "blob-bad-crc",
        "`qemu-server.conf.blob` with a wrong CRC (the manifest's checksum is that of the file).",
        bad_crc,
    ));
    cases
}

// 7. Hostile manifests.
fn manifest_cases() -> Vec<Case> {
    let mut missing = Case::new(
        "manifest-missing-files",
        "The manifest lists `root.pxar.didx`, `catalog.pcat1.didx`, `disk.img.fidx` and \
         `qemu-server.conf.blob`; none of them exists.",
    );
    {
        let full = full_snapshot("manifest-missing-files", "");
        missing.entries = full.entries.clone();
        missing.chunks = full.chunks.clone();
    }
    let mut mismatch = full_snapshot(
        "manifest-index-mismatch",
        "Every file is present and good, but the manifest's checksum of each is wrong.",
    );
    for entry in &mut mismatch.entries {
        entry.csum.0[0] ^= 0xff;
    }
    let mut not_json = full_snapshot(
        "manifest-not-json",
        "`index.json.blob` is a good blob whose content is not JSON.",
    );
    not_json.manifest_raw = Some(encode_uncompressed(b"this is not json {\n"));
    let mut huge = full_snapshot(
        "manifest-huge-size",
        "Every file is present and good, but the manifest gives each a size of 2^60.",
    );
    for entry in &mut huge.entries {
        entry.size = HUGE;
    }
    vec![missing, mismatch, not_json, huge]
}

// 8. Split archives whose payload references are hostile.
fn split_cases() -> Vec<Case> {
    let one = b"the first file's payload\n";
    let two = b"the other file's payload, longer\n";
    let build = || {
        split(|e| {
            add_file(e, b"f", one);
            add_file(e, b"g", two);
        })
    };
    // f's payload starts right after the start marker; g's after f's.
    let f_ref = stowage_archive::PayloadRef {
        offset: 16,
        size: one.len() as u64,
    };
    let g_ref = stowage_archive::PayloadRef {
        offset: 16 + 16 + one.len() as u64,
        size: two.len() as u64,
    };
    let ref_item = |r: stowage_archive::PayloadRef| {
        let mut item = header(format::PAYLOAD_REF, 16).to_vec();
        item.extend_from_slice(&r.to_bytes());
        item
    };
    // The full size the PAYLOAD header of `g` gets, if it is patched.
    let case = |name: &'static str, about: &'static str, from, to, payload_size: Option<u64>| {
        let (mut meta, mut payload) = build();
        if let Some(full_size) = payload_size {
            resize_item(&mut payload, format::PAYLOAD, two.len() as u64, full_size);
        }
        if from != to {
            patch(&mut meta, &ref_item(from), &ref_item(to));
        }
        let mut case = Case::new(name, about);
        case.stream("root.mpxar.didx", &meta, 4096);
        case.stream("root.ppxar.didx", &payload, 4096);
        case
    };
    let stream_len = 16 + (16 + one.len() as u64) + (16 + two.len() as u64) + 16;
    vec![
        case(
            "split-ref-beyond-stream",
            "`root.mpxar`: the payload reference of `g` points 1000 bytes past the end of the \
             payload stream.",
            g_ref,
            stowage_archive::PayloadRef {
                offset: stream_len + 1000,
                size: g_ref.size,
            },
            None,
        ),
        case(
            "split-ref-size-2p60",
            "`root.mpxar`: the payload reference of `g` declares a file of 2^60 bytes.",
            g_ref,
            stowage_archive::PayloadRef {
                offset: g_ref.offset,
                size: HUGE,
            },
            None,
        ),
        case(
            "split-ref-overlap",
            "`root.mpxar`: `g` refers to the payload of `f`: two files over one payload (so a small \
             archive could restore to any size).",
            g_ref,
            f_ref,
            None,
        ),
        case(
            "split-payload-header-mismatch",
            "`root.ppxar`: the PAYLOAD header of `g` declares one byte more than its reference.",
            g_ref,
            g_ref,
            Some(16 + two.len() as u64 + 1),
        ),
        case(
            "split-payload-2p60",
            "`g` has a PAYLOAD header of 2^60 bytes in `root.ppxar` and a reference of that size \
             in `root.mpxar`: the two agree; the stream is 122 bytes.",
            g_ref,
            stowage_archive::PayloadRef {
                offset: g_ref.offset,
                size: HUGE,
            },
            Some(16 + HUGE),
        ),
    ]
}

// 9. Hostile catalogs (`root.pxar` itself is good).
fn catalog_cases() -> Vec<Case> {
    let case = |name: &'static str, about: &'static str, catalog: Vec<u8>| {
        let mut case = Case::new(name, about);
        case.stream("root.pxar.didx", &good_tree(name), 4096);
        case.stream("catalog.pcat1.didx", &catalog, 4096);
        case
    };
    /// One table: `varint(L)`, then `varint(count)` and `entries`.
    fn table(count: u64, entries: &[u8]) -> Vec<u8> {
        let mut content = Vec::new();
        encode_varint(count, &mut content);
        content.extend_from_slice(entries);
        let mut out = Vec::new();
        encode_varint(content.len() as u64, &mut out);
        out.extend_from_slice(&content);
        out
    }
    fn dir_entry(name: &[u8], delta: u64) -> Vec<u8> {
        let mut e = vec![b'd'];
        encode_varint(name.len() as u64, &mut e);
        e.extend_from_slice(name);
        encode_varint(delta, &mut e);
        e
    }
    fn file_entry(name: &[u8]) -> Vec<u8> {
        let mut e = vec![b'f'];
        encode_varint(name.len() as u64, &mut e);
        e.extend_from_slice(name);
        encode_varint(5, &mut e);
        encode_varint(0, &mut e);
        e
    }
    /// A catalog of `tables` (each placed after the previous) whose last one is the root.
    fn catalog(tables: &[Vec<u8>]) -> Vec<u8> {
        let mut out = stowage_format::catalog::MAGIC.to_vec();
        let mut root = 0;
        for t in tables {
            root = out.len() as u64;
            out.extend_from_slice(t);
        }
        out.extend_from_slice(&root.to_le_bytes());
        out
    }

    // The archive's table at 8 holds a directory entry pointing at itself (distance 0).
    let archive_table = table(1, &dir_entry(b"loop", 0));
    let delta = archive_table.len() as u64;
    let self_cycle = catalog(&[
        archive_table,
        table(1, &dir_entry(b"root.pxar.didx", delta)),
    ]);

    // Tables T0..T40, each T(k) with two directories both pointing at T(k-1): 2^40 paths.
    let mut tables = vec![table(1, &file_entry(b"x"))];
    let mut starts = vec![8u64];
    for _ in 0..41 {
        let prev = *starts.last().unwrap();
        let here = prev + tables.last().unwrap().len() as u64;
        let entries = if tables.len() == 41 {
            dir_entry(b"root.pxar.didx", here - prev)
        } else {
            let mut entries = dir_entry(b"a", here - prev);
            entries.extend(dir_entry(b"b", here - prev));
            entries
        };
        let count = if tables.len() == 41 { 1 } else { 2 };
        tables.push(table(count, &entries));
        starts.push(here);
    }
    let shared = catalog(&tables);

    let first = table(1, &file_entry(b"x"));
    let delta = first.len() as u64;
    let mut beyond = catalog(&[first, table(1, &dir_entry(b"root.pxar.didx", delta))]);
    let n = beyond.len();
    beyond[n - 8..].copy_from_slice(&(1u64 << 40).to_le_bytes());

    // The root table's archive entry points 2^40 bytes back: before the magic.
    let huge_delta = catalog(&[
        table(1, &file_entry(b"x")),
        table(1, &dir_entry(b"root.pxar.didx", 1 << 40)),
    ]);

    let counted = table(1 << 60, &file_entry(b"x"));
    let delta = counted.len() as u64;
    let huge_count = catalog(&[counted, table(1, &dir_entry(b"root.pxar.didx", delta))]);

    let mut huge_len = stowage_format::catalog::MAGIC.to_vec();
    encode_varint(1 << 60, &mut huge_len);
    huge_len.extend_from_slice(&[1, b'f', 1, b'x', 5, 0]);
    huge_len.extend_from_slice(&8u64.to_le_bytes());

    // 200 entries of the all-zero 16 MiB chunk: a 12 KiB index declaring a 3.2 GiB catalog.
    let mut zeros = Case::new(
        "catalog-zero-chunks",
        "`catalog.pcat1.didx` of 200 all-zero 16 MiB chunks: 12 KiB of index declaring a \
         3.2 GiB catalog (the zero chunk itself is a 530-byte zstd frame).",
    );
    zeros.stream("root.pxar.didx", &good_tree("catalog-zero-chunks"), 4096);
    let zero = stowage_format::sha256_of_zeros(16 << 20);
    zeros.chunk_file(zero, compressed_blob(&zstd_rle(0, 128)));
    let entries = (1..=200u64).map(|i| (i * 16 * MIB, zero)).collect();
    zeros.file("catalog.pcat1.didx", didx(entries));

    let mut huge_index = Case::new(
        "catalog-didx-chunk-2p60",
        "`catalog.pcat1.didx` with one chunk that claims 2^60 bytes (it holds a good catalog).",
    );
    huge_index.stream(
        "root.pxar.didx",
        &good_tree("catalog-didx-chunk-2p60"),
        4096,
    );
    let good = huge_index.chunk(&good_catalog("catalog-didx-chunk-2p60"));
    huge_index.file("catalog.pcat1.didx", didx(vec![(HUGE, good)]));

    vec![
        case(
            "catalog-self-cycle",
            "The archive's directory table holds a directory `loop` whose table is itself \
             (distance 0).",
            self_cycle,
        ),
        case(
            "catalog-shared-tables",
            "41 tables, each with two directories `a` and `b` pointing at the same table below: \
             a cycle-free graph of 2^40 paths.",
            shared,
        ),
        case(
            "catalog-offset-beyond-end",
            "The trailing root-table offset is 2^40, far beyond the end of the catalog.",
            beyond,
        ),
        case(
            "catalog-delta-beyond-start",
            "The root table's archive entry points 2^40 bytes back: before the start of the file.",
            huge_delta,
        ),
        case(
            "catalog-huge-count",
            "The archive's table declares 2^60 entries and holds one.",
            huge_count,
        ),
        case(
            "catalog-huge-table-length",
            "The first table declares a length of 2^60 bytes.",
            huge_len,
        ),
        zeros,
        huge_index,
    ]
}

/// The README of the corpus directory.
pub fn readme(cases: &[Case]) -> String {
    let mut out = String::from(
        "# Hostile-input corpus\n\n\
         Crafted snapshots for `tests/hostile_input.rs`, which installs each as the snapshot \
         `host/1/2023-11-14T22:13:20Z` of a datastore, emptied between cases (the files of a directory into the \
         snapshot directory, `chunks/*` into `.chunks/<first 4 hex>/`) and runs restore, export, \
         cat, catalog and verify against it under an address-space limit and a deadline.\n\n\
         Generated by `tests/hostile_gen/mod.rs`; regenerate with\n\
         `STOWAGE_REGENERATE_HOSTILE=1 cargo test -p stowage --test hostile_input regenerate`.\n\
         Unless a case says otherwise, the manifest lists each file with the size and checksum an \
         honest writer computes from its bytes, so readers get past it to the hostile part, and \
         every chunk is an uncompressed blob matching its digest (or a zstd frame written out \
         byte by byte).\n\n\
         `verify` checks storage as PBS's does (chunks, indexes, blobs, manifest): the test expects \
         it to fail (exit 8) for the cases that damage those, and to pass for the cases whose \
         stored data is intact and only the content of an archive or catalog is hostile.\n\n\
         | case | what is hostile |\n|---|---|\n",
    );
    for c in cases {
        out.push_str(&format!("| `{}` | {} |\n", c.name, c.about));
    }
    out
}

/// Writes every case (and the README) into `root`, replacing what is there.
pub fn write_all(root: &Path) {
    let cases = cases();
    if root.exists() {
        fs::remove_dir_all(root).unwrap();
    }
    fs::create_dir_all(root).unwrap();
    for case in &cases {
        case.write(&root.join(case.name));
    }
    fs::write(root.join("README.md"), readme(&cases)).unwrap();
}
