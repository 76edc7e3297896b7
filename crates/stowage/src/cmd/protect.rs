use anyhow::Result;
use serde_json::json;
use stowage_types::SnapshotRef;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::print_json;
use crate::repo;

/// `protect` (protected = true) and `unprotect`: sets or clears a snapshot's `.protected` marker.
pub fn run(g: &GlobalOpts, snapshot: &str, protected: bool) -> Result<i32> {
    let store = repo::open(g)?;
    // TYPE/ID/TIME names any snapshot directory; TYPE/ID the group's newest finished snapshot.
    let snapshot = match snapshot.parse::<SnapshotRef>() {
        Ok(s) => s,
        Err(_) => store.resolve_snapshot(snapshot)?,
    };
    store.set_protected(&snapshot, protected)?;
    let value = json!({ "snapshot": snapshot.to_string(), "protected": protected });
    if !print_json(g.output_format, &value)? {
        let what = if protected {
            "protected"
        } else {
            "unprotected"
        };
        println!("{what} snapshot {snapshot}");
    }
    Ok(OK)
}
