//! Sequence bookkeeping for exactly-once delivery. The agent numbers batches per stream; the
//! collector remembers which numbers it has stored and answers a repeat with a duplicate
//! acknowledgement instead of storing it twice. Numbers may arrive out of order (live data
//! overtakes backlog), so the tracker keeps a contiguous watermark plus the sparse set above it.

use std::collections::BTreeSet;

/// The set of sequence numbers already stored for one (agent, stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenSequences {
    /// Every sequence below this has been seen.
    below: u64,
    /// Sequences at or above `below` that have been seen.
    above: BTreeSet<u64>,
}

impl SeenSequences {
    /// True when `seq` was already recorded.
    pub fn contains(&self, seq: u64) -> bool {
        seq < self.below || self.above.contains(&seq)
    }

    /// Records `seq`; returns false when it was already present (a duplicate).
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        self.above.insert(seq);
        while self.above.remove(&self.below) {
            self.below += 1;
        }
        true
    }

    /// Every sequence below this value has been recorded.
    pub fn contiguous_up_to(&self) -> u64 {
        self.below
    }

    /// Number of recorded sequences held individually (the gaps' cost in memory).
    pub fn sparse_len(&self) -> usize {
        self.above.len()
    }

    /// The highest recorded sequence, if any.
    pub fn highest(&self) -> Option<u64> {
        self.above.last().copied().or(self.below.checked_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_detected_in_and_out_of_order() {
        let mut s = SeenSequences::default();
        assert!(s.insert(0));
        assert!(s.insert(5));
        assert!(s.insert(2));
        assert!(!s.insert(5));
        assert!(!s.insert(0));
        assert_eq!(s.contiguous_up_to(), 1);
        assert!(s.insert(1));
        assert_eq!(s.contiguous_up_to(), 3);
        assert!(s.insert(3));
        assert!(s.insert(4));
        assert_eq!(s.contiguous_up_to(), 6);
        assert_eq!(s.sparse_len(), 0);
        assert_eq!(s.highest(), Some(5));
    }
}
