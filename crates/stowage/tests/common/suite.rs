//! The safety suite's figures: each of its tests records what it tried (kills, injected faults,
//! hostile inputs, concurrent runs) and the snapshots it found damaged, in a file of its own
//! under `target/safety-suite/`; `scripts/safety-suite.sh` adds them up with the fuzzing runs
//! and prints the summary.

use std::fs;
use std::path::PathBuf;

/// The directory the figures go to: `target/safety-suite`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("safety-suite"))
        .unwrap_or_else(|| PathBuf::from("target/safety-suite"))
}

/// Records `figures` (name, value) for the test `test`, replacing what an earlier run of it
/// recorded. Names: `kills`, `faults`, `hostile_cases`, `concurrent_runs`,
/// `damaged_snapshots`.
pub fn record(test: &str, figures: &[(&str, u64)]) {
    let dir = dir();
    let _ = fs::create_dir_all(&dir);
    let text: String = figures
        .iter()
        .map(|(name, value)| format!("{name} {value}\n"))
        .collect();
    let _ = fs::write(dir.join(format!("{test}.txt")), text);
}
