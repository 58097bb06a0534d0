//! Which segments tantivy merges: its log-structured levels (segments of a
//! similar size are merged eight at a time), but no merge reads more than
//! [`MAX_MERGE_BYTES`] of segments.
//!
//! A merge maps every segment it reads, and the pages it touched count in the
//! process's resident memory until it ends; its column merging allocates in
//! proportion to the documents merged. Unbounded, the merges of a large import
//! grew with the index (at 10M items, eight segments of 1.76M documents, and
//! 300 MiB of index files resident at the peak) and decided its peak memory.
//! Bounded, an import's memory no longer depends on the archive's size. The
//! price is more segments in a large index (one per ~64 MiB of index), which
//! every query visits; see ARCHITECTURE.md for the figures.

use std::collections::HashMap;
use std::path::PathBuf;
use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::merge_policy::{LogMergePolicy, MergeCandidate, MergePolicy};

/// The most bytes of segments one merge reads.
pub const MAX_MERGE_BYTES: u64 = 64 << 20;
/// The fewest segments worth a merge once the bound has cut a level into
/// parts: merging two or three rewrites every byte to save a segment or two.
const MIN_FAN_IN: usize = 4;

#[derive(Debug)]
pub struct BoundedMerges {
    /// The index directory, where the segments' files are measured.
    dir: PathBuf,
    levels: LogMergePolicy,
}

impl BoundedMerges {
    pub fn new(dir: PathBuf) -> BoundedMerges {
        BoundedMerges {
            dir,
            levels: LogMergePolicy::default(),
        }
    }

    /// The bytes of a segment's files (a file that has gone counts nothing:
    /// tantivy then drops the segment from its own list).
    fn bytes(&self, meta: &SegmentMeta) -> u64 {
        use tantivy::index::SegmentComponent as C;
        let mut parts = vec![C::Postings, C::Positions, C::FastFields, C::FieldNorms];
        parts.extend([C::Terms, C::Store]);
        if meta.has_deletes() {
            parts.push(C::Delete);
        }
        parts
            .into_iter()
            .filter_map(|c| std::fs::metadata(self.dir.join(meta.relative_path(c))).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl MergePolicy for BoundedMerges {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let sizes: HashMap<SegmentId, u64> =
            segments.iter().map(|m| (m.id(), self.bytes(m))).collect();
        self.levels
            .compute_merge_candidates(segments)
            .into_iter()
            .flat_map(|c| bounded(c.0, &sizes, MAX_MERGE_BYTES))
            .collect()
    }
}

/// Cuts one merge into merges of at most `max` bytes, smallest segments
/// first; parts of fewer than [`MIN_FAN_IN`] segments are not merged.
fn bounded(
    mut ids: Vec<SegmentId>,
    sizes: &HashMap<SegmentId, u64>,
    max: u64,
) -> Vec<MergeCandidate> {
    let size = |id: &SegmentId| sizes.get(id).copied().unwrap_or(0);
    ids.sort_by_key(size);
    let mut out = Vec::new();
    let mut part: Vec<SegmentId> = Vec::new();
    let mut total = 0;
    let mut close = |part: &mut Vec<SegmentId>| {
        if part.len() >= MIN_FAN_IN {
            out.push(MergeCandidate(std::mem::take(part)));
        } else {
            part.clear();
        }
    };
    for id in ids {
        let s = size(&id);
        if total + s > max {
            close(&mut part);
            total = 0;
            if s > max {
                // Sorted: every segment from here on is too large alone.
                break;
            }
        }
        part.push(id);
        total += s;
    }
    close(&mut part);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<SegmentId> {
        (0..n).map(|_| SegmentId::generate_random()).collect()
    }

    fn sizes_of(ids: &[SegmentId], sizes: &[u64]) -> HashMap<SegmentId, u64> {
        ids.iter().copied().zip(sizes.iter().copied()).collect()
    }

    fn totals(c: &[MergeCandidate], sizes: &HashMap<SegmentId, u64>) -> Vec<(usize, u64)> {
        c.iter()
            .map(|m| (m.0.len(), m.0.iter().map(|id| sizes[id]).sum()))
            .collect()
    }

    #[test]
    fn a_merge_within_the_bound_is_kept_whole() {
        let s = ids(8);
        let sizes = sizes_of(&s, &[3; 8]);
        let got = bounded(s, &sizes, 64);
        assert_eq!(totals(&got, &sizes), [(8, 24)]);
    }

    #[test]
    fn a_large_merge_is_cut_into_parts_of_at_most_the_bound() {
        let s = ids(10);
        let sizes = sizes_of(&s, &[10; 10]);
        let got = bounded(s, &sizes, 45);
        // 4 + 4 fit; the last 2 are too few to be worth a merge.
        assert_eq!(totals(&got, &sizes), [(4, 40), (4, 40)]);
    }

    #[test]
    fn segments_too_large_or_too_few_are_left_alone() {
        let s = ids(8);
        let sizes = sizes_of(&s, &[24; 8]);
        // Two fit under 64: too few.
        assert!(bounded(s.clone(), &sizes, 64).is_empty());
        let sizes = sizes_of(&s, &[100, 1, 1, 1, 1, 200, 1, 300]);
        let got = bounded(s, &sizes, 64);
        assert_eq!(totals(&got, &sizes), [(5, 5)]);
    }
}
