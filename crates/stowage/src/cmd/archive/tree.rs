//! `stowage archive DIR OUT.tar.*`: a directory tree as a tar stream, with all its metadata.

use std::io::Write;

use anyhow::Result;
use stowage_export::tar::dir_to_tar;
use stowage_fs::{CreateOptions, Excludes};
use stowage_types::ErrorClass;

use crate::archive_out::{write_archive, Job};
use crate::cli::{ArchiveArgs, GlobalOpts};
use crate::exit::fail;

/// Files read for the space estimate, and how much of each.
const SAMPLE_FILES: usize = 8;
const SAMPLE_BYTES: u64 = 1 << 20;

pub fn run(g: &GlobalOpts, args: &ArchiveArgs) -> Result<i32> {
    let mut excludes = Excludes::new();
    for pattern in &args.exclude {
        excludes
            .add(pattern.as_bytes())
            .map_err(|e| fail(ErrorClass::Usage, e.to_string()))?;
    }
    let mut options = CreateOptions {
        one_file_system: args.one_file_system,
        excludes,
        selection: None,
    };
    let source = std::path::absolute(&args.source)
        .unwrap_or_else(|_| args.source.clone())
        .display()
        .to_string();
    let (size, samples) = survey(&args.source);
    let job = Job {
        source,
        content: "tar",
        size: Some(size),
        precompressed: false,
        progress: None,
    };
    let mut warnings = 0u64;
    let quiet = g.quiet;
    let code = write_archive(
        g,
        &args.output,
        &args.out,
        job,
        || samples,
        |out: &mut dyn Write| {
            let mut warn = |line: String| {
                warnings += 1;
                if !quiet {
                    eprintln!("warning: {line}");
                }
            };
            let stats = dir_to_tar(&args.source, &mut options, &mut warn, &mut *out)?;
            if stats.tar.skipped_sockets > 0 && !quiet {
                eprintln!(
                    "note: {} socket(s) left out: a tar cannot hold sockets",
                    stats.tar.skipped_sockets
                );
            }
            Ok(stats.tar.entries)
        },
    )?;
    if code == crate::exit::OK && warnings > 0 {
        eprintln!("{warnings} entries could not be read (see above); the archive holds the rest");
        return Ok(crate::exit::PARTIAL);
    }
    Ok(code)
}

/// The total size of the regular files below `dir` (a quick walk of metadata only), and the
/// first megabyte of a few of the largest files, for the space estimate.
fn survey(dir: &std::path::Path) -> (u64, Vec<Vec<u8>>) {
    let mut total = 0u64;
    let mut largest: Vec<(u64, std::path::PathBuf)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len() + 512;
                largest.push((meta.len(), entry.path()));
                if largest.len() > 4 * SAMPLE_FILES {
                    largest.sort_by_key(|l| std::cmp::Reverse(l.0));
                    largest.truncate(SAMPLE_FILES);
                }
            } else {
                total += 512;
            }
        }
    }
    largest.sort_by_key(|l| std::cmp::Reverse(l.0));
    largest.truncate(SAMPLE_FILES);
    let samples = largest
        .iter()
        .filter_map(|(_, path)| {
            let mut buf = Vec::new();
            std::fs::File::open(path)
                .ok()?
                .take(SAMPLE_BYTES)
                .read_to_end(&mut buf)
                .ok()?;
            Some(buf)
        })
        .collect();
    (total, samples)
}

use std::io::Read;
