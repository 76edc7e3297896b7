//! The command line: one vocabulary across all verbs.

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
    /// Check every chunk, index and blob of snapshots; exits 8 when anything is bad
    Verify(VerifyArgs),
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
        /// Only paths matching this glob (`*`, `?`, `**`, `[a-z]`), e.g. 'root.pxar.didx/etc/**'
        #[arg(long, value_name = "GLOB")]
        find: Option<std::ffi::OsString>,
    },
    /// List and show host profiles (for `backup --profile`)
    #[command(subcommand)]
    Profile(ProfileCommand),
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
    /// Leave out entries matching this gitignore-style pattern (repeatable; .pxar archives)
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
    /// Restore only entries matching this path or glob, and all below them (repeatable;
    /// file-tree archives)
    #[arg(long, value_name = "PATH_OR_GLOB")]
    pub include: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// TYPE/ID/TIME for one snapshot, or TYPE/ID for every snapshot of a group
    pub target: Option<String>,
    /// Verify every snapshot in the datastore
    #[arg(long, conflicts_with = "target")]
    pub all: bool,
}
