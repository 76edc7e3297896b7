//! A small glob matcher over byte paths, the core of [`Pattern`](crate::pattern::Pattern) (which
//! adds PBS's suffix matching, `!` and trailing `/`) and of profile path globs.
//!
//! Syntax, matched against the whole `/`-separated path:
//! - `?` one character other than `/`; `*` any run of characters without `/`;
//! - `**` as a whole component: `**/` any number of leading directories (none included), a final
//!   `/**` everything below, `**` alone everything; elsewhere `**` is `*`;
//! - `[abc]`, `[a-z]`, `[!x]` (or `[^x]`): one character other than `/` in (or not in) the set;
//!   a `]` first in the set is literal;
//! - `\x` the character `x` literally.
//!
//! Paths and patterns are bytes: valid UTF-8 sequences count as one character, any other byte as
//! one character of its own. Matching keeps a set of pattern positions (no backtracking), so it
//! takes time proportional to path length times pattern length.

use super::lossy;
use crate::pattern::PatternError;

/// Code given to a byte that does not start valid UTF-8, past every Unicode scalar value.
const RAW_BYTE: u32 = 0x11_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One character.
    Char(u32),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `**/` at a component start: zero or more whole components, each with its `/`.
    AnyDirs,
    /// Final `**` at a component start: anything.
    AnyAll,
    /// `[...]`: inclusive ranges of characters.
    Class {
        negated: bool,
        ranges: Vec<(u32, u32)>,
    },
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

/// The character at the start of `bytes` and its length in bytes.
fn next_char(bytes: &[u8]) -> Option<(u32, usize)> {
    let first = *bytes.first()?;
    let width = match first {
        0x00..=0x7f => return Some((u32::from(first), 1)),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Some((RAW_BYTE + u32::from(first), 1)),
    };
    match bytes
        .get(..width)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.chars().next())
    {
        Some(c) => Some((u32::from(c), width)),
        None => Some((RAW_BYTE + u32::from(first), 1)),
    }
}

const SLASH: u32 = b'/' as u32;

fn set(states: &mut [bool], at: usize) {
    if let Some(s) = states.get_mut(at) {
        *s = true;
    }
}

impl Glob {
    /// Compiles `pattern`; an unclosed `[` or a trailing lone `\` is an error.
    pub fn new(pattern: &[u8]) -> Result<Glob, PatternError> {
        let bad = |reason| PatternError {
            pattern: lossy(pattern),
            reason,
        };
        let rest = |i: usize| pattern.get(i..).unwrap_or_default();
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some((c, width)) = next_char(rest(i)) {
            let component_start = i == 0 || pattern.get(i - 1) == Some(&b'/');
            let token = match char::from_u32(c) {
                Some('*') if component_start && pattern.get(i + 1) == Some(&b'*') => {
                    match pattern.get(i + 2) {
                        None => {
                            i += 2;
                            Token::AnyAll
                        }
                        Some(b'/') => {
                            i += 3;
                            Token::AnyDirs
                        }
                        Some(_) => {
                            i += 1;
                            Token::Star
                        }
                    }
                }
                Some('*') => {
                    i += 1;
                    Token::Star
                }
                Some('?') => {
                    i += 1;
                    Token::Any
                }
                Some('\\') => {
                    let (c, w) = next_char(rest(i + 1)).ok_or(bad("ends with a lone '\\'"))?;
                    i += 1 + w;
                    Token::Char(c)
                }
                Some('[') => {
                    let (token, end) = parse_class(pattern, i + 1).ok_or(bad("unclosed '['"))?;
                    i = end;
                    token
                }
                _ => {
                    i += width;
                    Token::Char(c)
                }
            };
            // `**` that is not a whole component, or `**` after `*`, is just `*`.
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the whole of `path` matches.
    ///
    /// State `s` means "before token `s`"; `inner(s)` = `n + 1 + s` means "inside the
    /// components of the `**/` at `s`", which may only be left after a `/`.
    pub fn is_match(&self, path: &[u8]) -> bool {
        let n = self.tokens.len();
        let inner = |s: usize| n + 1 + s;
        let mut states = vec![false; 2 * n + 1];
        let mut next = vec![false; 2 * n + 1];
        set(&mut states, 0);
        self.close(&mut states);
        let mut i = 0;
        while let Some((c, width)) = next_char(path.get(i..).unwrap_or_default()) {
            next.fill(false);
            for (s, token) in self.tokens.iter().enumerate() {
                let active = states.get(s) == Some(&true);
                if *token == Token::AnyDirs && (active || states.get(inner(s)) == Some(&true)) {
                    set(&mut next, inner(s));
                    if c == SLASH {
                        set(&mut next, s + 1);
                    }
                    continue;
                }
                if !active {
                    continue;
                }
                match token {
                    Token::Char(x) if c == *x => set(&mut next, s + 1),
                    Token::Any if c != SLASH => set(&mut next, s + 1),
                    Token::Class { negated, ranges }
                        if c != SLASH
                            && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated =>
                    {
                        set(&mut next, s + 1)
                    }
                    Token::Star if c != SLASH => set(&mut next, s),
                    Token::AnyAll => set(&mut next, s),
                    _ => {}
                }
            }
            self.close(&mut next);
            std::mem::swap(&mut states, &mut next);
            if !states.contains(&true) {
                return false;
            }
            i += width;
        }
        states.get(n) == Some(&true)
    }

    /// Adds the positions reachable without consuming a character.
    fn close(&self, states: &mut [bool]) {
        for (s, token) in self.tokens.iter().enumerate() {
            if states.get(s) == Some(&true)
                && matches!(token, Token::Star | Token::AnyAll | Token::AnyDirs)
            {
                set(states, s + 1);
            }
        }
    }
}

/// Parses a class whose contents start at `i` (after `[`): the token and the index after `]`.
fn parse_class(pattern: &[u8], mut i: usize) -> Option<(Token, usize)> {
    let rest = |i: usize| pattern.get(i..).unwrap_or_default();
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let (mut lo, mut w) = next_char(rest(i))?;
        if lo == u32::from(b']') && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        if lo == u32::from(b'\\') {
            let (c, cw) = next_char(rest(i + w))?;
            (lo, w) = (c, w + cw);
        }
        i += w;
        first = false;
        let mut hi = lo;
        if pattern.get(i) == Some(&b'-') && !matches!(pattern.get(i + 1), Some(b']') | None) {
            let (mut c, mut w) = next_char(rest(i + 1))?;
            if c == u32::from(b'\\') {
                let (e, ew) = next_char(rest(i + 1 + w))?;
                (c, w) = (e, w + ew);
            }
            hi = c;
            i += 1 + w;
        }
        ranges.push((lo, hi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern.as_bytes())
            .unwrap()
            .is_match(path.as_bytes())
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("a/b", "a/b"));
        assert!(!m("a/b", "a/bc"));
        assert!(!m("a/b", "a"));
        assert!(m("", ""));
        assert!(m("a/*.conf", "a/x.conf"));
        assert!(m("a/*.conf", "a/.conf"));
        assert!(!m("a/*.conf", "a/b/x.conf"));
        assert!(!m("*", "a/b"));
        assert!(m("a/?", "a/x"));
        assert!(!m("a/?", "a/"));
        assert!(!m("a?b", "a/b"));
        assert!(m("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn double_star() {
        assert!(m("**", "a"));
        assert!(m("**", "a/b/c"));
        assert!(m("**/hostname", "hostname"));
        assert!(m("**/hostname", "r/etc/hostname"));
        assert!(!m("**/hostname", "r/etc/myhostname"));
        assert!(m("r/**", "r/etc"));
        assert!(m("r/**", "r/etc/hostname"));
        assert!(!m("r/**", "r"));
        assert!(!m("r/**", "rx/etc"));
        assert!(m("r/**/hostname", "r/hostname"));
        assert!(m("r/**/hostname", "r/a/b/hostname"));
        assert!(!m("r/**/hostname", "ra/hostname"));
        assert!(m("r/**/*.d/*", "r/etc/apt/sources.list.d/x"));
        // Not a whole component: plain `*`.
        assert!(m("r/a**", "r/abc"));
        assert!(!m("r/a**", "r/a/b"));
        assert!(m("r/**x", "r/ax"));
        assert!(!m("r/**x", "r/a/x"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(!m("[!a-c]x", "ax"));
        assert!(m("[^a]", "b"));
        assert!(!m("a[!x]b", "a/b"), "a class never matches '/'");
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[\\]x]", "]"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("\\[a]", "[a]"));
        assert!(Glob::new(b"[abc").is_err());
        assert!(Glob::new(b"abc\\").is_err());
    }

    #[test]
    fn bytes_and_utf8() {
        assert!(m("?", "é"), "one UTF-8 character is one '?'");
        assert!(m("[à-ü]", "é"));
        let g = Glob::new(b"a?b").unwrap();
        assert!(g.is_match(b"a\xffb"), "a non-UTF-8 byte is one character");
        assert!(!g.is_match(b"a\xff\xfeb"));
        assert!(Glob::new(b"a\xff*").unwrap().is_match(b"a\xffzz"));
        assert!(Glob::new(b"[\x80-\xff]").unwrap().is_match(b"\x90"));
    }
}
