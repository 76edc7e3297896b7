//! Cases 5 to 9: hostile stored data and catalogs: dynamic and fixed indexes, DataBlobs (chunks
//! and `.blob` files, zstd frames declaring huge sizes, zip bombs), manifests, split archives
//! whose payload references are hostile, and catalogs (cycles, shared tables, huge offsets and
//! counts).

use stowage_archive::format;
use stowage_format::blob::encode_uncompressed;
use stowage_format::catalog::varint::encode_varint;
use stowage_format::sha256;

use super::build::{
    add_file, compressed_blob, didx, fidx, full_snapshot, good_catalog, good_conf, good_image,
    good_tree, header, patch, resize_item, split, zstd_declaring, zstd_rle,
};
use super::{Case, HUGE, MIB};

// 5. Hostile indexes.
pub(super) fn index_cases() -> Vec<Case> {
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
pub(super) fn blob_cases() -> Vec<Case> {
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
pub(super) fn manifest_cases() -> Vec<Case> {
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
pub(super) fn split_cases() -> Vec<Case> {
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
pub(super) fn catalog_cases() -> Vec<Case> {
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
