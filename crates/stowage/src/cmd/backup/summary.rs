//! What a backup reports: per archive and in total, as text or JSON.

use serde::Serialize;
use stowage_core::ImageBackupStats;

use crate::output::{bytes, percent, rate};

#[derive(Serialize)]
pub struct ArchiveSummary {
    pub archive: String,
    pub source: String,
    pub size: u64,
    pub chunks: u64,
    pub zero_bytes: u64,
    pub reused_bytes: u64,
    pub new_bytes: u64,
    pub new_chunks: u64,
    pub written_bytes: u64,
    pub compression_ratio: f64,
    pub duration_s: f64,
    pub throughput_bps: f64,
    /// File-tree archives: what went in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree: Option<stowage_fs::CreateStats>,
    /// The figures above, for adding up the archives of a backup.
    #[serde(skip)]
    pub stats: ImageBackupStats,
}

impl ArchiveSummary {
    pub fn new(archive: &str, source: &str, s: &ImageBackupStats) -> Self {
        let secs = s.duration.as_secs_f64();
        ArchiveSummary {
            archive: archive.to_string(),
            source: source.to_string(),
            size: s.size,
            chunks: s.chunks,
            zero_bytes: s.zero_bytes,
            reused_bytes: s.reused_bytes,
            new_bytes: s.new_bytes,
            new_chunks: s.new_chunks,
            written_bytes: s.written_bytes,
            compression_ratio: ratio(s.new_bytes, s.written_bytes),
            duration_s: secs,
            throughput_bps: if secs > 0.0 {
                s.size as f64 / secs
            } else {
                0.0
            },
            tree: None,
            stats: s.clone(),
        }
    }

    pub fn print_text(&self) {
        let a = &self.archive;
        println!(
            "{a}: {} in {:.2} s ({}), {} chunks",
            bytes(self.size),
            self.duration_s,
            rate(self.size, self.duration_s),
            self.chunks
        );
        if let Some(t) = &self.tree {
            println!(
                "{a}: {} files ({}), {} directories, {} symlinks, {} hardlinks, {} other, {} excluded, {} warnings",
                t.files,
                bytes(t.bytes),
                t.directories,
                t.symlinks,
                t.hardlinks,
                t.other,
                t.excluded,
                t.warnings
            );
        }
        println!(
            "{a}: sparse/zero data {} ({:.1}%)",
            bytes(self.zero_bytes),
            percent(self.zero_bytes, self.size)
        );
        println!(
            "{a}: reused {} ({:.1}%)",
            bytes(self.reused_bytes),
            percent(self.reused_bytes, self.size)
        );
        println!(
            "{a}: new data {} written as {} (compression {:.2}x)",
            bytes(self.new_bytes),
            bytes(self.written_bytes),
            self.compression_ratio
        );
    }
}

pub fn ratio(plain: u64, encoded: u64) -> f64 {
    if encoded == 0 {
        1.0
    } else {
        plain as f64 / encoded as f64
    }
}

/// The figures of all archives of a backup.
pub fn totals(summaries: &[ArchiveSummary]) -> ImageBackupStats {
    let mut total = ImageBackupStats::default();
    for s in summaries {
        total.add(&s.stats);
    }
    total
}
