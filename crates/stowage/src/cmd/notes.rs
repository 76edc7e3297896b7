//! `stowage notes`: a snapshot's notes, kept in its manifest as `unprotected.notes` (as PBS
//! keeps them), changed under the manifest lock.

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::GlobalOpts;
use crate::exit::OK;
use crate::output::print_json;
use crate::repo;

const NOTES_KEY: &str = "notes";

pub fn run(g: &GlobalOpts, snapshot: &str, set: Option<String>) -> Result<i32> {
    let store = repo::open(g)?;
    let snapshot = store.resolve_snapshot(snapshot)?;
    let Some(text) = set else {
        let manifest = store.load_manifest(&snapshot)?;
        let notes = manifest.unprotected.get(NOTES_KEY).and_then(Value::as_str);
        let report = json!({ "snapshot": snapshot.to_string(), "notes": notes });
        if !print_json(g.output_format, &report)? {
            if let Some(notes) = notes {
                print!("{notes}");
                if !notes.ends_with('\n') {
                    println!();
                }
            }
        }
        return Ok(OK);
    };
    store.update_manifest(&snapshot, |m| {
        if text.is_empty() {
            m.unprotected.remove(NOTES_KEY);
        } else {
            m.unprotected
                .insert(NOTES_KEY.into(), Value::String(text.clone()));
        }
    })?;
    let notes = (!text.is_empty()).then_some(&text);
    let report = json!({ "snapshot": snapshot.to_string(), "notes": notes });
    if !print_json(g.output_format, &report)? {
        match notes {
            Some(_) => println!("notes of {snapshot} set"),
            None => println!("notes of {snapshot} removed"),
        }
    }
    Ok(OK)
}
