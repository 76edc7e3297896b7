//! Deterministic benchmark data for stowage's benchmark (`bench/run.sh`).
//!
//! `stowage-bench-gen image OUT SIZE_MIB [SEED]` writes an image made of 4 MiB extents, each
//! all zeros (25%), text-like and compressible (35%), random (25%), or a copy of an earlier
//! extent (15%).
//! `stowage-bench-gen mutate FILE PERCENT [SEED]` rewrites PERCENT % of the file's 1 MiB blocks
//! with fresh text, in place: the "1% changed" step of an incremental backup.
//! `stowage-bench-gen tree DIR [TOTAL_MIB [SEED]]` writes a file tree (see `tree.rs`);
//! `stowage-bench-gen mutate-tree DIR PERCENT [SEED]` changes PERCENT % of its files.

mod store;
mod tree;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::process::ExitCode;

const EXTENT: usize = 4 << 20;
const BLOCK: usize = 1 << 20;

/// splitmix64: small, fast, and the same on every machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub(crate) struct Text {
    words: Vec<Vec<u8>>,
}

impl Text {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        let words = (0..8192)
            .map(|_| {
                let len = 2 + (rng.next() % 9) as usize;
                (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect()
            })
            .collect();
        Text { words }
    }

    /// Fills `buf` with lines of words; common words are much more frequent than rare ones.
    pub(crate) fn fill(&self, rng: &mut Rng, buf: &mut [u8]) {
        let mut pos = 0;
        let mut in_line = 0;
        while pos < buf.len() {
            let r = rng.next();
            let idx = (((r & 0xffff) * ((r >> 16) & 0x1fff)) >> 16) as usize % self.words.len();
            let mut word: &[u8] = &self.words[idx];
            if r >> 60 == 0 {
                // Sprinkle numbers, as logs and configs have.
                word = &self.words[(r >> 20) as usize % 16];
            }
            for &b in word.iter().chain(if in_line > 10 { b"\n" } else { b" " }) {
                if pos == buf.len() {
                    break;
                }
                buf[pos] = b;
                pos += 1;
            }
            in_line = if in_line > 10 { 0 } else { in_line + 1 };
        }
    }
}

pub(crate) fn fill_random(rng: &mut Rng, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

fn image(out: &str, size_mib: u64, seed: u64) -> io::Result<()> {
    let mut rng = Rng(seed);
    let text = Text::new(&mut rng);
    let extents = (size_mib << 20) as usize / EXTENT;
    let mut file = BufWriter::with_capacity(EXTENT, File::create(out)?);
    let mut buf = vec![0u8; EXTENT];
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for _ in 0..extents {
        let pick = rng.next() % 100;
        match pick {
            0..25 => buf.fill(0),
            25..60 => text.fill(&mut rng, &mut buf),
            60..85 => fill_random(&mut rng, &mut buf),
            _ => match kept.len() {
                0 => text.fill(&mut rng, &mut buf),
                n => buf.copy_from_slice(&kept[(rng.next() % n as u64) as usize]),
            },
        }
        if (25..85).contains(&pick) && kept.len() < 16 {
            kept.push(buf.clone());
        }
        file.write_all(&buf)?;
    }
    file.flush()
}

fn mutate(path: &str, percent: f64, seed: u64) -> io::Result<()> {
    let mut rng = Rng(seed ^ 0x5eed);
    let text = Text::new(&mut rng);
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let blocks = (file.metadata()?.len() as usize / BLOCK).max(1);
    let count = ((blocks as f64 * percent / 100.0).round() as usize).max(1);
    let mut buf = vec![0u8; BLOCK];
    // Evenly spread, with a random start: every changed block is a different one.
    let stride = blocks as f64 / count as f64;
    let start = rng.next() % stride.max(1.0) as u64;
    for i in 0..count {
        let block = (start as f64 + i as f64 * stride) as u64;
        file.seek(SeekFrom::Start(block * BLOCK as u64))?;
        let n = file.read(&mut buf)?;
        text.fill(&mut rng, &mut buf[..n]);
        file.seek(SeekFrom::Start(block * BLOCK as u64))?;
        file.write_all(&buf[..n])?;
    }
    eprintln!("changed {count} of {blocks} blocks of 1 MiB");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let result = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("image"), Some(out)) => image(out, num(3, 4096), num(4, 1)),
        (Some("mutate"), Some(path)) => {
            let percent = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1.0);
            mutate(path, percent, num(4, 2))
        }
        (Some("store"), Some(dir)) => store::generate(dir, num(3, 1_000_000), num(4, 1000)),
        (Some("tree"), Some(dir)) => tree::generate(dir, num(3, 2048), num(4, 1)),
        (Some("mutate-tree"), Some(dir)) => {
            let percent = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1.0);
            tree::mutate(dir, percent, num(4, 2))
        }
        (Some("mutate-any"), Some(dir)) => {
            let percent = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1.0);
            tree::mutate_any(dir, percent, num(4, 2))
        }
        _ => {
            eprintln!(
                "usage: stowage-bench-gen image OUT [SIZE_MIB [SEED]] | mutate FILE [PERCENT [SEED]] \
                 | tree DIR [TOTAL_MIB [SEED]] | mutate-tree DIR [PERCENT [SEED]] | mutate-any DIR [PERCENT [SEED]] \
                 | store DIR [CHUNKS [SNAPSHOTS]]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
