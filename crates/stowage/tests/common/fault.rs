//! Fault injection into the real binary: `tests/support/fault_shim.c`, built once per test
//! binary with the system's C compiler and loaded with `LD_PRELOAD`, makes the Nth write, fsync
//! or rename below a path fail with EIO or ENOSPC, or makes that write short.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kind of call to strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Write,
    Fsync,
    Rename,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Write, Op::Fsync, Op::Rename];

    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Fsync => "fsync",
            Op::Rename => "rename",
        }
    }
}

/// What the struck call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Eio,
    Enospc,
    /// The write takes half its bytes (writes only).
    Short,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Eio => "EIO",
            Fault::Enospc => "ENOSPC",
            Fault::Short => "SHORT",
        }
    }

    /// The faults that make sense for `op`.
    pub fn for_op(op: Op) -> &'static [Fault] {
        match op {
            Op::Write => &[Fault::Eio, Fault::Enospc, Fault::Short],
            Op::Fsync | Op::Rename => &[Fault::Eio, Fault::Enospc],
        }
    }
}

/// The shim library, compiled on first use into the test's scratch directory.
pub fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fault_shim.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fault_shim-{}.so", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("the C compiler 'cc' builds the fault-injection shim: install gcc (build-essential)");
        assert!(status.success(), "cannot compile {}", source.display());
        out
    })
}

/// One injected fault: the `nth` call of `op` on files below `below` does `fault`.
#[derive(Debug, Clone)]
pub struct Injection {
    pub op: Op,
    pub fault: Fault,
    pub nth: u64,
    pub below: PathBuf,
    /// Where the shim reports what it did.
    pub log: PathBuf,
}

impl Injection {
    /// Adds the shim and its settings to `cmd`.
    pub fn apply(&self, cmd: &mut Command) {
        let _ = std::fs::remove_file(&self.log);
        cmd.env("LD_PRELOAD", shim())
            .env("STOWAGE_FAULT_OP", self.op.name())
            .env("STOWAGE_FAULT_NTH", self.nth.to_string())
            .env("STOWAGE_FAULT_ERROR", self.fault.name())
            .env("STOWAGE_FAULT_PATH", &self.below)
            .env("STOWAGE_FAULT_LOG", &self.log);
    }

    /// Whether the fault fired in the last run.
    pub fn fired(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().any(|l| !l.starts_with("count ")))
            .unwrap_or(false)
    }

    /// How many matching calls the last run made.
    pub fn calls(&self) -> u64 {
        std::fs::read_to_string(&self.log)
            .ok()
            .and_then(|t| {
                t.lines()
                    .filter_map(|l| l.strip_prefix("count ")?.parse().ok())
                    .next_back()
            })
            .unwrap_or(0)
    }
}
