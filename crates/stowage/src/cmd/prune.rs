use anyhow::Result;
use serde::Serialize;
use stowage_datastore::{PruneMark, PruneOptions};
use stowage_types::BackupGroup;

use crate::cli::{GlobalOpts, PruneArgs};
use crate::exit::{fail, OK};
use crate::output::print_json;
use crate::repo;

const NO_SELECTION: &str = "No prune selection - keeping all snapshots.";

/// One snapshot in `--output-format json`: PBS's prune result object, plus the mark and rule.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct PruneRow {
    backup_type: String,
    backup_id: String,
    backup_time: i64,
    keep: bool,
    protected: bool,
    /// keep, remove, protected or keep-partial.
    mark: &'static str,
    /// The rule that kept the snapshot: last, hourly, daily, weekly, monthly or yearly.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    /// Why removing it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(g: &GlobalOpts, args: PruneArgs) -> Result<i32> {
    let group: BackupGroup = args.group.parse()?;
    let options = PruneOptions {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
    };
    let store = repo::open(g)?;
    let items = store.prune(&group, &options, args.dry_run)?;
    let keep_all = !options.keeps_something();

    let rows: Vec<PruneRow> = items
        .iter()
        .map(|item| PruneRow {
            backup_type: group.ty.to_string(),
            backup_id: group.id().to_string(),
            backup_time: item.snapshot.time.epoch(),
            keep: item.mark.keep(),
            protected: item.mark.protected(),
            mark: item.mark.as_str(),
            rule: item.mark.rule().map(|r| r.as_str()),
            error: item.error.as_ref().map(|e| e.to_string()),
        })
        .collect();
    let kept = items.iter().filter(|i| i.mark.keep()).count();
    let to_remove = items.len() - kept;
    let failed: Vec<_> = items
        .iter()
        .filter_map(|i| i.error.as_ref().map(|e| (&i.snapshot, e)))
        .collect();

    if keep_all {
        // On stderr with JSON output, so stdout stays one JSON document.
        if g.output_format == crate::cli::OutputFormat::Text {
            println!("{NO_SELECTION}");
        } else {
            eprintln!("{NO_SELECTION}");
        }
    }
    if !print_json(g.output_format, &rows)? {
        for item in &items {
            match (item.mark, item.mark.rule()) {
                (PruneMark::Keep(_), Some(rule)) => {
                    println!("{} keep ({rule})", item.snapshot)
                }
                (mark, _) => println!("{} {mark}", item.snapshot),
            }
        }
        if args.dry_run {
            println!("{kept} kept, would remove {to_remove}");
        } else if failed.is_empty() {
            println!("{kept} kept, {to_remove} removed");
        } else {
            println!(
                "{kept} kept, {} removed, {} could not be removed",
                to_remove - failed.len(),
                failed.len()
            );
        }
    }
    let Some((_, first)) = failed.first() else {
        return Ok(OK);
    };
    for (snapshot, error) in &failed {
        eprintln!("error: cannot remove {snapshot}: {error}");
    }
    Err(fail(
        first.class(),
        format!(
            "prune of {group}: {} of {to_remove} snapshots could not be removed",
            failed.len()
        ),
    ))
}
