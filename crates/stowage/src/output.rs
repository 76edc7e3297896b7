//! Printing results: text for people, JSON for scripts.

use serde::Serialize;

use crate::cli::OutputFormat;

/// Prints `value` as JSON in the chosen style; false for text output (the caller prints text).
pub fn print_json<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<bool> {
    let text = match format {
        OutputFormat::Text => return Ok(false),
        OutputFormat::Json => serde_json::to_string(value)?,
        OutputFormat::JsonPretty => serde_json::to_string_pretty(value)?,
    };
    println!("{text}");
    Ok(true)
}

/// Binary units as PBS prints them: `1.5 GiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text} {}", UNITS[unit])
    }
}

/// Bytes per second over `secs`, in binary units.
pub fn rate(n: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_pbs() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(4 << 30), "4 GiB");
        assert_eq!(bytes(1_234_567), "1.177 MiB");
    }
}
