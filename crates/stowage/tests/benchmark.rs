//! `stowage benchmark`: every measurement is reported with a positive figure, in JSON and in a
//! text table with PBS's row labels; a bad --seconds is a usage error.

mod common;

use common::*;

const ROWS: [&str; 9] = [
    "sha256",
    "zstd_compress",
    "zstd_decompress",
    "chunk_verify",
    "aes256_gcm",
    "zstd_compress_incompressible",
    "zstd_decompress_incompressible",
    "gzip",
    "xz",
];

/// Rows PBS has, with its reference values.
const PBS_ROWS: [(&str, f64); 5] = [
    ("sha256", 2022.0),
    ("zstd_compress", 752.0),
    ("zstd_decompress", 1198.0),
    ("chunk_verify", 758.0),
    ("aes256_gcm", 3645.0),
];

fn run(args: &[&str]) -> Run {
    let out = stowage().args(args).output().expect("run stowage");
    Run::from_output(args.iter().map(|a| a.to_string()).collect(), out)
}

#[test]
fn json_reports_every_measurement() {
    let run = run(&[
        "--output-format",
        "json",
        "--threads",
        "2",
        "benchmark",
        "--seconds",
        "0.05",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON output");
    assert_eq!(report["threads"], 2);
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), ROWS.len(), "{report}");
    for name in ROWS {
        let row = results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {report}"));
        for key in ["single_mbps", "all_mbps"] {
            let v = row[key].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "{name}.{key} = {v}: {report}");
        }
        match PBS_ROWS.iter().find(|(n, _)| *n == name) {
            Some((_, reference)) => {
                assert_eq!(row["reference_mbps"].as_f64(), Some(*reference), "{row}");
                let pct = row["percent_of_reference"].as_f64().unwrap();
                let expect = row["single_mbps"].as_f64().unwrap() * 100.0 / reference;
                assert!(pct > 0.0 && (pct - expect).abs() < 0.1, "{row}");
            }
            None => {
                assert!(row["reference_mbps"].is_null(), "{row}");
                assert!(row["percent_of_reference"].is_null(), "{row}");
            }
        }
    }
    assert_eq!(report["not_tested"][0]["name"], "tls_upload", "{report}");
}

#[test]
fn text_has_pbs_labels_and_cells() {
    let run = run(&["--threads", "1", "benchmark", "--seconds", "0.01"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.stdout_text();
    let tls = text
        .lines()
        .find(|l| l.starts_with("TLS (maximal backup upload speed)"))
        .unwrap_or_else(|| panic!("no TLS row:\n{text}"));
    assert!(tls.ends_with("not tested (no server yet)"), "{tls}");
    for label in [
        "SHA256 checksum computation speed",
        "ZStd level 1 compression speed",
        "ZStd level 1 decompression speed",
        "Chunk verification speed",
        "AES256 GCM encryption speed",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{label}  ")))
            .unwrap_or_else(|| panic!("no row {label:?}:\n{text}"));
        // PBS's cell: "<MB/s, 2 decimals> MB/s (<percent, 0 decimals>%)".
        let cell = line[label.len()..].trim_start();
        let (speed, rest) = cell.split_once(" MB/s (").expect(line);
        let (_, decimals) = speed.split_once('.').expect(line);
        assert_eq!(decimals.len(), 2, "{line}");
        assert!(speed.parse::<f64>().unwrap() > 0.0, "{line}");
        let (pct, _) = rest.split_once("%)").expect(line);
        pct.parse::<u64>().expect(line);
    }
    for label in [
        "gzip level 6 compression speed",
        "xz preset 6 compression speed",
    ] {
        assert!(text.contains(label), "{label}:\n{text}");
    }
}

#[test]
fn bad_seconds_is_a_usage_error() {
    for bad in ["0", "-1", "abc", "NaN", "1e9"] {
        let run = run(&["benchmark", "--seconds", bad]);
        assert_eq!(run.code, 2, "--seconds {bad}: {}", run.stderr);
    }
}
