//! Which datastore a command works on.

use std::path::PathBuf;

use anyhow::Result;
use stowage_datastore::{Datastore, LocalReader};
use stowage_types::{BackupNamespace, ErrorClass};

use crate::cli::GlobalOpts;
use crate::exit::fail;

/// The embedded default: `~/.local/share/stowage/datastore` (or under `$XDG_DATA_HOME`).
pub fn default_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("stowage/datastore"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| fail(ErrorClass::Usage, "HOME is not set; give --repository PATH"))?;
    Ok(PathBuf::from(home).join(".local/share/stowage/datastore"))
}

/// Opens the datastore the user chose. An explicit path must already be a datastore; the
/// embedded default is created on first use.
/// The store is seen from the namespace `--ns` names.
pub fn open(global: &GlobalOpts) -> Result<Datastore> {
    let store = open_root(global)?;
    let ns = namespace(global)?;
    if ns.is_root() {
        return Ok(store);
    }
    Ok(store.in_namespace(&ns)?)
}

/// The snapshot `spec` names (`type/id/time`, or `type/id` for the newest), opened for reading.
pub fn open_snapshot<'s>(store: &'s Datastore, spec: &str) -> Result<LocalReader<'s>> {
    let snapshot = store.resolve_snapshot(spec)?;
    Ok(store.open_snapshot(&snapshot)?)
}

/// The datastore in its root namespace, whatever `--ns` says.
pub fn open_root(global: &GlobalOpts) -> Result<Datastore> {
    if let Some(path) = explicit(global)? {
        return Ok(Datastore::open(&path)?);
    }
    Ok(Datastore::open_or_create(&default_path()?)?)
}

/// The namespace `--ns` names (the root without it).
pub fn namespace(global: &GlobalOpts) -> Result<BackupNamespace> {
    Ok(global.ns.as_deref().unwrap_or("").parse()?)
}

fn explicit(global: &GlobalOpts) -> Result<Option<PathBuf>> {
    if let Some(path) = &global.repository {
        return Ok(Some(path.clone()));
    }
    match std::env::var("PBS_REPOSITORY") {
        Ok(r) if r.starts_with('/') => Ok(Some(PathBuf::from(r))),
        Ok(r) if !r.is_empty() => Err(fail(
            ErrorClass::Usage,
            format!("PBS_REPOSITORY={r} names a remote repository; this stowage works on local datastores only, give --repository PATH"),
        )),
        _ => Ok(None),
    }
}
