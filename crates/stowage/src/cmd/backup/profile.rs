//! `backup --profile`: a host profile's paths become one more file-tree spec (the walk of `/`
//! restricted to them), its commands are run before the snapshot starts and their output is
//! stored as `NAME.log` blobs.

use anyhow::Result;
use serde_json::{json, Value};
use stowage_core::session::BackupTarget;
use stowage_types::ErrorClass;

use super::{Spec, BLOB_LIMIT};
use crate::cli::GlobalOpts;
use crate::exit::fail;
use crate::output::bytes;
use crate::profile::{self, display_argv, CommandLog, Profile, ProfileCommand};

/// Room kept in a log blob for its header line.
const HEADER_ROOM: usize = 64 * 1024;

/// A loaded profile, its paths resolved on this host.
pub(super) struct Prepared {
    pub profile: Profile,
    /// The file-tree spec of its paths (none when it lists no paths); taken by the caller.
    pub spec: Option<Spec>,
    /// The name of that spec's archive.
    pub archive: Option<String>,
    /// The existing paths that went into the selection.
    pub found: Vec<String>,
    /// Optional paths that are not here, as reported.
    pub missing: Vec<String>,
}

/// Loads `arg` (a name or a file) and resolves its paths; reports the missing ones.
pub(super) fn prepare(g: &GlobalOpts, arg: &str) -> Result<Prepared> {
    let profile = profile::load(arg)?;
    let resolved = profile::resolve(&profile)?;
    for why in &resolved.missing {
        if !g.quiet {
            eprintln!("warning: {why}, skipped");
        }
    }
    let spec = match &profile.archive {
        Some(name) if !profile.paths.is_empty() => Some(Spec {
            name: name.clone(),
            path: "/".into(),
            selection: Some(resolved.selection()?),
            excludes: profile.exclude.clone(),
        }),
        _ => None,
    };
    let found = resolved
        .found
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(Prepared {
        archive: spec.as_ref().map(|s| s.name.to_string()),
        profile,
        spec,
        found,
        missing: resolved.missing,
    })
}

/// One command and what it gave.
pub(super) struct Ran<'a> {
    command: &'a ProfileCommand,
    log: CommandLog,
}

/// Runs every command of the profile in order. A critical one that fails ends the backup (exit 9)
/// before anything of the snapshot exists; any other failure is a warning.
pub(super) fn run_commands<'a>(g: &GlobalOpts, profile: &'a Profile) -> Result<Vec<Ran<'a>>> {
    let mut out = Vec::new();
    for command in &profile.commands {
        let line = display_argv(&command.argv);
        if g.verbose {
            eprintln!("Running {}: {line}", command.name);
        }
        let log = profile::run_command(command, BLOB_LIMIT as usize - HEADER_ROOM);
        if !log.ok && command.critical {
            return Err(fail(
                ErrorClass::CriticalCommand,
                format!(
                    "critical command {} of profile {} ({line}) failed: {}; no snapshot was made",
                    command.name, profile.name, log.status
                ),
            ));
        }
        if !log.ok && !g.quiet {
            eprintln!(
                "warning: command {} ({line}) failed: {}; its output is stored in {}",
                command.name, log.status, command.log
            );
        }
        out.push(Ran { command, log });
    }
    Ok(out)
}

/// Stores the logs in the snapshot; returns their JSON report rows.
pub(super) fn store_logs(
    target: &dyn BackupTarget,
    ran: &[Ran<'_>],
    talk: bool,
) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for Ran { command, log } in ran {
        target.add_blob(&command.log, &log.data)?;
        if talk {
            println!(
                "{}: stored {} from {} ({})",
                command.log,
                bytes(log.data.len() as u64),
                display_argv(&command.argv),
                log.status
            );
        }
        rows.push(json!({
            "archive": command.log.to_string(),
            "size": log.data.len(),
            "command": command.argv,
            "status": log.status,
            "ok": log.ok,
            "output_bytes": log.output_bytes,
            "duration_s": log.duration.as_secs_f64(),
        }));
    }
    Ok(rows)
}

/// The `profile` object of the JSON report.
pub(super) fn report(prepared: &Prepared, ran: &[Ran<'_>]) -> Value {
    let p = &prepared.profile;
    json!({
        "name": p.name,
        "origin": p.origin.to_string(),
        "archive": prepared.archive,
        "paths": prepared.found,
        "missing": prepared.missing,
        "failed_commands": ran.iter().filter(|r| !r.log.ok).map(|r| r.command.name.clone()).collect::<Vec<_>>(),
    })
}
