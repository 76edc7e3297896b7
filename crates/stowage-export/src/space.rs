//! Is there room for the output? An estimate of its size (from an earlier manifest of the same
//! source, or by compressing samples), times a safety factor, against the free space.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::compress::{compress_writer, CompressOptions, Format};
use crate::manifest::ArchiveManifest;
use crate::ExportError;

/// How big the output will probably be, and how that was worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeEstimate {
    pub bytes: u64,
    pub basis: String,
}

/// The compression ratio of the newest earlier archive of `source` in `format` whose manifest
/// lies in `dir`.
pub fn ratio_from_history(dir: &Path, source: &str, format: Format) -> Option<f64> {
    let mut best: Option<ArchiveManifest> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".manifest.json") else {
            continue;
        };
        let Some(m) = ArchiveManifest::read(&dir.join(stem)) else {
            continue;
        };
        let matches = m.source == source && m.format == format.name() && m.compressed_size > 0;
        if matches && best.as_ref().is_none_or(|b| m.started > b.started) {
            best = Some(m);
        }
    }
    best.map(|m| m.size as f64 / m.compressed_size as f64)
}

/// Compresses `samples` as the archive will be compressed (one thread) and returns the ratio
/// (input over output); 1.0 for no samples or no compression.
pub fn sample_ratio(samples: &[Vec<u8>], format: Format, level: Option<i32>) -> f64 {
    let input: u64 = samples.iter().map(|s| s.len() as u64).sum();
    if input == 0 || format == Format::None {
        return 1.0;
    }
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    struct Shared(std::sync::Arc<std::sync::atomic::AtomicU64>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let opts = CompressOptions {
        format,
        level,
        threads: 1,
    };
    let Ok(mut w) = compress_writer(Box::new(Shared(counted.clone())), &opts) else {
        return 1.0;
    };
    for s in samples {
        if w.write_all(s).is_err() {
            return 1.0;
        }
    }
    if w.finish().is_err() {
        return 1.0;
    }
    let output = counted.load(std::sync::atomic::Ordering::Relaxed).max(1);
    input as f64 / output as f64
}

/// The estimate for `size` input bytes: from history if there is any, else from the samples.
pub fn estimate(size: u64, history: Option<f64>, samples: impl FnOnce() -> f64) -> SizeEstimate {
    let (ratio, basis) = match history {
        Some(r) => (
            r,
            format!("an earlier archive of the same source (ratio {r:.2})"),
        ),
        None => {
            let r = samples();
            (
                r,
                format!("compressed samples of the source (ratio {r:.2})"),
            )
        }
    };
    let ratio = if ratio.is_finite() && ratio > 0.0 {
        ratio
    } else {
        1.0
    };
    SizeEstimate {
        bytes: (size as f64 / ratio).ceil() as u64,
        basis,
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Refuses when `free` is below `estimate × factor`.
pub fn check_space(
    dir: &Path,
    estimate: &SizeEstimate,
    factor: f64,
    free: u64,
) -> Result<(), ExportError> {
    let needed = (estimate.bytes as f64 * factor).ceil() as u64;
    if free >= needed {
        return Ok(());
    }
    Err(ExportError::NoSpace {
        dir: dir.to_path_buf(),
        detail: format!(
            "the output needs about {} bytes (estimated from {}), {} with the safety factor {factor}, but only {free} bytes are free; free some space, write elsewhere, or pass --force",
            estimate.bytes, estimate.basis, needed
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_and_checks() {
        let text: Vec<u8> = (0..1_000_000u32)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        let r = sample_ratio(&[text], Format::Zstd, None);
        assert!(r > 3.0, "{r}");
        let e = estimate(10_000, Some(2.0), || unreachable!());
        assert_eq!(e.bytes, 5000);
        assert!(e.basis.contains("earlier archive"));
        let e = estimate(10_000, None, || 4.0);
        assert_eq!(e.bytes, 2500);
        assert!(check_space(Path::new("/x"), &e, 1.5, 3750).is_ok());
        let err = check_space(Path::new("/x"), &e, 1.5, 3749).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(free_bytes(Path::new("/")).unwrap() > 0);
    }

    #[test]
    fn history_is_read_from_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ArchiveManifest {
            source: "/dev/sda".into(),
            content: "image".into(),
            size: 1000,
            compressed_size: 250,
            ratio: 4.0,
            format: "gz".into(),
            level: 6,
            threads: 2,
            sha256: String::new(),
            host: "h".into(),
            started: "2026-01-01T00:00:00Z".into(),
            duration_s: 1.0,
            throughput_mbs: 1.0,
            entries: 0,
            writer: "t".into(),
        };
        m.write(&dir.path().join("old.img.gz")).unwrap();
        m.compressed_size = 500;
        m.started = "2026-02-01T00:00:00Z".into();
        m.write(&dir.path().join("new.img.gz")).unwrap();
        assert_eq!(
            ratio_from_history(dir.path(), "/dev/sda", Format::Gzip),
            Some(2.0)
        );
        assert_eq!(
            ratio_from_history(dir.path(), "/dev/sdb", Format::Gzip),
            None
        );
        assert_eq!(
            ratio_from_history(dir.path(), "/dev/sda", Format::Zstd),
            None
        );
    }
}
