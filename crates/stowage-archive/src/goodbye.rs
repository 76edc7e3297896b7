//! Goodbye tables (spec §7.5): the per-directory index at the end of every directory.
//!
//! A table holds one 24-byte item (hash, offset, size) per child, sorted by the SipHash of the
//! child's name and laid out as an implicit binary search tree (children of slot `i` at `2i+1`
//! and `2i+2`, casync's permutation), then a tail item pointing back to the directory's ENTRY.
//! This module builds tables, verifies them against what a decoder saw, and searches them for
//! random access.

use crate::format::{self, GOODBYE_TAIL_MARKER, HEADER_SIZE};

/// Size of one goodbye item.
pub const ITEM_SIZE: usize = 24;

/// One goodbye item. For a child, `offset` is the distance from the GOODBYE header back to the
/// child's FILENAME header and `size` the child's extent; for the tail, `offset` points back to
/// the directory's ENTRY and `size` is the full size of the GOODBYE item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoodbyeItem {
    pub hash: u64,
    pub offset: u64,
    pub size: u64,
}

impl GoodbyeItem {
    pub fn to_bytes(&self) -> [u8; ITEM_SIZE] {
        let mut b = [0u8; ITEM_SIZE];
        b[0..8].copy_from_slice(&self.hash.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    /// Parses the first 24 bytes of `b` (zeros past its end; callers check lengths).
    pub fn from_bytes(b: &[u8]) -> GoodbyeItem {
        GoodbyeItem {
            hash: format::le_u64(b, 0),
            offset: format::le_u64(b, 8),
            size: format::le_u64(b, 16),
        }
    }

    /// Absolute stream offset this item points to, given the offset of its GOODBYE header.
    pub fn target(&self, goodbye_offset: u64) -> Option<u64> {
        goodbye_offset.checked_sub(self.offset)
    }
}

/// What is wrong with a goodbye table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoodbyeError {
    #[error("content of {0} bytes is not a whole number (at least one) of 24-byte items")]
    Length(u64),
    #[error("{found} items for {expected} children")]
    Count { expected: u64, found: u64 },
    #[error("the last item is not the tail marker")]
    MissingTail,
    #[error("tail offset {found} does not point to the directory's ENTRY (expected {expected})")]
    TailOffset { expected: u64, found: u64 },
    #[error("tail size {found} is not the GOODBYE item size {expected}")]
    TailSize { expected: u64, found: u64 },
    #[error("items are not in binary-search-tree order of their hashes")]
    NotSorted,
    #[error("item (hash {hash:#018x}, offset {offset}) matches no child of the directory")]
    Item { hash: u64, offset: u64 },
    #[error("item of the child at {filename_offset} has size {found}, the child spans {expected}")]
    Size {
        filename_offset: u64,
        expected: u64,
        found: u64,
    },
}

/// For a table of `n` items, which sorted position goes into each slot (casync's layout):
/// `bst_permutation(5) == [3, 1, 4, 0, 2]`.
pub fn bst_permutation(n: usize) -> Vec<usize> {
    let mut out = vec![0; n];
    if n > 0 {
        place(&mut out, 0, 0, n, n.ilog2());
    }
    out
}

/// Places the sorted items `start..start + len` into the subtree rooted at `slot`; `level` is
/// the subtree's height estimate `e` of the spec.
fn place(out: &mut [usize], slot: usize, start: usize, len: usize, level: u32) {
    if len == 0 {
        return;
    }
    let p = 1usize << level.min(usize::BITS - 2);
    let t = p + p / 2 - 1;
    let root = if len > t {
        p - 1
    } else {
        (p - 1).saturating_sub(t - len)
    };
    let root = root.min(len - 1);
    if let Some(s) = out.get_mut(slot) {
        *s = start + root;
    }
    let next = level.saturating_sub(1);
    place(out, 2 * slot + 1, start, root, next);
    place(out, 2 * slot + 2, start + root + 1, len - root - 1, next);
}

/// A child of a directory as the encoder wrote it or the decoder saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRecord {
    /// [`format::hash_name`] of the child's name.
    pub hash: u64,
    /// Stream offset of the child's FILENAME header.
    pub filename_offset: u64,
    /// Bytes from the FILENAME header to the end of the child's last item.
    pub size: u64,
    /// Whether a goodbye item's size must equal `size` (not for regular files of split
    /// archives, whose goodbye sizes differ between PBS versions).
    pub check_size: bool,
}

/// Builds GOODBYE content (items and tail, without the header) for a directory whose ENTRY is
/// at `entry_offset` and whose GOODBYE header will be at `goodbye_offset`.
pub fn build_table(children: &[ChildRecord], goodbye_offset: u64, entry_offset: u64) -> Vec<u8> {
    let mut sorted: Vec<&ChildRecord> = children.iter().collect();
    sorted.sort_by_key(|c| (c.hash, c.filename_offset));
    let mut out = Vec::with_capacity((children.len() + 1) * ITEM_SIZE);
    for pos in bst_permutation(sorted.len()) {
        let Some(child) = sorted.get(pos) else {
            continue;
        };
        let item = GoodbyeItem {
            hash: child.hash,
            offset: goodbye_offset.saturating_sub(child.filename_offset),
            size: child.size,
        };
        out.extend_from_slice(&item.to_bytes());
    }
    let tail = GoodbyeItem {
        hash: GOODBYE_TAIL_MARKER,
        offset: goodbye_offset.saturating_sub(entry_offset),
        size: table_full_size(children.len()),
    };
    out.extend_from_slice(&tail.to_bytes());
    out
}

/// Full size (header included) of the GOODBYE item of a directory with `children` children.
pub fn table_full_size(children: usize) -> u64 {
    HEADER_SIZE + (children as u64 + 1) * ITEM_SIZE as u64
}

/// A goodbye table (the content of a GOODBYE item), for random access by name.
#[derive(Debug, Clone, Copy)]
pub struct GoodbyeTable<'a> {
    items: &'a [u8],
    tail: GoodbyeItem,
}

impl<'a> GoodbyeTable<'a> {
    /// Checks the length and the tail marker of GOODBYE content.
    pub fn parse(content: &'a [u8]) -> Result<Self, GoodbyeError> {
        let len = content.len();
        if len < ITEM_SIZE || !len.is_multiple_of(ITEM_SIZE) {
            return Err(GoodbyeError::Length(len as u64));
        }
        let (items, tail) = content.split_at(len - ITEM_SIZE);
        let tail = GoodbyeItem::from_bytes(tail);
        if tail.hash != GOODBYE_TAIL_MARKER {
            return Err(GoodbyeError::MissingTail);
        }
        Ok(GoodbyeTable { items, tail })
    }

    /// Number of child items (the tail not counted).
    pub fn len(&self) -> usize {
        self.items.len() / ITEM_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item in `slot` (tree order), if any.
    pub fn item(&self, slot: usize) -> Option<GoodbyeItem> {
        let at = slot.checked_mul(ITEM_SIZE)?;
        let bytes = self.items.get(at..at.checked_add(ITEM_SIZE)?)?;
        Some(GoodbyeItem::from_bytes(bytes))
    }

    /// The tail item.
    pub fn tail(&self) -> GoodbyeItem {
        self.tail
    }

    /// The items in slot (tree) order.
    pub fn items(&self) -> impl Iterator<Item = GoodbyeItem> + 'a {
        self.items
            .chunks_exact(ITEM_SIZE)
            .map(GoodbyeItem::from_bytes)
    }

    /// All items whose hash is `hash`, found by walking the implicit search tree (several only
    /// on a hash collision; the caller compares the FILENAME the item points to).
    pub fn find(&self, hash: u64) -> Vec<GoodbyeItem> {
        let mut found = Vec::new();
        let mut pending = vec![0usize];
        let n = self.len();
        while let Some(slot) = pending.pop() {
            let Some(item) = self.item(slot) else {
                continue;
            };
            let (left, right) = (2 * slot + 1, 2 * slot + 2);
            match hash.cmp(&item.hash) {
                std::cmp::Ordering::Less => pending.push(left),
                std::cmp::Ordering::Greater => pending.push(right),
                std::cmp::Ordering::Equal => {
                    found.push(item);
                    pending.extend([left, right].into_iter().filter(|&s| s < n));
                }
            }
        }
        found
    }

    /// Items for the child called `name` (see [`GoodbyeTable::find`]).
    pub fn lookup(&self, name: &[u8]) -> Vec<GoodbyeItem> {
        self.find(format::hash_name(name))
    }
}

/// The tail item at the end of an archive (its last 24 bytes), from which random access finds
/// the root directory's goodbye table: the table starts at `archive_len - tail.size` and the
/// root ENTRY at that offset minus `tail.offset`.
pub fn archive_tail(last_24_bytes: &[u8]) -> Result<GoodbyeItem, GoodbyeError> {
    if last_24_bytes.len() != ITEM_SIZE {
        return Err(GoodbyeError::Length(last_24_bytes.len() as u64));
    }
    let tail = GoodbyeItem::from_bytes(last_24_bytes);
    if tail.hash != GOODBYE_TAIL_MARKER {
        return Err(GoodbyeError::MissingTail);
    }
    Ok(tail)
}

/// Verifies GOODBYE `content` at `goodbye_offset` against the `children` a decoder saw in a
/// directory whose ENTRY is at `entry_offset`: count, tail, tree order, and each item's hash,
/// offset and (where `check_size`) size.
pub fn verify(
    content: &[u8],
    children: &[ChildRecord],
    goodbye_offset: u64,
    entry_offset: u64,
) -> Result<(), GoodbyeError> {
    let table = GoodbyeTable::parse(content)?;
    if table.len() != children.len() {
        return Err(GoodbyeError::Count {
            expected: children.len() as u64,
            found: table.len() as u64,
        });
    }
    verify_tail(&table, goodbye_offset, entry_offset)?;
    let sorted = in_sorted_order(&table)?;
    let mut got: Vec<(u64, Option<u64>, u64)> = sorted
        .iter()
        .map(|i| (i.hash, i.target(goodbye_offset), i.size))
        .collect();
    got.sort_unstable();
    let mut want: Vec<&ChildRecord> = children.iter().collect();
    want.sort_unstable_by_key(|c| (c.hash, c.filename_offset));
    for ((hash, target, size), child) in got.into_iter().zip(want) {
        if hash != child.hash || target != Some(child.filename_offset) {
            let offset = goodbye_offset.wrapping_sub(target.unwrap_or(0));
            return Err(GoodbyeError::Item { hash, offset });
        }
        if child.check_size && size != child.size {
            return Err(GoodbyeError::Size {
                filename_offset: child.filename_offset,
                expected: child.size,
                found: size,
            });
        }
    }
    Ok(())
}

fn verify_tail(
    table: &GoodbyeTable<'_>,
    goodbye_offset: u64,
    entry_offset: u64,
) -> Result<(), GoodbyeError> {
    let tail = table.tail();
    let expected = goodbye_offset.saturating_sub(entry_offset);
    if tail.offset != expected {
        return Err(GoodbyeError::TailOffset {
            expected,
            found: tail.offset,
        });
    }
    let expected = table_full_size(table.len());
    if tail.size != expected {
        return Err(GoodbyeError::TailSize {
            expected,
            found: tail.size,
        });
    }
    Ok(())
}

/// Undoes the tree permutation and checks that the hashes come out sorted.
fn in_sorted_order(table: &GoodbyeTable<'_>) -> Result<Vec<GoodbyeItem>, GoodbyeError> {
    let n = table.len();
    let mut sorted = vec![GoodbyeItem::from_bytes(&[]); n];
    for (slot, pos) in bst_permutation(n).into_iter().enumerate() {
        if let (Some(dst), Some(item)) = (sorted.get_mut(pos), table.item(slot)) {
            *dst = item;
        }
    }
    if sorted.windows(2).any(|w| w[0].hash > w[1].hash) {
        return Err(GoodbyeError::NotSorted);
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_permutation() {
        assert_eq!(bst_permutation(5), vec![3, 1, 4, 0, 2]);
        assert_eq!(bst_permutation(0), Vec::<usize>::new());
        assert_eq!(bst_permutation(1), vec![0]);
        assert_eq!(bst_permutation(2), vec![1, 0]);
        assert_eq!(bst_permutation(3), vec![1, 0, 2]);
    }

    fn in_order(perm: &[usize], slot: usize, out: &mut Vec<usize>) {
        if let Some(&v) = perm.get(slot) {
            in_order(perm, 2 * slot + 1, out);
            out.push(v);
            in_order(perm, 2 * slot + 2, out);
        }
    }

    /// For every size, the permutation is a bijection whose in-order walk is sorted order,
    /// i.e. the array is a binary search tree over the sorted items.
    #[test]
    fn permutation_is_a_search_tree() {
        for n in 0..3000 {
            let perm = bst_permutation(n);
            let mut walk = Vec::with_capacity(n);
            in_order(&perm, 0, &mut walk);
            assert_eq!(walk, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    fn children(names: &[&[u8]]) -> Vec<ChildRecord> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| ChildRecord {
                hash: format::hash_name(name),
                filename_offset: 100 + 50 * i as u64,
                size: 50,
                check_size: true,
            })
            .collect()
    }

    #[test]
    fn built_tables_verify_and_find_every_child() {
        let names: Vec<Vec<u8>> = (0..37u8).map(|i| vec![b'n', i, 0xff]).collect();
        let refs: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        let kids = children(&refs);
        let goodbye_offset = 100 + 50 * kids.len() as u64;
        let content = build_table(&kids, goodbye_offset, 40);
        verify(&content, &kids, goodbye_offset, 40).unwrap();
        let table = GoodbyeTable::parse(&content).unwrap();
        assert_eq!(table.len(), 37);
        assert_eq!(table.tail().offset, goodbye_offset - 40);
        for (name, kid) in refs.iter().zip(&kids) {
            let found = table.lookup(name);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].target(goodbye_offset), Some(kid.filename_offset));
        }
        assert!(table.lookup(b"absent").is_empty());
    }

    #[test]
    fn find_returns_every_colliding_item() {
        let mut kids = children(&[b"a", b"b", b"c", b"d"]);
        kids[2].hash = kids[0].hash;
        kids[3].hash = kids[0].hash;
        let content = build_table(&kids, 400, 0);
        verify(&content, &kids, 400, 0).unwrap();
        let found = GoodbyeTable::parse(&content).unwrap().find(kids[0].hash);
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn mismatches_are_reported() {
        let kids = children(&[b"a", b"b", b"c"]);
        let content = build_table(&kids, 300, 10);
        assert!(matches!(
            verify(&content, &kids[..2], 300, 10),
            Err(GoodbyeError::Count { .. })
        ));
        assert!(matches!(
            verify(&content, &kids, 300, 11),
            Err(GoodbyeError::TailOffset { .. })
        ));
        let mut moved = kids.clone();
        moved[1].filename_offset += 1;
        assert!(matches!(
            verify(&content, &moved, 300, 10),
            Err(GoodbyeError::Item { .. })
        ));
        let mut resized = kids.clone();
        resized[1].size += 1;
        assert!(matches!(
            verify(&content, &resized, 300, 10),
            Err(GoodbyeError::Size { .. })
        ));
        resized[1].check_size = false;
        verify(&content, &resized, 300, 10).unwrap();
        let mut swapped = content.clone();
        swapped[..24].copy_from_slice(&content[24..48]);
        swapped[24..48].copy_from_slice(&content[..24]);
        assert_eq!(
            verify(&swapped, &kids, 300, 10),
            Err(GoodbyeError::NotSorted)
        );
        assert_eq!(
            verify(&content[..content.len() - 1], &kids, 300, 10),
            Err(GoodbyeError::Length(content.len() as u64 - 1))
        );
    }

    #[test]
    fn archive_tail_needs_the_marker() {
        let tail = GoodbyeItem {
            hash: GOODBYE_TAIL_MARKER,
            offset: 5,
            size: 40,
        };
        assert_eq!(archive_tail(&tail.to_bytes()), Ok(tail));
        assert!(archive_tail(&[0; 24]).is_err());
        assert!(archive_tail(&[0; 3]).is_err());
    }
}
