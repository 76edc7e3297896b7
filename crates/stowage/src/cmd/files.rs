use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::{bytes, print_json};
use crate::repo;

pub fn run(g: &GlobalOpts, snapshot: &str) -> Result<i32> {
    let store = repo::open(g)?;
    let snapshot = store.resolve_snapshot(snapshot)?;
    let manifest = store.load_manifest(&snapshot)?;
    if print_json(g.output_format, &manifest.files)? {
        return Ok(OK);
    }
    println!("{snapshot}");
    for f in &manifest.files {
        println!("  {:<32} {:>12}  {}", f.filename, bytes(f.size), f.csum);
    }
    Ok(OK)
}
