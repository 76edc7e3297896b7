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

/// A file name or path as `ls` shows it on a terminal (its shell-escape quoting): as it is when
/// every character is harmless, else in single quotes, with each control character or byte
/// that is not UTF-8 written as `$'\n'` or `$'\377'` outside them. Pasted into a shell, the
/// result names the same file; a newline in a name can no longer start a line of its own.
pub fn shell_quoted(name: &[u8]) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "%+,-./:=@_".contains(c);
    let text = String::from_utf8_lossy(name);
    let valid = matches!(text, std::borrow::Cow::Borrowed(_));
    if valid
        && !name.is_empty()
        && text
            .chars()
            .all(|c| plain(c) || (!c.is_ascii() && !c.is_control()))
    {
        return text.into_owned();
    }
    let mut out = String::new();
    let mut quoted = false; // inside '...'
    let mut rest = name;
    while !rest.is_empty() {
        let (c, len) = match rest[0] {
            b if b < 0x80 => (Some(char::from(b)), 1),
            _ => first_char(rest),
        };
        match c {
            Some(c) if !c.is_control() => {
                if !quoted {
                    out.push('\'');
                    quoted = true;
                }
                match c {
                    '\'' => out.push_str("'\\''"),
                    c => out.push(c),
                }
            }
            _ => {
                if quoted {
                    out.push('\'');
                    quoted = false;
                }
                let escaped = match c {
                    Some('\n') => "\\n".to_string(),
                    Some('\t') => "\\t".to_string(),
                    Some('\r') => "\\r".to_string(),
                    _ => rest[..len].iter().map(|b| format!("\\{b:03o}")).collect(),
                };
                out.push_str(&format!("$'{escaped}'"));
            }
        }
        rest = &rest[len..];
    }
    if quoted {
        out.push('\'');
    }
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// The first character of `bytes` (which starts with a byte of 0x80 or more) and its length;
/// `None` and 1 for a byte that does not start valid UTF-8.
fn first_char(bytes: &[u8]) -> (Option<char>, usize) {
    for len in 2..=4.min(bytes.len()) {
        if let Ok(s) = std::str::from_utf8(&bytes[..len]) {
            return (s.chars().next(), len);
        }
    }
    (None, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_as_ls_does() {
        assert_eq!(
            shell_quoted(b"root.pxar.didx/etc/hosts"),
            "root.pxar.didx/etc/hosts"
        );
        assert_eq!(shell_quoted("dir/é".as_bytes()), "dir/é");
        assert_eq!(shell_quoted(b"a b"), "'a b'");
        assert_eq!(shell_quoted(b"it's"), "'it'\\''s'");
        assert_eq!(shell_quoted(b"a\nb"), "'a'$'\\n''b'");
        assert_eq!(shell_quoted(b"\nx"), "$'\\n''x'");
        assert_eq!(shell_quoted(b"x\xff"), "'x'$'\\377'");
        assert_eq!(shell_quoted(b"\x01"), "$'\\001'");
        assert_eq!(shell_quoted(b""), "''");
        assert!(!shell_quoted(b"a\nb\rc").contains('\n'));
    }

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
