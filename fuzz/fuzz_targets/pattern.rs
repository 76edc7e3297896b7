//! `.pxarexclude` files come from the trees being backed up: parsing and matching must never
//! panic or take time out of proportion (the glob matcher keeps a set of states, no
//! backtracking). Input: a `.pxarexclude` text, a 0 byte, then paths separated by newlines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stowage_format::PatternList;

fuzz_target!(|data: &[u8]| {
    let (text, paths) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"/a/b/c"[..]),
    };
    let mut list = PatternList::new();
    let _errors = list.add_exclude_file(b"/dir", text);
    for path in paths.split(|&b| b == b'\n').take(64) {
        let _ = list.matches(path, false);
        let _ = list.matches(path, true);
    }
});
