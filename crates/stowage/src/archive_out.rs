//! Writing one standard archive (`export`, `archive`): format and level, the space check, the
//! output file with its checksum and manifest, progress and the summary.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use stowage_export::compress::{compress_writer, CompressOptions, Format};
use stowage_export::manifest::ArchiveManifest;
use stowage_export::output::{
    checksum_path, manifest_path, write_checksum, HashingWriter, OutputFile,
};
use stowage_export::space;
use stowage_types::ErrorClass;

use crate::cli::{ArchiveOutArgs, GlobalOpts};
use crate::exit::fail;
use crate::output::{bytes, print_json, rate};
use crate::progress::{Reporter, Sample};

/// What is being archived.
pub struct Job {
    /// Shown in the manifest and used to find earlier archives of the same source.
    pub source: String,
    /// `image` or `tar`.
    pub content: &'static str,
    /// Bytes before compression, when known in advance.
    pub size: Option<u64>,
    /// The producer writes the compressed stream itself (an export that writes zstd frames of
    /// its own); `size` is then the exact size before compression, and `progress` (when given)
    /// counts the bytes before compression done so far.
    pub precompressed: bool,
    pub progress: Option<Arc<AtomicU64>>,
}

/// Counts what the producer hands to the compressor (progress), and remembers whether a write
/// failed (the producer's error is then about the output).
struct Counted<'a> {
    inner: &'a mut dyn Write,
    count: Arc<AtomicU64>,
    failed: bool,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// The format: `--format`, else the output's extension; `none` for standard output.
pub fn resolve_format(args: &ArchiveOutArgs, out: &str) -> Result<Format> {
    if let Some(f) = &args.format {
        return Ok(f.parse::<Format>()?);
    }
    if out == "-" {
        return Ok(Format::None);
    }
    Ok(Format::from_path(Path::new(out)).unwrap_or(Format::None))
}

/// Runs `produce` (which writes the uncompressed stream and returns the number of tar entries)
/// into `out`, compressed as asked; returns the manifest it wrote.
pub fn write_archive(
    g: &GlobalOpts,
    args: &ArchiveOutArgs,
    out: &str,
    job: Job,
    samples: impl FnOnce() -> Vec<Vec<u8>>,
    produce: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<i32> {
    let format = resolve_format(args, out)?;
    let level = args.level.unwrap_or(format.default_level());
    format.check_level(level)?;
    let threads = g.worker_threads();
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let to_file = out != "-";
    let path = PathBuf::from(out);
    if to_file {
        if let (Some(size), false) = (job.size, args.force) {
            check_space(&path, &job, size, format, level, args.space_factor, samples)?;
        }
    }
    let output = if to_file {
        Some(OutputFile::create(&path, args.overwrite)?)
    } else {
        None
    };
    let sink: Box<dyn Write + Send> = match &output {
        Some(o) => Box::new(io::BufWriter::with_capacity(1 << 20, o.writer()?)),
        None => Box::new(io::stdout()),
    };
    let (hashing, probe) = HashingWriter::new(sink);
    let opts = CompressOptions {
        format,
        level: Some(level),
        threads,
    };
    let mut compressor = if job.precompressed {
        compress_writer(
            Box::new(hashing),
            &CompressOptions {
                format: Format::None,
                level: None,
                threads: 1,
            },
        )?
    } else {
        compress_writer(Box::new(hashing), &opts)?
    };
    let count = Arc::new(AtomicU64::new(0));
    // Bytes before compression; a producer that compresses itself counts them itself.
    let probe_count = match job.precompressed {
        true => job.progress.clone().unwrap_or_else(|| count.clone()),
        false => count.clone(),
    };
    let size = job.size;
    let reporter = Reporter::start(
        format!("{} {}", if to_file { "archive to" } else { "archive" }, out),
        Box::new(move || Sample::bytes(probe_count.load(Ordering::Relaxed), size)),
        !g.quiet,
    );
    let produced = {
        let mut counted = Counted {
            inner: &mut compressor,
            count: count.clone(),
            failed: false,
        };
        let produced = produce(&mut counted);
        match counted.failed {
            true => produced.with_context(|| format!("cannot write {out}")),
            false => produced,
        }
    };
    let finished = produced.and_then(|entries| {
        compressor
            .finish()
            .map_err(|e| write_error(out, e))
            .map(|()| entries)
    });
    let entries = finished?;
    reporter.finish();
    let size = if job.precompressed {
        job.size.unwrap_or(0)
    } else {
        count.load(Ordering::Relaxed)
    };
    let compressed = probe.len();
    let secs = started.elapsed().as_secs_f64();
    let manifest = ArchiveManifest {
        source: job.source.clone(),
        content: job.content.into(),
        size,
        compressed_size: compressed,
        ratio: if compressed > 0 {
            size as f64 / compressed as f64
        } else {
            0.0
        },
        format: format.name().into(),
        level,
        threads,
        sha256: probe.hex_digest(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        started: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        duration_s: secs,
        throughput_mbs: if secs > 0.0 {
            size as f64 / secs / 1e6
        } else {
            0.0
        },
        entries,
        writer: format!("stowage {}", env!("CARGO_PKG_VERSION")),
    };
    // The checksum and manifest first, then the output appears: if any step fails, none of
    // the three is left behind.
    if let Some(o) = output {
        let committed = write_checksum(&path, &manifest.sha256)
            .and_then(|()| manifest.write(&path))
            .and_then(|()| o.commit());
        if let Err(e) = committed {
            // No checksum or manifest without the output they describe.
            if path.symlink_metadata().is_err() {
                for sidecar in [checksum_path(&path), manifest_path(&path)] {
                    let _ = std::fs::remove_file(sidecar);
                }
            }
            return Err(e.into());
        }
    }
    report(g, out, &manifest, to_file, secs)?;
    Ok(crate::exit::OK)
}

pub fn write_error(out: &str, e: io::Error) -> anyhow::Error {
    let class = ErrorClass::of_write_error(&e, ErrorClass::Target);
    let hint = if class == ErrorClass::NoSpace {
        "; the partial file was removed"
    } else {
        ""
    };
    fail(class, format!("cannot write {out}: {e}{hint}"))
}

fn check_space(
    path: &Path,
    job: &Job,
    size: u64,
    format: Format,
    level: i32,
    factor: f64,
    samples: impl FnOnce() -> Vec<Vec<u8>>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let free = space::free_bytes(dir).map_err(|e| {
        fail(
            ErrorClass::Target,
            format!("cannot see the free space of {}: {e}", dir.display()),
        )
    })?;
    // Room even for the uncompressed size (plus a little framing): nothing to estimate.
    let bound = size + size / 64 + (1 << 20);
    if free as f64 >= bound as f64 * factor {
        return Ok(());
    }
    let history = space::ratio_from_history(dir, &job.source, format);
    let estimate = space::estimate(size, history, || {
        space::sample_ratio(&limit_samples(samples(), format), format, Some(level))
    });
    space::check_space(dir, &estimate, factor, free)?;
    Ok(())
}

/// xz compresses a few MB/s per core: a sample of 1 MiB in all tells its ratio well enough.
fn limit_samples(mut samples: Vec<Vec<u8>>, format: Format) -> Vec<Vec<u8>> {
    let budget: usize = if format == Format::Xz {
        1 << 20
    } else {
        16 << 20
    };
    let each = budget / samples.len().max(1);
    for s in &mut samples {
        s.truncate(each);
    }
    samples
}

fn report(g: &GlobalOpts, out: &str, m: &ArchiveManifest, to_file: bool, secs: f64) -> Result<()> {
    let json = json!({
        "output": out,
        "manifest": m,
    });
    if !to_file {
        // Standard output carries the archive: the report goes to stderr.
        if !matches!(g.output_format, crate::cli::OutputFormat::Text) {
            eprintln!("{json}");
            return Ok(());
        }
    } else if print_json(g.output_format, &json)? {
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    let text = format!(
        "{} {}: {} -> {} ({:.2}x, {} level {}, {} threads) in {secs:.2} s ({})",
        if to_file { "wrote" } else { "streamed" },
        out,
        bytes(m.size),
        bytes(m.compressed_size),
        m.ratio,
        m.format,
        m.level,
        m.threads,
        rate(m.size, secs)
    );
    if to_file {
        println!("{text}");
        println!(
            "sha256 {}  (in {out}.sha256; details in {out}.manifest.json)",
            m.sha256
        );
    } else {
        eprintln!("{text}");
        eprintln!("sha256 {}", m.sha256);
    }
    Ok(())
}
