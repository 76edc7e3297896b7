//! `stowage benchmark`: how fast this machine hashes, compresses, verifies and encrypts, on one
//! thread and on all of them, next to the reference values of `proxmox-backup-client benchmark`.

mod work;

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{BenchmarkArgs, GlobalOpts};
use crate::exit::OK;
use crate::output::print_json;

/// The row PBS shows first; there is no server to upload to yet.
const TLS_LABEL: &str = "TLS (maximal backup upload speed)";
const TLS_REFERENCE: f64 = 1235.0;
const NOT_TESTED: &str = "not tested (no server yet)";

#[derive(Serialize)]
struct Report {
    threads: usize,
    seconds: f64,
    results: Vec<Row>,
    not_tested: Vec<Skipped>,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    label: &'static str,
    /// MB/s (10^6 bytes per second) on one thread.
    single_mbps: f64,
    /// MB/s summed over `threads` threads running at once.
    all_mbps: f64,
    /// PBS's reference value (single-threaded), for the rows PBS has.
    reference_mbps: Option<f64>,
    /// `single_mbps` as a percentage of the reference.
    percent_of_reference: Option<f64>,
}

#[derive(Serialize)]
struct Skipped {
    name: &'static str,
    label: &'static str,
    reference_mbps: f64,
    reason: &'static str,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// PBS's cell: `<MB/s, 2 decimals> MB/s (<percent of reference, 0 decimals>%)`.
fn pbs_cell(mbps: f64, reference: f64) -> String {
    format!("{mbps:.2} MB/s ({:.0}%)", mbps * 100.0 / reference)
}

fn threads_text(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

pub fn run(g: &GlobalOpts, args: BenchmarkArgs) -> Result<i32> {
    let threads = g.worker_threads();
    let duration = Duration::from_secs_f64(args.seconds);
    let data = work::TestData::new()?;
    let mut results = Vec::new();
    for w in work::workloads(&data) {
        let single = work::measure(&w, 1, duration)?;
        let all = if threads == 1 {
            single
        } else {
            work::measure(&w, threads, duration)?
        };
        if !g.quiet {
            eprintln!(
                "{}: {single:.2} MB/s (1 thread), {all:.2} MB/s ({})",
                w.label,
                threads_text(threads)
            );
        }
        results.push(Row {
            name: w.name,
            label: w.label,
            single_mbps: round2(single),
            all_mbps: round2(all),
            reference_mbps: w.reference,
            percent_of_reference: w.reference.map(|r| round2(single * 100.0 / r)),
        });
    }
    let report = Report {
        threads,
        seconds: args.seconds,
        results,
        not_tested: vec![Skipped {
            name: "tls_upload",
            label: TLS_LABEL,
            reference_mbps: TLS_REFERENCE,
            reason: "no server yet",
        }],
    };
    if print_json(g.output_format, &report)? {
        return Ok(OK);
    }
    print_table(&report, g.quiet);
    Ok(OK)
}

fn print_table(report: &Report, quiet: bool) {
    let width = report
        .results
        .iter()
        .map(|r| r.label.len())
        .chain([TLS_LABEL.len(), "Name".len()])
        .max()
        .unwrap_or(0);
    let single_head = "1 thread".to_string();
    let all_head = format!("all ({})", threads_text(report.threads));
    let cells: Vec<(String, String)> = report
        .results
        .iter()
        .map(|r| {
            let single = match r.reference_mbps {
                Some(reference) => pbs_cell(r.single_mbps, reference),
                None => format!("{:.2} MB/s", r.single_mbps),
            };
            (single, format!("{:.2} MB/s", r.all_mbps))
        })
        .collect();
    let single_width = cells
        .iter()
        .map(|c| c.0.len())
        .chain([single_head.len()])
        .max()
        .unwrap_or(0);
    println!(
        "{:<width$}  {single_head:<single_width$}  {all_head}",
        "Name"
    );
    println!("{TLS_LABEL:<width$}  {NOT_TESTED}");
    for (r, (single, all)) in report.results.iter().zip(cells) {
        println!("{:<width$}  {single:<single_width$}  {all}", r.label);
    }
    if !quiet {
        println!();
        println!(
            "MB = 10^6 bytes. Percentages compare the 1-thread figure with PBS's reference \
             values (AMD Ryzen 7 2700X, single-threaded)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_is_formatted_like_pbs() {
        assert_eq!(pbs_cell(1011.0, 2022.0), "1011.00 MB/s (50%)");
        assert_eq!(pbs_cell(3862.456, 3645.0), "3862.46 MB/s (106%)");
    }
}
