//! A deterministic file tree for the file-archive benchmark: about 100 000 files in 1 000
//! directories. Most files are small text files (configs, sources, logs), some are medium, a few
//! are large; 5% are copies of earlier files, 15% of the non-small content is random (already
//! compressed data). With the default 2048 MiB total it holds about 2 GB.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{fill_random, Rng, Text};

const TOP_DIRS: usize = 100;
const SUB_DIRS: usize = 10;
const FILES_PER_DIR: usize = 100;

/// Size of file number `i` when the tree should hold about `total` bytes.
fn file_size(rng: &mut Rng, total: u64) -> u64 {
    let files = (TOP_DIRS * SUB_DIRS * FILES_PER_DIR) as u64;
    // 90% small (avg 4 KiB), 9% medium (avg 96 KiB), 1% large (the rest of the budget).
    let small_avg = 4096u64;
    let medium_avg = 96 * 1024u64;
    let large_budget =
        total.saturating_sub(files * 90 / 100 * small_avg + files * 9 / 100 * medium_avg);
    let large_avg = (large_budget / (files / 100)).max(1 << 20);
    match rng.next() % 100 {
        0..90 => 1 + rng.next() % (2 * small_avg),
        90..99 => 1 + rng.next() % (2 * medium_avg),
        _ => large_avg / 2 + rng.next() % large_avg,
    }
}

fn file_path(root: &Path, i: usize) -> PathBuf {
    let dir = i / FILES_PER_DIR;
    root.join(format!("d{:03}", dir / SUB_DIRS))
        .join(format!("s{:02}", dir % SUB_DIRS))
        .join(format!(
            "f{:03}.{}",
            i % FILES_PER_DIR,
            ["conf", "txt", "log", "dat", "rs"][i % 5]
        ))
}

pub fn generate(root: &str, total_mib: u64, seed: u64) -> io::Result<()> {
    let root = Path::new(root);
    let mut rng = Rng(seed);
    let text = Text::new(&mut rng);
    let files = TOP_DIRS * SUB_DIRS * FILES_PER_DIR;
    let mut buf = Vec::new();
    let mut written = 0u64;
    for i in 0..files {
        let path = file_path(root, i);
        if i % FILES_PER_DIR == 0 {
            fs::create_dir_all(path.parent().unwrap_or(root))?;
        }
        let size = file_size(&mut rng, total_mib << 20) as usize;
        if i > 0 && rng.next() % 100 < 5 {
            // A duplicate of an earlier file, in another place.
            let source = file_path(root, (rng.next() % i as u64) as usize);
            written += fs::copy(source, &path)?;
            continue;
        }
        buf.resize(size, 0);
        if size > 16 * 1024 && rng.next() % 100 < 15 {
            fill_random(&mut rng, &mut buf);
        } else {
            text.fill(&mut rng, &mut buf);
        }
        File::create(&path)?.write_all(&buf)?;
        written += size as u64;
    }
    eprintln!("wrote {files} files, {} MiB", written >> 20);
    Ok(())
}

/// Rewrites a range inside `percent` % of the files, spread evenly through the tree.
pub fn mutate(root: &str, percent: f64, seed: u64) -> io::Result<()> {
    let root = Path::new(root);
    let mut rng = Rng(seed ^ 0x7ee);
    let text = Text::new(&mut rng);
    let files = TOP_DIRS * SUB_DIRS * FILES_PER_DIR;
    let count = ((files as f64 * percent / 100.0).round() as usize).max(1);
    let stride = files / count;
    let mut changed_bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for k in 0..count {
        let path = file_path(root, k * stride + (rng.next() % stride as u64) as usize);
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        changed_bytes += rewrite_range(&mut file, &mut rng, &text, &mut buf)?;
    }
    eprintln!("changed {count} files, {changed_bytes} bytes");
    println!("{changed_bytes}");
    Ok(())
}

/// Rewrites a range of up to `buf.len()` bytes at a random place in `file` with new text; the
/// bytes rewritten.
fn rewrite_range(file: &mut File, rng: &mut Rng, text: &Text, buf: &mut [u8]) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let n = (len as usize).min(buf.len());
    let at = if len as usize > n {
        rng.next() % (len - n as u64)
    } else {
        0
    };
    file.seek(SeekFrom::Start(at))?;
    let got = file.read(&mut buf[..n])?;
    text.fill(rng, &mut buf[..got]);
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&buf[..got])?;
    Ok(got as u64)
}

/// Every regular file below `dir`, sorted by path (symlinks are not followed).
fn regular_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        if kind.is_dir() {
            regular_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Rewrites a range (up to 64 KiB) inside `percent` % of the regular files of any tree, chosen
/// evenly through the sorted list with `seed`, and prints the bytes changed. Files that cannot
/// be written (read-only, or one name of a file several names share) are skipped.
pub fn mutate_any(root: &str, percent: f64, seed: u64) -> io::Result<()> {
    let mut files = Vec::new();
    regular_files(Path::new(root), &mut files)?;
    let mut rng = Rng(seed ^ 0xa11);
    let text = Text::new(&mut rng);
    let count =
        ((files.len() as f64 * percent / 100.0).round() as usize).clamp(1, files.len().max(1));
    let stride = (files.len() / count).max(1);
    let (mut changed, mut changed_bytes) = (0usize, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    for k in 0..count {
        let Some(path) = files.get(k * stride + (rng.next() % stride as u64) as usize) else {
            continue;
        };
        let Ok(mut file) = OpenOptions::new().read(true).write(true).open(path) else {
            continue;
        };
        changed += 1;
        changed_bytes += rewrite_range(&mut file, &mut rng, &text, &mut buf)?;
    }
    eprintln!(
        "changed {changed} of {} files, {changed_bytes} bytes",
        files.len()
    );
    println!("{changed_bytes}");
    Ok(())
}
