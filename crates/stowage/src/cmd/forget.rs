use anyhow::Result;
use serde_json::json;
use stowage_types::SnapshotRef;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::print_json;
use crate::repo;

pub fn run(g: &GlobalOpts, snapshot: &str) -> Result<i32> {
    // A full name is required: "forget vm/100" must not silently pick the newest.
    let snapshot: SnapshotRef = snapshot.parse()?;
    let store = repo::open(g)?;
    store.forget(&snapshot)?;
    if !print_json(g.output_format, &json!({ "removed": snapshot.to_string() }))? {
        println!("removed snapshot {snapshot}");
    }
    Ok(OK)
}
