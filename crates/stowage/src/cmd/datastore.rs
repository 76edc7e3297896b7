use anyhow::Result;
use serde_json::json;
use stowage_datastore::Datastore;

use crate::cli::{DatastoreCommand, GlobalOpts};
use crate::exit::OK;
use crate::output::print_json;

pub fn run(g: &GlobalOpts, cmd: DatastoreCommand) -> Result<i32> {
    match cmd {
        DatastoreCommand::Create { path } => {
            let store = Datastore::create(&path)?;
            if !print_json(g.output_format, &json!({ "created": store.base() }))? {
                println!("created datastore {}", store.base().display());
            }
        }
    }
    Ok(OK)
}
