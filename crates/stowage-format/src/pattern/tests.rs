use super::*;
use proptest::prelude::*;

use MatchType::{Exclude, Include};

/// Whether `pattern` (an include pattern) matches the file or directory at `path`.
fn m(pattern: &str, path: &str, is_dir: bool) -> bool {
    Pattern::parse(pattern.as_bytes(), Include)
        .unwrap()
        .matches(path.as_bytes(), is_dir)
}

fn file(pattern: &str, path: &str) -> bool {
    m(pattern, path, false)
}

fn list(patterns: &[&str], ty: MatchType) -> PatternList {
    let mut l = PatternList::new();
    for p in patterns {
        l.push(Pattern::parse(p.as_bytes(), ty).unwrap());
    }
    l
}

#[test]
fn unanchored_patterns_match_any_complete_suffix() {
    for p in [
        "baz",
        "bar/baz",
        "foo/bar/baz",
        "/foo/bar/baz",
        "b*z",
        "*/baz",
        "*/*/baz",
    ] {
        assert!(file(p, "/foo/bar/baz"), "{p}");
    }
    // Only complete components: neither a part of a name nor a prefix of the path.
    for p in [
        "bar",
        "ar/baz",
        "az",
        "foo",
        "foo/bar",
        "/bar/baz",
        "/baz",
        "o/bar/baz",
    ] {
        assert!(!file(p, "/foo/bar/baz"), "{p}");
    }
    assert!(!file("bar", "/foo/barbaz"));
    assert!(
        !file("bar", "/foo/bar/baz"),
        "a directory above is no match"
    );
    assert!(file("bar", "/foo/bar"));
    assert!(file("hosts", "/hosts"));
    assert!(file("hosts", "/etc/hosts"));
    assert!(file("hosts", "/a/b/c/d/hosts"));
}

#[test]
fn a_slash_inside_does_not_anchor() {
    assert!(file("var/cache", "/var/cache"));
    assert!(file("var/cache", "/x/var/cache"));
    assert!(file("var/cache", "/x/y/var/cache"));
    assert!(!file("var/cache", "/var/cache/apt"));
    assert!(!file("var/cache", "/xvar/cache"));
    assert!(file("arch/x86", "/linux/arch/x86"));
}

#[test]
fn leading_slash_matches_the_whole_path_only() {
    assert!(file("/tmp", "/tmp"));
    assert!(!file("/tmp", "/home/tmp"));
    assert!(!file("/tmp", "/tmp/x"));
    assert!(file("/linux/README", "/linux/README"));
    assert!(!file("/linux/README", "/linux/Documentation/linux/README"));
    assert!(file("/etc/*.conf", "/etc/a.conf"));
    assert!(!file("/etc/*.conf", "/etc/x/a.conf"));
}

#[test]
fn star_and_question_mark_stay_in_one_component() {
    // `*/Kbuild` matches through a suffix `x86/Kbuild`, and at the root through the whole path
    // `/Kbuild` (`*` matches the empty name before the first `/`), as in PBS.
    assert!(file("*/Kbuild", "/linux/arch/x86/Kbuild"));
    assert!(file("*/Kbuild", "/linux/Kbuild"));
    assert!(file("*/Kbuild", "/Kbuild"));
    assert!(file("arch/*/Kbuild", "/linux/arch/x86/Kbuild"));
    assert!(!file("arch/*/Kbuild", "/linux/arch/arm/boot/Kbuild"));
    assert!(file("*.o", "/a/b/c.o"));
    assert!(!file("a*.o", "/a/b.o"), "* never crosses a /");
    assert!(file("?.o", "/x/c.o"));
    assert!(!file("??.o", "/x/c.o"));
    assert!(file("[a-c].o", "/x/b.o"));
    assert!(!file("[!a-c].o", "/x/b.o"));
    assert!(file("\\*.o", "/x/*.o"));
    assert!(!file("\\*.o", "/x/a.o"));
}

#[test]
fn double_star_spans_directories() {
    assert!(file("**/x", "/x"));
    assert!(file("**/x", "/a/b/x"));
    assert!(file("a/**/b", "/a/b"));
    assert!(file("a/**/b", "/a/1/2/b"));
    assert!(file("a/**/b", "/z/a/1/b"));
    assert!(!file("a/**/b", "/a/1/2/c"));
    assert!(file("a/**", "/a/x"));
    assert!(file("a/**", "/q/a/x/y"));
    assert!(!file("a/**", "/a"));
    assert!(file("/a/**", "/a/x/y"));
    assert!(!file("/a/**", "/b/a/x"));
    assert!(file("**", "/anything/at/all"));
}

#[test]
fn bang_inverts_and_the_last_match_wins() {
    let p = Pattern::parse(b"!*.bak", Include).unwrap();
    assert_eq!(p.match_type(), Exclude);
    assert!(p.matches(b"/etc/x.bak", false));
    let p = Pattern::parse(b"!keep.o", Exclude).unwrap();
    assert_eq!(p.match_type(), Include);

    let l = list(&["/etc", "!*.bak", "/etc/keep.bak"], Include);
    assert_eq!(l.matches(b"/etc", true), Some(Include));
    assert_eq!(l.matches(b"/etc/x.bak", false), Some(Exclude));
    assert_eq!(l.matches(b"/etc/keep.bak", false), Some(Include));
    assert_eq!(l.matches(b"/etc/hosts", false), None);
    assert_eq!(l.matches(b"/home/y.bak", false), Some(Exclude));

    // Order matters: the same patterns the other way round.
    let l = list(&["*.o", "!keep.o"], Exclude);
    assert_eq!(l.matches(b"/a/keep.o", false), Some(Include));
    let l = list(&["!keep.o", "*.o"], Exclude);
    assert_eq!(l.matches(b"/a/keep.o", false), Some(Exclude));
    assert_eq!(PatternList::new().matches(b"/a", false), None);
}

#[test]
fn trailing_slashes_match_directories_only() {
    let p = Pattern::parse(b"hosts/", Include).unwrap();
    assert!(p.dir_only());
    assert!(p.matches(b"/etc/hosts", true));
    assert!(!p.matches(b"/etc/hosts", false));
    let p = Pattern::parse(b"cache///", Include).unwrap();
    assert!(p.matches(b"/var/cache", true));
    assert!(!p.matches(b"/var/cache", false));
    assert!(!Pattern::parse(b"hosts", Include).unwrap().dir_only());
    assert!(m("/etc/", "/etc", true));
    assert!(!m("/etc/", "/x/etc", true));
}

#[test]
fn a_pattern_of_slashes_is_the_root_directory() {
    for p in ["/", "//", "!/"] {
        let p = Pattern::parse(p.as_bytes(), Include).unwrap();
        assert!(p.dir_only());
        assert!(p.matches(b"/", true));
        assert!(!p.matches(b"/", false));
        assert!(!p.matches(b"/etc", true));
    }
    assert_eq!(
        Pattern::parse(b"!/", Include).unwrap().match_type(),
        Exclude
    );
}

#[test]
fn invalid_patterns_name_themselves() {
    let e = Pattern::parse(b"[abc", Exclude).unwrap_err();
    assert_eq!(e.pattern, "[abc");
    assert!(e.to_string().contains("'[abc'"), "{e}");
    assert!(e.to_string().contains("unclosed"), "{e}");
    assert!(Pattern::parse(b"a\\", Include).is_err());
    assert!(Pattern::parse(b"", Include).is_err());
    assert_eq!(Pattern::parse(b"!", Include).unwrap_err().pattern, "!");
    let e = Pattern::parse_in(b"/home/u", b"/x[", Exclude).unwrap_err();
    assert_eq!(e.pattern, "/x[");
}

#[test]
fn parse_in_anchors_leading_slash_patterns_to_the_directory() {
    let p = |line: &str| Pattern::parse_in(b"/home/u", line.as_bytes(), Exclude).unwrap();
    assert!(p("/build").matches(b"/home/u/build", true));
    assert!(!p("/build").matches(b"/home/u/src/build", true));
    assert!(!p("/build").matches(b"/build", true));
    assert_eq!(p("!/build").match_type(), Include);
    assert!(p("!/build").matches(b"/home/u/build", false));
    assert!(p("/out/").matches(b"/home/u/out", true));
    assert!(!p("/out/").matches(b"/home/u/out", false));
    // Unanchored lines are suffix patterns, as anywhere.
    assert!(p("*.o").matches(b"/home/u/a/b.o", false));
    assert!(p("src/build").matches(b"/home/u/x/src/build", true));
    // The root directory, however it is written.
    for root in [&b""[..], b"/"] {
        let p = Pattern::parse_in(root, b"/build", Exclude).unwrap();
        assert!(p.matches(b"/build", true));
        assert!(!p.matches(b"/a/build", true));
    }
    // A directory given without its leading slash, and glob characters in its name.
    let p = Pattern::parse_in(b"we*rd/", b"/x", Exclude).unwrap();
    assert!(p.matches(b"/we*rd/x", false));
    assert!(!p.matches(b"/weXrd/x", false));
}

#[test]
fn exclude_files_skip_blanks_and_comments_and_keep_good_lines() {
    let mut l = PatternList::new();
    let text = b"# comment\n\n   \n  *.tmp \r\n/build\n!keep.tmp\n\t!/out\nbad[\n#x\n";
    let errors = l.add_exclude_file(b"/p", text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].pattern, "bad[");
    assert_eq!(l.len(), 4);
    assert_eq!(l.matches(b"/p/a/x.tmp", false), Some(Exclude));
    assert_eq!(l.matches(b"/p/a/keep.tmp", false), Some(Include));
    assert_eq!(l.matches(b"/p/build", true), Some(Exclude));
    assert_eq!(l.matches(b"/p/a/build", true), None);
    assert_eq!(l.matches(b"/p/out", true), Some(Include));
    assert_eq!(l.matches(b"/p/#x", false), None);
    l.truncate(1);
    assert_eq!(l.len(), 1);
    assert_eq!(l.matches(b"/p/build", true), None);
}

/// The definition, as PBS writes it: any complete suffix after a `/`, or the whole path.
fn naive(glob: &Glob, path: &[u8]) -> bool {
    let suffixes = path
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| &path[i + 1..]);
    suffixes.chain([path]).any(|s| glob.is_match(s))
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "ab", "*", "?", "**", "[ab]", "/"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// One pass over the whole path gives what trying every suffix gives.
    #[test]
    fn one_pass_equals_trying_every_suffix(
        pattern in prop::collection::vec(piece(), 1..5),
        path in prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "ba", "c"]), 0..5),
    ) {
        let pattern = pattern.concat();
        prop_assume!(!pattern.ends_with('/'));
        let path: Vec<u8> = path.iter().flat_map(|c| [b'/'].into_iter().chain(c.bytes())).collect();
        let path = if path.is_empty() { b"/".to_vec() } else { path };
        let glob = Glob::new(pattern.as_bytes()).unwrap();
        let p = Pattern::parse(pattern.as_bytes(), Include).unwrap();
        prop_assert_eq!(
            p.matches(&path, false),
            naive(&glob, &path),
            "{} against {}", pattern, String::from_utf8_lossy(&path)
        );
    }
}
