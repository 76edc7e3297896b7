//! `stowage namespace create|list|remove`.

use anyhow::Result;
use serde_json::json;
use stowage_types::BackupNamespace;

use crate::cli::{GlobalOpts, NamespaceCommand};
use crate::exit::OK;
use crate::output::print_json;
use crate::repo;

pub fn run(g: &GlobalOpts, command: NamespaceCommand) -> Result<i32> {
    let store = repo::open_root(g)?;
    match command {
        NamespaceCommand::Create { namespace } => {
            let ns: BackupNamespace = namespace.parse()?;
            store.create_namespace(&ns)?;
            if !print_json(g.output_format, &json!({ "created": ns.to_string() }))? && !g.quiet {
                println!("created namespace {ns}");
            }
        }
        NamespaceCommand::List { max_depth } => {
            let from = repo::namespace(g)?;
            let list = store.list_namespaces(&from, max_depth)?;
            let rows: Vec<_> = list
                .iter()
                .map(|ns| json!({ "ns": ns.to_string(), "depth": ns.depth() }))
                .collect();
            if !print_json(g.output_format, &rows)? {
                for ns in &list {
                    println!(
                        "{}",
                        if ns.is_root() { "/" } else { "" }.to_owned() + &ns.to_string()
                    );
                }
            }
        }
        NamespaceCommand::Remove {
            namespace,
            delete_groups,
        } => {
            let ns: BackupNamespace = namespace.parse()?;
            store.remove_namespace(&ns, delete_groups)?;
            if !print_json(g.output_format, &json!({ "removed": ns.to_string() }))? && !g.quiet {
                println!("removed namespace {ns}");
            }
        }
    }
    Ok(OK)
}
