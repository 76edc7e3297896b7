use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::ExportError;

// ---------------------------------------------------------------- helpers

/// A writer into a shared buffer (the writers want to own theirs).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// splitmix64
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "backup",
    "chunk",
    "index",
    "datastore",
    "of",
    "and",
    "snapshot",
    "a",
    "file",
    "compress",
    "to",
    "block",
    "in",
    "is",
    "verify",
    "digest",
    "archive",
    "for",
    "with",
    "stream",
    "deduplicate",
    "catalog",
    "on",
    "restore",
    "owner",
    "namespace",
    "group",
];

/// Text-like data: words, punctuation, line breaks, some numbers.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let w = WORDS[rng.below(WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        match rng.below(20) {
            0 => out.extend_from_slice(b".\n"),
            1 => out.extend_from_slice(b", "),
            2 => out.extend_from_slice(format!(" {} ", rng.next() % 100_000).as_bytes()),
            _ => out.push(b' '),
        }
    }
    out.truncate(len);
    out
}

/// Mixed data: stretches of text, random bytes, zeros and repeated patterns.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ 0x5555);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (1 + rng.below(100_000)).min(len - out.len());
        match rng.below(4) {
            0 => out.extend_from_slice(&text(n, rng.next())),
            1 => out.extend((0..n).map(|_| rng.next() as u8)),
            2 => out.resize(out.len() + n, 0),
            _ => {
                let pat: Vec<u8> = (0..1 + rng.below(300)).map(|_| rng.next() as u8).collect();
                out.extend(pat.iter().cycle().take(n));
            }
        }
    }
    out
}

fn opts(format: Format, threads: usize) -> CompressOptions {
    CompressOptions {
        format,
        level: None,
        threads,
    }
}

/// Writes `data` through `w` in chunks of varying sizes, then finishes.
fn feed(mut w: Box<dyn CompressWriter>, data: &[u8]) -> io::Result<()> {
    let sizes = [1usize, 7, 4096, 65_539, 200_001, 3];
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - pos);
        w.write_all(&data[pos..pos + n])?;
        pos += n;
        i += 1;
    }
    w.finish()
}

fn compress_with(o: &CompressOptions, data: &[u8]) -> Vec<u8> {
    let out = Shared::default();
    let w = compress_writer(Box::new(out.clone()), o).unwrap();
    feed(w, data).unwrap();
    out.take()
}

fn compress(format: Format, threads: usize, data: &[u8]) -> Vec<u8> {
    compress_with(&opts(format, threads), data)
}

fn decompress(format: Format, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = decompress_reader(Box::new(Cursor::new(data.to_vec())), format).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// Runs `prog args` with `input` on stdin; `None` (with a note) if the program is missing.
fn run_tool(prog: &str, args: &[&str], input: &[u8]) -> Option<(bool, Vec<u8>, String)> {
    let mut child = match Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("note: {prog} is not installed, skipping that check");
            return None;
        }
        Err(e) => panic!("cannot run {prog}: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Some((
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Asserts that `prog args` decodes `compressed` into `expected` (unless it is missing).
fn tool_decodes(prog: &str, args: &[&str], compressed: &[u8], expected: &[u8]) {
    if let Some((ok, out, err)) = run_tool(prog, args, compressed) {
        assert!(ok, "{prog} {args:?} failed: {err}");
        assert!(
            out == expected,
            "{prog} {args:?}: {} bytes decoded, {} expected",
            out.len(),
            expected.len()
        );
    }
}

/// Runs `f` on a thread and fails if it takes longer than `secs` (a hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("timed out: the writer hangs")
}

fn block_size_of(format: Format) -> usize {
    match format {
        Format::Lz4 => LZ4_PIECE_SIZE,
        _ => GZIP_BLOCK_SIZE,
    }
}

const BIG: usize = 3 * 1024 * 1024 + 12_345;

// ---------------------------------------------------------------- Format

#[test]
fn format_names_extensions_levels() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), f.name());
        f.check_level(f.default_level()).unwrap();
        if f != Format::None {
            let p = format!("dir.d/file.tar.{}", f.extension());
            assert_eq!(Format::from_path(Path::new(&p)), Some(f));
        }
    }
    assert_eq!("gzip".parse::<Format>().unwrap(), Format::Gzip);
    assert_eq!("zstd".parse::<Format>().unwrap(), Format::Zstd);
    assert_eq!("ZST".parse::<Format>().unwrap(), Format::Zstd);
    assert!(matches!(
        "bzip2".parse::<Format>(),
        Err(ExportError::Usage(_))
    ));
    assert_eq!(Format::from_path(Path::new("a.tar")), None);
    assert_eq!(Format::from_path(Path::new("a.gz.tar")), None);
    assert_eq!(Format::from_path(Path::new("gz")), None);
    assert_eq!(Format::from_path(Path::new("a.img.XZ")), Some(Format::Xz));
    assert_eq!(
        Format::ALL.map(|f| f.extension()),
        ["", "gz", "zst", "xz", "lz4"]
    );
    assert_eq!(Format::ALL.map(|f| f.default_level()), [0, 6, 3, 6, 0]);
    let ok = |f: Format, l: i32| f.check_level(l).is_ok();
    assert!(ok(Format::Gzip, 1) && ok(Format::Gzip, 9));
    assert!(!ok(Format::Gzip, 0) && !ok(Format::Gzip, 10));
    assert!(ok(Format::Zstd, 1) && ok(Format::Zstd, 19) && ok(Format::Zstd, 22));
    assert!(!ok(Format::Zstd, 0) && !ok(Format::Zstd, 23) && !ok(Format::Zstd, -1));
    assert!(ok(Format::Xz, 0) && ok(Format::Xz, 9) && !ok(Format::Xz, 10));
    assert!(ok(Format::Lz4, 0) && !ok(Format::Lz4, 1));
    assert!(ok(Format::None, 0) && !ok(Format::None, 3));
    let bad = CompressOptions {
        format: Format::Gzip,
        level: Some(12),
        threads: 1,
    };
    assert!(matches!(
        compress_writer(Box::new(io::sink()), &bad),
        Err(ExportError::Usage(_))
    ));
}

// ---------------------------------------------------------------- round trips

#[test]
fn compress_round_trip_every_format() {
    for format in Format::ALL {
        let b = block_size_of(format);
        for threads in [1, 3] {
            for (i, size) in [0, 1, b - 1, b, b + 1, BIG].into_iter().enumerate() {
                let data = mixed(size, i as u64 + 7);
                let z = compress(format, threads, &data);
                let back = decompress(format, &z).unwrap();
                assert!(
                    back == data,
                    "{format} threads {threads} size {size}: round trip differs"
                );
                if format == Format::None {
                    assert_eq!(z, data);
                }
            }
        }
    }
}

#[test]
fn compress_levels_round_trip() {
    let data = mixed(300_000, 99);
    for (format, levels) in [
        (Format::Gzip, &[1, 9][..]),
        (Format::Zstd, &[1, 19][..]),
        (Format::Xz, &[0, 9][..]),
    ] {
        for &level in levels {
            let o = CompressOptions {
                format,
                level: Some(level),
                threads: 2,
            };
            let z = compress_with(&o, &data);
            assert!(decompress(format, &z).unwrap() == data, "{format} -{level}");
        }
    }
}

#[test]
fn compress_gzip_is_one_member_with_crc_and_size() {
    let data = mixed(BIG, 3);
    let z = compress(Format::Gzip, 3, &data);
    // Header as RFC 1952 wants it; one member: the single-member decoder reads it all.
    assert_eq!(&z[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(z[9], 3);
    let mut one = Vec::new();
    flate2::read::GzDecoder::new(&z[..])
        .read_to_end(&mut one)
        .unwrap();
    assert!(one == data);
    let n = z.len();
    assert_eq!(
        u32::from_le_bytes(z[n - 8..n - 4].try_into().unwrap()),
        crc32fast::hash(&data)
    );
    assert_eq!(
        u32::from_le_bytes(z[n - 4..].try_into().unwrap()),
        data.len() as u32
    );
}

#[test]
fn compress_gzip_output_is_independent_of_threads() {
    // Reproducible output: the same bytes whichever worker compresses which block.
    let data = [text(3 << 20, 5), mixed(1 << 20, 5)].concat();
    let one = compress(Format::Gzip, 1, &data);
    for threads in [2, 3, 3, 8] {
        assert!(one == compress(Format::Gzip, threads, &data), "{threads}");
    }
}

#[test]
fn compress_gzip_dictionary_keeps_ratio() {
    // Priming each block with the previous 32 KiB must bring the ratio close to one deflate
    // stream's at the same level.
    let data = text(2 << 20, 11);
    let ours = compress(Format::Gzip, 3, &data).len();
    let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    single.write_all(&data).unwrap();
    let single = single.finish().unwrap().len();
    assert!(
        (ours as f64) < single as f64 * 1.01,
        "ours {ours} bytes, one stream {single} bytes"
    );
}

#[test]
fn compress_flush_then_more() {
    for format in Format::ALL {
        let out = Shared::default();
        let mut w = compress_writer(Box::new(out.clone()), &opts(format, 2)).unwrap();
        let a = mixed(200_000, 1);
        let b = mixed(100_000, 2);
        w.write_all(&a).unwrap();
        w.flush().unwrap();
        assert!(out.len() > 0, "{format}: flush wrote nothing");
        w.write_all(&b).unwrap();
        w.finish().unwrap();
        let z = out.take();
        assert!(
            decompress(format, &z).unwrap() == [a, b].concat(),
            "{format}"
        );
    }
}

#[test]
fn compress_concatenated_streams_read_as_one() {
    let a = mixed(300_000, 1);
    let b = mixed(100_000, 2);
    for format in [Format::Gzip, Format::Zstd, Format::Xz, Format::Lz4] {
        let mut z = compress(format, 2, &a);
        if format == Format::Xz {
            z.extend_from_slice(&[0; 8]); // stream padding
        }
        if format == Format::Lz4 {
            // A skippable frame between the two.
            z.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
            z.extend_from_slice(&5u32.to_le_bytes());
            z.extend_from_slice(b"hello");
        }
        z.extend_from_slice(&compress(format, 2, &b));
        assert!(
            decompress(format, &z).unwrap() == [&a[..], &b[..]].concat(),
            "{format}"
        );
    }
}

// ---------------------------------------------------------------- standard tools

#[test]
fn compress_output_decoded_by_standard_tools() {
    for (i, size) in [0, 1, GZIP_BLOCK_SIZE + 1, BIG].into_iter().enumerate() {
        let data = mixed(size, 40 + i as u64);
        for threads in [1, 3] {
            let gz = compress(Format::Gzip, threads, &data);
            tool_decodes("gzip", &["-dc"], &gz, &data);
            tool_decodes("pigz", &["-dc"], &gz, &data);
            if let Some((ok, _, err)) = run_tool("gzip", &["-t"], &gz) {
                assert!(ok, "gzip -t rejects our output: {err}");
            }
            let zst = compress(Format::Zstd, threads, &data);
            tool_decodes("zstd", &["-dc"], &zst, &data);
            let xz = compress(Format::Xz, threads, &data);
            tool_decodes("xz", &["-dc"], &xz, &data);
            tool_decodes("xz", &["-T2", "-dc"], &xz, &data);
            let lz4 = compress(Format::Lz4, threads, &data);
            tool_decodes("lz4", &["-dc"], &lz4, &data);
        }
    }
}

#[test]
fn compress_gzip_small_blocks_decoded_by_gzip() {
    // Blocks much smaller than the window: the dictionary spans several blocks.
    let data = text(300_000, 8);
    for block in [1, 100, 5000, 40_000] {
        let data = if block == 1 { &data[..5000] } else { &data[..] };
        let out = Shared::default();
        let w = gzip::writer(Box::new(out.clone()), 6, 3, block).unwrap();
        feed(w, data).unwrap();
        let z = out.take();
        tool_decodes("gzip", &["-dc"], &z, data);
        assert!(decompress(Format::Gzip, &z).unwrap() == data);
    }
}

#[test]
fn compress_reads_standard_tools_output() {
    let data = mixed(BIG, 77);
    for (format, prog, args) in [
        (Format::Gzip, "gzip", &["-c"][..]),
        (Format::Gzip, "pigz", &["-c", "-p", "3"][..]),
        (Format::Zstd, "zstd", &["-c", "-T2"][..]),
        (Format::Xz, "xz", &["-c", "-T2", "-1"][..]),
        (Format::Xz, "xz", &["-c", "-T1", "-1"][..]),
        (Format::Lz4, "lz4", &["-c"][..]),
        (Format::Lz4, "lz4", &["-c", "-BD"][..]),
        (Format::Lz4, "lz4", &["-c", "-B4", "--content-size"][..]),
    ] {
        if let Some((ok, z, err)) = run_tool(prog, args, &data) {
            assert!(ok, "{prog} {args:?}: {err}");
            assert!(
                decompress(format, &z).unwrap() == data,
                "{prog} {args:?} output not read back"
            );
        }
    }
}

// ---------------------------------------------------------------- damage

#[test]
fn compress_damaged_input_is_an_error() {
    let data = mixed(1_500_000, 21);
    for format in [Format::Gzip, Format::Zstd, Format::Xz, Format::Lz4] {
        let z = compress(format, 3, &data);
        let n = z.len();
        for cut in [0, 3, 10, n / 3, n / 2, n - 9, n - 5, n - 1] {
            let r = decompress(format, &z[..cut]);
            assert!(r.is_err(), "{format}: cut at {cut} of {n} not detected");
        }
        for pos in [n / 5, n / 3, n / 2, 2 * n / 3, n - 20] {
            for bit in [0, 5] {
                let mut bad = z.clone();
                bad[pos] ^= 1 << bit;
                let r = decompress(format, &bad);
                assert!(
                    r.is_err(),
                    "{format}: flipped bit {bit} at {pos} of {n} not detected"
                );
            }
        }
        // Trailing garbage after a complete stream.
        let mut bad = z.clone();
        bad.extend_from_slice(b"garbage!");
        assert!(
            decompress(format, &bad).is_err(),
            "{format}: trailing garbage"
        );
    }
}

// ---------------------------------------------------------------- failing output

/// Accepts `left` bytes, then fails every write.
struct Failing {
    left: usize,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_until_error(out: Box<dyn Write + Send>, format: Format, threads: usize) -> bool {
    let o = CompressOptions {
        format,
        level: Some(if format == Format::Lz4 || format == Format::None {
            0
        } else {
            1
        }),
        threads,
    };
    let mut w = compress_writer(out, &o).unwrap();
    let data = mixed(1 << 20, 9);
    for _ in 0..16 {
        if w.write_all(&data).is_err() {
            return true;
        }
    }
    w.finish().is_err()
}

#[test]
fn compress_failing_output_is_an_error_not_a_hang() {
    for format in Format::ALL {
        for threads in [1, 3] {
            for left in [0, 10, 100_000] {
                let failed = within(120, move || {
                    write_until_error(Box::new(Failing { left }), format, threads)
                });
                assert!(failed, "{format} threads {threads} left {left}: no error");
            }
            if Path::new("/dev/full").exists() {
                let failed = within(120, move || {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap();
                    write_until_error(Box::new(f), format, threads)
                });
                assert!(failed, "{format} threads {threads} /dev/full: no error");
            }
        }
    }
}

#[test]
fn compress_error_is_sticky_and_drop_does_not_hang() {
    within(60, || {
        let o = opts(Format::Gzip, 3);
        let mut w = compress_writer(Box::new(Failing { left: 0 }), &o).unwrap();
        let data = mixed(1 << 20, 1);
        let mut failed = false;
        for _ in 0..8 {
            if w.write_all(&data).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        assert!(w.write(b"more").is_err());
        assert!(w.flush().is_err());
        assert!(w.finish().is_err());
        // Abandoned without finish: dropping ends the threads.
        for format in Format::ALL {
            let mut w = compress_writer(Box::new(io::sink()), &opts(format, 3)).unwrap();
            w.write_all(&data).unwrap();
            drop(w);
        }
    });
}

#[test]
fn compress_abandoned_stream_does_not_decode() {
    // Dropped without finish: no trailer, so the output is no valid (shorter) stream.
    for format in [Format::Gzip, Format::Zstd, Format::Xz, Format::Lz4] {
        for size in [1000, 3 << 20] {
            let out = Shared::default();
            let mut w = compress_writer(Box::new(out.clone()), &opts(format, 2)).unwrap();
            w.write_all(&mixed(size, 4)).unwrap();
            drop(w);
            let z = out.take();
            assert!(
                decompress(format, &z).is_err(),
                "{format} size {size}: abandoned stream decodes"
            );
        }
    }
}

#[test]
fn compress_xxh32_known_values() {
    let h = |data: &[u8]| {
        let mut x = lz4::Xxh32::new();
        x.update(data);
        x.finish()
    };
    assert_eq!(h(b""), 0x02CC_5D05);
    assert_eq!(h(b"abc"), 0x32D1_53FF);
    assert_eq!(h(b"Nobody inspects the spammish repetition"), 0xE229_3B2F);
    // The header checksum bytes of the frames the lz4 tool writes.
    assert_eq!((h(&[0x64, 0x40]) >> 8) as u8, 0xA7);
    assert_eq!((h(&[0x64, 0x70]) >> 8) as u8, 0xB9);
    // Fed in pieces: the same.
    let data = mixed(100_000, 3);
    for split in [1usize, 3, 15, 16, 17, 4099] {
        let mut x = lz4::Xxh32::new();
        for c in data.chunks(split) {
            x.update(c);
        }
        assert_eq!(x.finish(), h(&data), "split {split}");
    }
}

// ---------------------------------------------------------------- property tests

fn gzip_with_blocks(data: &[u8], block: usize, threads: usize, chunk: usize) -> Vec<u8> {
    let out = Shared::default();
    let mut w = gzip::writer(Box::new(out.clone()), 6, threads, block).unwrap();
    for c in data.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap();
    out.take()
}

fn lz4_with_pieces(data: &[u8], piece: usize, threads: usize, chunk: usize) -> Vec<u8> {
    let out = Shared::default();
    let mut w = lz4::writer(Box::new(out.clone()), threads, piece).unwrap();
    for c in data.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap();
    out.take()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn compress_prop_gzip_round_trip(
        len in 0usize..300_000,
        seed in any::<u64>(),
        block in prop_oneof![1usize..100, 100usize..70_000, Just(GZIP_BLOCK_SIZE)],
        threads in 1usize..5,
        chunk in 1usize..150_000,
    ) {
        // Tiny blocks cost a 32 KiB dictionary each: keep their inputs small.
        let len = if block < 100 { len % 20_000 } else { len };
        let data = mixed(len, seed);
        let z = gzip_with_blocks(&data, block, threads, chunk);
        let mut one = Vec::new();
        flate2::read::GzDecoder::new(&z[..]).read_to_end(&mut one).unwrap();
        prop_assert!(one == data);
    }

    #[test]
    fn compress_prop_lz4_round_trip(
        len in 0usize..3_000_000,
        seed in any::<u64>(),
        piece in prop_oneof![1usize..1000, 1000usize..2_000_000, Just(LZ4_PIECE_SIZE)],
        threads in 1usize..5,
        chunk in 1usize..1_500_000,
    ) {
        let len = if piece < 1000 { len % 50_000 } else { len };
        let data = mixed(len, seed);
        let z = lz4_with_pieces(&data, piece, threads, chunk);
        prop_assert!(decompress(Format::Lz4, &z).unwrap() == data);
    }
}
