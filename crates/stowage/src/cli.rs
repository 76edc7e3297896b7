//! The command line: one vocabulary across all verbs.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "stowage",
    version,
    about = "Fast, deduplicating backups in Proxmox Backup Server's datastore format",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 datastore missing or locked, \
4 source unreadable, 5 target not writable, 6 not found, 7 backup partial (some files unreadable), \
8 verification failed, 9 a critical profile command failed, \
10 archive/index write failed, 11 compression failed, 12 not enough space."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Datastore directory [default: ~/.local/share/stowage/datastore, created on first use]
    #[arg(long, global = true, env = "STOWAGE_REPOSITORY")]
    pub repository: Option<std::path::PathBuf>,
    /// Namespace of the datastore to work in, for example `site1/cluster2` [default: the root]
    #[arg(long, global = true, env = "STOWAGE_NAMESPACE", value_name = "NS")]
    pub ns: Option<String>,
    /// How results are printed on stdout
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
    /// Worker threads [default: all cores]
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail on stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeDetection {
    Legacy,
    Data,
    Metadata,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    JsonPretty,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage datastores
    #[command(subcommand)]
    Datastore(DatastoreCommand),
    /// Back up disk images, block devices or standard input, directory trees, small config files,
    /// and a host's configuration with --profile
    Backup(BackupArgs),
    /// Restore an archive of a snapshot to a file, a block device or stdout
    Restore(RestoreArgs),
    /// List backup groups
    Groups,
    /// List snapshots, of one group or of all
    Snapshots {
        /// TYPE/ID, for example vm/100
        group: Option<String>,
        /// Also list unfinished snapshots (no manifest): a backup that runs, or one that was
        /// killed (gc removes those once they are older than its cutoff)
        #[arg(long)]
        all: bool,
    },
    /// List the files of a snapshot
    Files {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
    },
    /// Remove a snapshot
    Forget {
        /// TYPE/ID/TIME
        snapshot: String,
    },
    /// Remove the snapshots of a group that no --keep-* option keeps (PBS's prune rules)
    Prune(PruneArgs),
    /// Protect a snapshot from prune and forget
    Protect {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
    },
    /// Lift a snapshot's protection
    Unprotect {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
    },
    /// Check every chunk, index and blob of snapshots; exits 8 when anything is bad
    Verify(VerifyArgs),
    /// Print a snapshot's notes, or set them with --set
    Notes {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
        /// New notes; an empty TEXT removes them
        #[arg(long, value_name = "TEXT")]
        set: Option<String>,
    },
    /// Print one file of a file-tree archive to stdout
    Cat {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
        /// Archive name, for example root.pxar
        archive: String,
        /// Path of the file inside the archive, for example /etc/hostname
        path: std::ffi::OsString,
    },
    /// List the files of a snapshot's file-tree archives from its catalog
    Catalog {
        /// TYPE/ID/TIME, or TYPE/ID for the newest
        snapshot: String,
        /// Only entries matching this pattern, as PBS's 'catalog find': a glob (`*`, `?`, `**`,
        /// `[a-z]`) matched against any complete suffix of '/ARCHIVE.didx/PATH' ('hosts' finds
        /// every hosts, '/root.pxar.didx/etc/hosts' exactly one); a trailing '/' finds
        /// directories only, a leading '!' lists what does not match
        #[arg(long, value_name = "PATTERN")]
        find: Option<std::ffi::OsString>,
    },
    /// Remove chunks no snapshot needs (safe while backups run)
    Gc(GcArgs),
    /// Copy the snapshots another datastore has and this one lacks (only missing chunks travel,
    /// each verified); with --ns, that namespace and those below it
    Sync(SyncArgs),
    /// Write an archive of a snapshot as a standard file: an image as a raw image, a file-tree
    /// archive as a tar; compressed on all cores (gz like pigz, zst, xz, lz4) with OUT.sha256 and
    /// OUT.manifest.json beside it
    Export(ExportArgs),
    /// Write a block device or image file (raw) or a directory (tar) straight to a standard
    /// compressed file, without a datastore
    Archive(ArchiveArgs),
    /// Check a standard archive: its checksum, the whole compressed stream, every tar entry;
    /// exits 8 when it is damaged
    VerifyArchive {
        /// The archive file (OUT.sha256 and OUT.manifest.json beside it are used when present)
        path: std::path::PathBuf,
    },
    /// Create, list and remove namespaces
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// List and show host profiles (for `backup --profile`)
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Measure hashing, compression, chunk verification and encryption speed on this machine,
    /// on one thread and on --threads threads, next to PBS's reference values
    Benchmark(BenchmarkArgs),
}

#[derive(Args, Debug)]
pub struct BenchmarkArgs {
    /// Seconds each measurement runs (once on one thread, once on all)
    #[arg(long, default_value_t = 1.0, value_name = "S", value_parser = parse_seconds)]
    pub seconds: f64,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err("expected a number of seconds above 0 and at most 3600".into()),
    }
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// List the profiles `backup --profile NAME` can use: your own (in ~/.config/stowage/profiles
    /// and /etc/stowage/profiles) and the built-in ones
    List,
    /// Print a profile file (to copy and edit: `stowage profile show pve-host > my.toml`)
    Show {
        /// A profile name, or a path to a profile file
        name: String,
    },
}

/// How a standard archive is written.
#[derive(Args, Debug, Clone)]
pub struct ArchiveOutArgs {
    /// gz, zst, xz, lz4 or none [default: from OUT's extension; none for '-']
    #[arg(long)]
    pub format: Option<String>,
    /// Compression level [default: gz 6, zst 3, xz 6]
    #[arg(long, allow_negative_numbers = false)]
    pub level: Option<i32>,
    /// Refuse to start unless the free space is at least the estimated output size times this
    #[arg(long, default_value_t = 1.5)]
    pub space_factor: f64,
    /// Skip the free-space check
    #[arg(long)]
    pub force: bool,
    /// Replace an existing OUT
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// TYPE/ID/TIME, or TYPE/ID for the newest snapshot
    pub snapshot: String,
    /// Archive name, for example drive-scsi0.img or root.pxar
    pub archive: String,
    /// Output file (for example disk.img.gz or root.tar.zst), or '-' for stdout
    pub out: String,
    #[command(flatten)]
    pub output: ArchiveOutArgs,
}

#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// A block device, an image file, or a directory
    pub source: std::path::PathBuf,
    /// Output file (for example boot.img.gz or etc.tar.xz), or '-' for stdout
    pub out: String,
    #[command(flatten)]
    pub output: ArchiveOutArgs,
    /// Leave out entries matching this pattern (repeatable; directories): '*.tmp' or 'var/cache'
    /// at any depth, '/tmp' only at the top; a trailing '/' for directories only, '!' re-includes
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Do not descend into other mounted file systems (directories)
    #[arg(long)]
    pub one_file_system: bool,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The datastore to copy from
    #[arg(long, value_name = "PATH")]
    pub from: std::path::PathBuf,
    /// The datastore to copy to [default: --repository, or the embedded default]
    #[arg(long, value_name = "PATH")]
    pub to: Option<std::path::PathBuf>,
    /// Only this group (TYPE/ID)
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Remove only chunks untouched for this long (`24h5m`, `90s`, `2d`); below 24 h a chunk
    /// that a backup reused without touching it on a relatime mount could go
    #[arg(long, default_value = "24h5m", value_parser = parse_duration)]
    pub cutoff: Duration,
    /// Mark and count, but remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Digests remembered as already marked (about 70 bytes each; 0 touches every reference)
    #[arg(long)]
    pub cache_capacity: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum NamespaceCommand {
    /// Create a namespace (its parent must exist), for example `a` then `a/b`
    Create { namespace: String },
    /// List a namespace (the root, or --ns) and those below it
    List {
        /// How many levels down to go [default: all]
        #[arg(long)]
        max_depth: Option<usize>,
    },
    /// Remove an empty namespace and the empty namespaces below it
    Remove {
        namespace: String,
        /// Also remove every group and snapshot in it (protected snapshots still refuse)
        #[arg(long)]
        delete_groups: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DatastoreCommand {
    /// Create an empty datastore in a new or empty directory
    Create { path: std::path::PathBuf },
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// NAME.img:PATH (image file, block device or '-' for stdin), NAME.pxar:DIR (a directory
    /// tree), NAME.conf:FILE or NAME.log:FILE
    #[arg(required_unless_present = "profile", value_name = "SPEC")]
    pub specs: Vec<String>,
    /// Back up a host's configuration as a profile lists it: paths into one .pxar archive,
    /// command output into NAME.log blobs (pve-host, pbs-host, your own NAME, or a FILE.toml;
    /// see `stowage profile list`)
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// vm, ct or host
    #[arg(long, default_value = "host")]
    pub backup_type: String,
    /// Group id [default: the host name]
    #[arg(long)]
    pub backup_id: Option<String>,
    /// Snapshot time, as Unix seconds or RFC 3339 (UTC) [default: now]
    #[arg(long)]
    pub backup_time: Option<String>,
    /// Leave out entries matching this pattern (repeatable; .pxar archives): '*.tmp' or
    /// 'var/cache' at any depth, '/tmp' only at the top of each archive; a trailing '/' for
    /// directories only, '!' re-includes
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Do not descend into other mounted file systems (.pxar archives)
    #[arg(long)]
    pub one_file_system: bool,
    /// How file trees are stored: `legacy` (one .pxar stream), `data` (split .mpxar/.ppxar),
    /// `metadata` (split; files whose metadata did not change since the previous snapshot are
    /// not read again)
    #[arg(long, value_enum, default_value_t = ChangeDetection::Legacy)]
    pub change_detection_mode: ChangeDetection,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// TYPE/ID/TIME, or TYPE/ID for the newest snapshot
    pub snapshot: String,
    /// Archive name, for example drive-scsi0.img or qemu-server.conf
    pub archive: String,
    /// File, block device, or '-' for stdout
    pub target: String,
    /// Replace an existing regular file (images) or existing entries (file-tree archives)
    #[arg(long)]
    pub overwrite: bool,
    /// Restore only entries matching this pattern, and all below them (repeatable; file-tree
    /// archives). Matched as PBS matches paths: '/etc' only at the top, 'hosts' at any depth; a
    /// later '!PATTERN' leaves out what an earlier one brought in. Matching nothing is an error
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// TYPE/ID/TIME for one snapshot, or TYPE/ID for every snapshot of a group
    pub target: Option<String>,
    /// Verify every snapshot of the namespace (--ns; the root by default) and those below it
    #[arg(long, conflicts_with = "target")]
    pub all: bool,
    /// Skip snapshots that were verified before (whether that passed or failed), unless the
    /// verification is older than --outdated-after
    #[arg(long)]
    pub ignore_verified: bool,
    /// With --ignore-verified: verify again snapshots whose last verification is more than DAYS
    /// whole days old (implies --ignore-verified)
    #[arg(long, value_name = "DAYS")]
    pub outdated_after: Option<u64>,
    /// Check chunks, indexes and blobs only, as PBS does, without decoding the file-tree
    /// archives and catalogs (about half the time for legacy file-tree snapshots)
    #[arg(long)]
    pub chunks_only: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// TYPE/ID, for example vm/100
    pub group: String,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_last: Option<u64>,
    /// Keep the newest snapshot of each of the N newest hours (local time)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_hourly: Option<u64>,
    /// Keep the newest snapshot of each of the N newest days
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_daily: Option<u64>,
    /// Keep the newest snapshot of each of the N newest ISO weeks
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_weekly: Option<u64>,
    /// Keep the newest snapshot of each of the N newest months
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_monthly: Option<u64>,
    /// Keep the newest snapshot of each of the N newest years
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_yearly: Option<u64>,
    /// Show what would be kept and removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl GlobalOpts {
    /// Worker threads: `--threads`, or every core.
    pub fn worker_threads(&self) -> usize {
        self.threads
            .map(usize::from)
            .unwrap_or_else(stowage_core::default_threads)
    }
}

/// `90`, `90s`, `15m`, `24h5m`, `2d`: a duration in seconds, minutes, hours and days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("unknown unit '{c}' (use s, m, h or d)")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| "a number must precede each unit")?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        total = total.saturating_add(number.parse::<u64>().map_err(|e| e.to_string())?);
    } else if text.is_empty() {
        return Err("empty duration".into());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("24h5m").unwrap().as_secs(), 86700);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172800);
        assert_eq!(parse_duration("0s").unwrap().as_secs(), 0);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
    }
}
