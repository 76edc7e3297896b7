//! Golden bytes, round trips and corrupt catalogs for the writer and reader together.

use super::*;
use proptest::prelude::*;

#[test]
fn magic_is_sha256_prefix_of_its_name() {
    let digest = crate::sha256(b"Proxmox Backup Catalog file v1.0");
    assert_eq!(&digest.0[..8], &MAGIC);
    assert_eq!(hex::encode(MAGIC), "91fd60f9c46758d5");
}

/// root.pxar.didx/{etc/{hostname, localtime -> symlink}, old (mtime -300)}
fn golden_catalog() -> Vec<u8> {
    let mut w = CatalogWriter::new(Vec::new()).unwrap();
    w.start_directory(b"root.pxar.didx").unwrap();
    w.start_directory(b"etc").unwrap();
    w.add_file(b"hostname", 5, 1_700_000_000).unwrap();
    w.add_symlink(b"localtime").unwrap();
    w.end_directory().unwrap();
    w.add_file(b"old", 42, -300).unwrap();
    w.end_directory().unwrap();
    assert_eq!(
        w.position(),
        54,
        "the root table starts after the other tables"
    );
    w.finish().unwrap()
}

/// `find` as PBS's `catalog find`: suffixes of `/` + the catalog path (spec 13.7).
#[test]
fn find_matches_like_pbs_catalog_find() {
    let bytes = golden_catalog();
    let r = CatalogReader::new(&bytes).unwrap();
    let find = |p: &str| paths(r.find(p.as_bytes()).unwrap());
    // A name alone finds it at any depth; a complete suffix of the path finds it too.
    assert_eq!(find("hostname"), ["root.pxar.didx/etc/hostname"]);
    assert_eq!(find("etc/hostname"), ["root.pxar.didx/etc/hostname"]);
    assert_eq!(find("*/hostname"), ["root.pxar.didx/etc/hostname"]);
    assert!(find("stname").is_empty(), "only whole names");
    assert!(find("etc/host").is_empty());
    // A leading '/' compares the whole path, the archive's stored name first.
    assert_eq!(
        find("/root.pxar.didx/etc/hostname"),
        ["root.pxar.didx/etc/hostname"]
    );
    assert!(find("/etc/hostname").is_empty());
    assert!(find("/hostname").is_empty());
    // A trailing '/' finds directories only.
    assert_eq!(find("etc/"), ["root.pxar.didx/etc"]);
    assert!(find("old/").is_empty());
    assert_eq!(find("root.pxar.didx/"), ["root.pxar.didx"]);
    // '!' lists what the pattern does not match.
    assert_eq!(
        find("!etc/*"),
        ["root.pxar.didx", "root.pxar.didx/etc", "root.pxar.didx/old"]
    );
    assert_eq!(find("!etc/").len(), 4);
    assert!(find("!**").is_empty());
    assert!(matches!(r.find(b""), Err(CatalogError::BadPattern { .. })));
}

/// Bytes worked out by hand from spec 7.7.
#[test]
fn golden_bytes() {
    let expected = [
        // 0: magic
        "91fd60f9c46758d5",
        // 8: table of etc, L = 28, 2 entries
        "1c02",
        // f, name 8 "hostname", size 5, mtime 1_700_000_000 = 80 e2 cf aa 06
        "6608686f73746e616d650580e2cfaa06",
        // l, name 9 "localtime"
        "6c096c6f63616c74696d65",
        // 37: table of root.pxar.didx, L = 16, 2 entries
        "1002",
        // d, name 3 "etc", delta 37 - 8 = 29
        "64036574631d",
        // f, name 3 "old", size 42, mtime -300 = ac 82 00 (groups of 300 with high bits, then 00)
        "66036f6c642aac8200",
        // 54: root table, L = 18, 1 entry: d, name 14 "root.pxar.didx", delta 54 - 37 = 17
        "1201",
        "640e726f6f742e707861722e6469647811",
        // 73: root table offset 54, u64 LE
        "3600000000000000",
    ]
    .concat();
    let bytes = golden_catalog();
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(bytes.len(), 81);

    let r = CatalogReader::new(&bytes).unwrap();
    assert_eq!(r.root(), 54);
    let archives = r.archives().unwrap();
    assert_eq!(
        archives,
        vec![CatalogEntry {
            name: b"root.pxar.didx",
            kind: CatalogEntryKind::Directory { table: 37 },
        }]
    );
    let archive = r.read_dir(37).unwrap();
    assert_eq!(archive[0].kind, CatalogEntryKind::Directory { table: 8 });
    assert_eq!(
        archive[1].kind,
        CatalogEntryKind::File {
            size: 42,
            mtime: -300
        }
    );
    let etc = r.read_dir(8).unwrap();
    assert_eq!(etc[0].name, b"hostname");
    assert_eq!(
        etc[0].kind,
        CatalogEntryKind::File {
            size: 5,
            mtime: 1_700_000_000
        }
    );
    assert_eq!(etc[1].kind, CatalogEntryKind::Symlink);
}

fn paths<'a>(
    items: impl Iterator<Item = Result<(Vec<u8>, CatalogEntry<'a>), CatalogError>>,
) -> Vec<String> {
    items
        .map(|i| String::from_utf8(i.unwrap().0).unwrap())
        .collect()
}

#[test]
fn walk_lookup_and_find() {
    let bytes = golden_catalog();
    let r = CatalogReader::new(&bytes).unwrap();
    assert_eq!(
        paths(r.walk()),
        [
            "root.pxar.didx",
            "root.pxar.didx/etc",
            "root.pxar.didx/etc/hostname",
            "root.pxar.didx/etc/localtime",
            "root.pxar.didx/old",
        ]
    );
    assert_eq!(
        paths(r.walk_dir(8, b"root.pxar.didx/etc")),
        [
            "root.pxar.didx/etc/hostname",
            "root.pxar.didx/etc/localtime"
        ]
    );

    let root = r.lookup(b"").unwrap().unwrap();
    assert_eq!(root.table(), Some(54));
    assert_eq!(r.lookup(b"/").unwrap(), Some(root));
    let hostname = r.lookup(b"root.pxar.didx/etc/hostname").unwrap().unwrap();
    assert_eq!(hostname.name, b"hostname");
    assert!(matches!(
        hostname.kind,
        CatalogEntryKind::File { size: 5, .. }
    ));
    assert_eq!(
        r.lookup(b"/root.pxar.didx//etc/").unwrap().unwrap().table(),
        Some(8)
    );
    assert_eq!(r.lookup(b"root.pxar.didx/etc/nope").unwrap(), None);
    assert_eq!(
        r.lookup(b"root.pxar.didx/old/x").unwrap(),
        None,
        "a file has no children"
    );
    assert_eq!(r.lookup(b"other.pxar.didx").unwrap(), None);

    let find = |p: &str| paths(r.find(p.as_bytes()).unwrap());
    assert_eq!(find("**/hostname"), ["root.pxar.didx/etc/hostname"]);
    assert_eq!(
        find("/root.pxar.didx/*"),
        ["root.pxar.didx/etc", "root.pxar.didx/old"]
    );
    assert_eq!(
        find("*/etc/*"),
        [
            "root.pxar.didx/etc/hostname",
            "root.pxar.didx/etc/localtime"
        ]
    );
    assert_eq!(
        find("**/[h-l]o*"),
        [
            "root.pxar.didx/etc/hostname",
            "root.pxar.didx/etc/localtime"
        ]
    );
    assert_eq!(find("**/?ld"), ["root.pxar.didx/old"]);
    assert_eq!(find("**").len(), 5);
    assert!(find("nothing").is_empty());
    assert!(
        matches!(r.find(b"[a-"), Err(e @ CatalogError::BadPattern { .. }) if e.class() == ErrorClass::Usage)
    );
}

#[test]
fn writer_refuses_misuse() {
    let mut w = CatalogWriter::new(Vec::new()).unwrap();
    assert!(matches!(
        w.end_directory(),
        Err(CatalogError::NoOpenDirectory)
    ));
    assert!(matches!(
        w.add_file(b"f", 1, 1),
        Err(CatalogError::OutsideArchive { .. })
    ));
    for bad in [&b""[..], &b"a/b"[..], &b"a\0b"[..], &[b'x'; 4096][..]] {
        assert!(matches!(
            w.start_directory(bad),
            Err(CatalogError::BadName { .. })
        ));
    }
    w.start_directory(&[b'x'; 4095]).unwrap();
    w.add_fifo(b"\xff\xfe not utf-8").unwrap();
    assert_eq!(w.depth(), 1);
    assert!(matches!(
        w.finish(),
        Err(CatalogError::Unfinished { depth: 1 })
    ));

    // An empty catalog: magic, an empty root table, its offset.
    let empty = CatalogWriter::new(Vec::new()).unwrap().finish().unwrap();
    assert_eq!(hex::encode(&empty), "91fd60f9c46758d501000800000000000000");
    assert_eq!(CatalogReader::new(&empty).unwrap().walk().count(), 0);
}

/// magic + `tables` + the root offset.
fn catalog(tables: &str, root: u64) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&hex::decode(tables).unwrap());
    bytes.extend_from_slice(&root.to_le_bytes());
    bytes
}

#[test]
fn reader_rejects_corrupt_catalogs() {
    let err = |bytes: &[u8]| {
        let e = CatalogReader::new(bytes).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Verification, "{e}");
        e
    };
    assert!(matches!(err(&MAGIC), CatalogError::TooShort { len: 8 }));
    assert!(matches!(err(&[0; 18]), CatalogError::BadMagic));
    assert!(matches!(
        err(&catalog("0100", 10)),
        CatalogError::TableOffset {
            offset: 10,
            end: 10
        }
    ));
    assert!(matches!(
        err(&catalog("0100", 7)),
        CatalogError::TableOffset { offset: 7, .. }
    ));
    assert!(matches!(
        err(&catalog("0000", 8)),
        CatalogError::TableLength {
            offset: 8,
            len: 0,
            ..
        }
    ));
    assert!(matches!(
        err(&catalog("0300", 8)),
        CatalogError::TableLength {
            len: 3,
            room: 1,
            ..
        }
    ));
    assert!(matches!(
        err(&catalog("80", 8)),
        CatalogError::Varint {
            offset: 8,
            source: VarintError::Truncated
        }
    ));
    // Entry count larger than the table.
    assert!(matches!(
        err(&catalog("0105", 8)),
        CatalogError::Truncated {
            table: 8,
            offset: 10
        }
    ));
    assert!(matches!(
        err(&catalog("03017801", 8)),
        CatalogError::EntryType {
            offset: 10,
            byte: b'x'
        }
    ));
    assert!(matches!(
        err(&catalog("0401738020", 8)),
        CatalogError::NameLength {
            offset: 10,
            len: 4096
        }
    ));
    assert!(matches!(
        err(&catalog("0401730561", 8)),
        CatalogError::Truncated {
            table: 8,
            offset: 10
        }
    ));
    assert!(matches!(
        err(&catalog("0400730161", 8)),
        CatalogError::TrailingBytes {
            table: 8,
            offset: 10
        }
    ));
    // A file whose mtime runs past the table.
    assert!(matches!(
        err(&catalog("050166016105", 8)),
        CatalogError::Varint { offset: 14, .. }
    ));
    // A directory pointing at its own table (delta 0) or past the magic (delta 1 from 10).
    assert!(matches!(
        err(&catalog("0501640161000100", 8)),
        CatalogError::ChildOffset {
            offset: 10,
            delta: 0,
            parent: 8
        }
    ));
    assert!(matches!(
        err(&catalog("01000501640161030100", 10)),
        CatalogError::ChildOffset {
            offset: 12,
            delta: 3,
            parent: 10
        }
    ));
}

#[test]
fn walk_refuses_shared_and_misplaced_tables() {
    // 8: empty table; 10: archive whose entries a and b both point at it; 20: root.
    let shared = catalog(
        &[
            "0100", "09", "02", "64016102", "64016202", "05", "01", "6401720a",
        ]
        .concat(),
        20,
    );
    let r = CatalogReader::new(&shared).unwrap();
    assert_eq!(
        r.read_dir(10).unwrap().len(),
        2,
        "read_dir alone does not judge nesting"
    );
    let items: Vec<_> = r.walk().collect();
    assert_eq!(
        items.len(),
        3,
        "r, r/a, then the error for r/b; then the walk ends"
    );
    assert!(items[..2].iter().all(Result::is_ok));
    assert!(matches!(
        items[2],
        Err(CatalogError::Nesting {
            offset: 8,
            parent: 10
        })
    ));

    // A walk below an offset that is no table: one error, then the end.
    let bytes = golden_catalog();
    let r = CatalogReader::new(&bytes).unwrap();
    let mut walk = r.walk_dir(9, b"x");
    assert!(matches!(
        walk.next(),
        Some(Err(CatalogError::EntryType {
            offset: 11,
            byte: 8
        }))
    ));
    assert!(walk.next().is_none());
}

#[derive(Debug, Clone)]
enum Node {
    Dir(Vec<u8>, Vec<Node>),
    Leaf(Vec<u8>, CatalogEntryKind),
}

impl Node {
    fn name_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Node::Dir(n, _) | Node::Leaf(n, _) => n,
        }
    }
}

/// Makes names unique within each directory, so that every path looks up one entry.
fn uniquify(nodes: &mut [Node]) {
    let mut seen = std::collections::HashSet::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        if !seen.insert(node.name_mut().clone()) {
            node.name_mut()
                .extend_from_slice(format!("~{i}").as_bytes());
            seen.insert(node.name_mut().clone());
        }
        if let Node::Dir(_, children) = node {
            uniquify(children);
        }
    }
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
        1..10,
    )
}

fn tree() -> impl Strategy<Value = Vec<Node>> {
    let leaf = (
        name(),
        prop_oneof![
            (any::<u64>(), any::<i64>())
                .prop_map(|(size, mtime)| CatalogEntryKind::File { size, mtime }),
            (0u64..1000, -1000i64..1000)
                .prop_map(|(size, mtime)| CatalogEntryKind::File { size, mtime }),
            Just(CatalogEntryKind::Symlink),
            Just(CatalogEntryKind::Hardlink),
            Just(CatalogEntryKind::BlockDevice),
            Just(CatalogEntryKind::CharDevice),
            Just(CatalogEntryKind::Fifo),
            Just(CatalogEntryKind::Socket),
        ],
    )
        .prop_map(|(n, k)| Node::Leaf(n, k));
    let node = leaf.prop_recursive(5, 80, 8, |inner| {
        (name(), proptest::collection::vec(inner, 0..8)).prop_map(|(n, c)| Node::Dir(n, c))
    });
    let archive =
        (name(), proptest::collection::vec(node, 0..8)).prop_map(|(n, c)| Node::Dir(n, c));
    proptest::collection::vec(archive, 0..4).prop_map(|mut archives| {
        uniquify(&mut archives);
        archives
    })
}

/// Writes `nodes` and records the expected walk: path and kind (directory tables as 0).
fn write(
    w: &mut CatalogWriter<Vec<u8>>,
    nodes: &[Node],
    prefix: &[u8],
    out: &mut Vec<(Vec<u8>, CatalogEntryKind)>,
) {
    for node in nodes {
        let (name, kind) = match node {
            Node::Dir(name, _) => (name, CatalogEntryKind::Directory { table: 0 }),
            Node::Leaf(name, kind) => (name, *kind),
        };
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        out.push((path.clone(), kind));
        match *node {
            Node::Dir(_, ref children) => {
                w.start_directory(name).unwrap();
                write(w, children, &path, out);
                w.end_directory().unwrap();
            }
            Node::Leaf(_, CatalogEntryKind::File { size, mtime }) => {
                w.add_file(name, size, mtime).unwrap()
            }
            Node::Leaf(_, CatalogEntryKind::Symlink) => w.add_symlink(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::Hardlink) => w.add_hardlink(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::BlockDevice) => w.add_block_device(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::CharDevice) => w.add_char_device(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::Fifo) => w.add_fifo(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::Socket) => w.add_socket(name).unwrap(),
            Node::Leaf(_, CatalogEntryKind::Directory { .. }) => unreachable!(),
        }
    }
}

fn build(archives: &[Node]) -> (Vec<u8>, Vec<(Vec<u8>, CatalogEntryKind)>) {
    let mut w = CatalogWriter::new(Vec::new()).unwrap();
    let mut expected = Vec::new();
    write(&mut w, archives, b"", &mut expected);
    let len = w.position();
    let bytes = w.finish().unwrap();
    // The root table starts where the writer stood before finishing.
    assert_eq!(bytes.get(bytes.len() - 8..), Some(&len.to_le_bytes()[..]));
    (bytes, expected)
}

fn without_table(kind: CatalogEntryKind) -> CatalogEntryKind {
    match kind {
        CatalogEntryKind::Directory { .. } => CatalogEntryKind::Directory { table: 0 },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_trees_read_back(archives in tree()) {
        let (bytes, expected) = build(&archives);
        let r = CatalogReader::new(&bytes).unwrap();
        let walked: Vec<_> = r.walk().map(Result::unwrap).collect();
        let shapes: Vec<_> = walked.iter().map(|(p, e)| (p.clone(), without_table(e.kind))).collect();
        prop_assert_eq!(&shapes, &expected);
        for (path, entry) in &walked {
            prop_assert_eq!(r.lookup(path).unwrap(), Some(*entry));
            prop_assert!(path.ends_with(entry.name));
            if let Some(table) = entry.table() {
                prop_assert!(table < r.root() && table >= 8);
                let below = r.walk_dir(table, path).count();
                let expect = expected.iter().filter(|(p, _)| p.len() > path.len() && p.starts_with(path) && p.get(path.len()) == Some(&b'/')).count();
                prop_assert_eq!(below, expect);
            }
        }
        prop_assert_eq!(r.find(b"**").unwrap().count(), expected.len());
    }

    #[test]
    fn reader_never_panics_on_damage(
        archives in tree(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        truncate in any::<bool>(),
    ) {
        let (mut bytes, _) = build(&archives);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(r) = CatalogReader::new(&bytes) {
            let walked: Vec<_> = r.walk().collect();
            // At most one error, and it ends the walk.
            if let Some(at) = walked.iter().position(Result::is_err) {
                prop_assert_eq!(at, walked.len() - 1);
            }
            let _ = r.lookup(b"a/b/c");
            let _ = r.find(b"**/*[a-f]?").map(Iterator::count);
            for offset in 0..bytes.len() as u64 + 2 {
                let _ = r.read_dir(offset);
            }
        }
    }

    #[test]
    fn reader_never_panics_on_noise(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(r) = CatalogReader::new(&bytes) {
            let _ = r.walk().count();
            for offset in 0..bytes.len() as u64 {
                let _ = r.read_dir(offset);
                let _ = r.walk_dir(offset, b"x").count();
            }
        }
    }
}
