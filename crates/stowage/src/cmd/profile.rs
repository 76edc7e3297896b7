//! `stowage profile list` and `stowage profile show NAME`: the host profiles `backup --profile`
//! can use.

use anyhow::Result;
use serde_json::json;

use crate::cli::{GlobalOpts, OutputFormat, ProfileCommand};
use crate::exit::OK;
use crate::output::print_json;
use crate::profile;

pub fn run(g: &GlobalOpts, command: ProfileCommand) -> Result<i32> {
    match command {
        ProfileCommand::List => list(g),
        ProfileCommand::Show { name } => show(g, &name),
    }
}

fn list(g: &GlobalOpts) -> Result<i32> {
    let listed = profile::list();
    let rows: Vec<_> = listed
        .iter()
        .map(|l| {
            let (description, error) = match &l.description {
                Ok(d) => (Some(d.as_str()), None),
                Err(e) => (None, Some(e.as_str())),
            };
            json!({
                "name": l.name,
                "origin": l.origin.to_string(),
                "description": description,
                "error": error,
            })
        })
        .collect();
    if print_json(g.output_format, &rows)? {
        return Ok(OK);
    }
    let width = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for l in &listed {
        let about = match &l.description {
            Ok(d) => d.clone(),
            Err(e) => format!("invalid: {e}"),
        };
        println!("{:<width$}  {}  {about}", l.name, l.origin);
    }
    Ok(OK)
}

/// Text output is the file itself, to copy and edit; JSON is the parsed profile.
fn show(g: &GlobalOpts, name: &str) -> Result<i32> {
    let profile = profile::load(name)?;
    if g.output_format == OutputFormat::Text {
        print!("{}", profile.text);
        if !profile.text.ends_with('\n') && !profile.text.is_empty() {
            println!();
        }
        return Ok(OK);
    }
    print_json(g.output_format, &profile.to_json())?;
    Ok(OK)
}
