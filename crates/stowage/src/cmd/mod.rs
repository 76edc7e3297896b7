//! One file per verb.

mod archive;
mod backup;
mod benchmark;
mod cat;
mod catalog;
mod datastore;
mod export;
mod files;
mod forget;
mod gc;
mod groups;
mod namespace;
mod notes;
mod profile;
mod protect;
mod prune;
mod restore;
mod snapshots;
mod sync;
mod verify;
mod verify_archive;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs one verb; returns the exit code for outcomes that are not errors (verify may report bad
/// data through its code).
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Datastore(c) => datastore::run(g, c),
        Command::Backup(args) => backup::run(g, args),
        Command::Restore(args) => restore::run(g, args),
        Command::Groups => groups::run(g),
        Command::Snapshots { group, all } => snapshots::run(g, group, all),
        Command::Files { snapshot } => files::run(g, &snapshot),
        Command::Forget { snapshot } => forget::run(g, &snapshot),
        Command::Prune(args) => prune::run(g, args),
        Command::Protect { snapshot } => protect::run(g, &snapshot, true),
        Command::Unprotect { snapshot } => protect::run(g, &snapshot, false),
        Command::Verify(args) => verify::run(g, args),
        Command::Notes { snapshot, set } => notes::run(g, &snapshot, set),
        Command::Cat {
            snapshot,
            archive,
            path,
        } => cat::run(g, &snapshot, &archive, &path),
        Command::Catalog { snapshot, find } => catalog::run(g, &snapshot, find.as_deref()),
        Command::Profile(c) => profile::run(g, c),
        Command::Namespace(c) => namespace::run(g, c),
        Command::Gc(args) => gc::run(g, args),
        Command::Export(args) => export::run(g, args),
        Command::Archive(args) => archive::run(g, args),
        Command::VerifyArchive { path } => verify_archive::run(g, &path),
        Command::Sync(args) => sync::run(g, args),
        Command::Benchmark(args) => benchmark::run(g, args),
    }
}
