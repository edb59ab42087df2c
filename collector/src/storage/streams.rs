//! Exactly-once bookkeeping per agent stream: the dedupe state and counters of each
//! (agent, stream), how a durable delivery is recorded in it, and its checkpoint records.

use super::*;

/// Dedupe state and counters of one (agent, stream).
#[derive(Debug, Default)]
pub(super) struct StreamState {
    pub(super) seen: SeenSequences,
    /// Mirror of the sequences `seen` holds above its watermark, for checkpoints.
    pub(super) sparse: BTreeSet<u64>,
    pub(super) last_append_ms: i64,
    pub(super) batches: u64,
    pub(super) samples: u64,
}

impl StreamState {
    pub(super) fn insert(&mut self, seq: u64) -> bool {
        if !self.seen.insert(seq) {
            return false;
        }
        self.sparse.insert(seq);
        let below = self.seen.contiguous_up_to();
        if self.sparse.first().is_some_and(|&f| f < below) {
            self.sparse = self.sparse.split_off(&below);
        }
        true
    }

    pub(super) fn from_record(r: &StreamRecord) -> Self {
        let mut s = StreamState {
            last_append_ms: r.last_append_ms,
            batches: r.batches,
            samples: r.samples,
            ..Default::default()
        };
        for seq in 0..r.below {
            s.seen.insert(seq);
        }
        for &seq in &r.above {
            s.insert(seq);
        }
        s
    }
}

pub(super) type StreamKey = (String, u64);

/// Who delivered a batch, and when: the identity used for exactly-once delivery.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery<'a> {
    pub(super) agent: &'a str,
    pub(super) stream_id: u64,
    pub(super) seq: u64,
    pub(super) append_ms: i64,
}

impl Shared {
    pub(super) fn is_seen(&self, agent: &str, stream_id: u64, seq: u64) -> bool {
        lock(&self.streams)
            .get(&(agent.to_string(), stream_id))
            .is_some_and(|s| s.seen.contains(seq))
    }

    /// Marks a batch as stored in its stream's dedupe state. Only ever called for durable
    /// batches: from then on a resend is acknowledged as a duplicate.
    pub(super) fn record_delivery(&self, d: Delivery<'_>, appended: u64) {
        let mut streams = lock(&self.streams);
        let st = streams
            .entry((d.agent.to_string(), d.stream_id))
            .or_default();
        st.insert(d.seq);
        st.last_append_ms = st.last_append_ms.max(d.append_ms);
        st.batches += 1;
        st.samples += appended;
    }

    pub(super) fn stream_records(&self) -> Vec<StreamRecord> {
        let streams = lock(&self.streams);
        let mut out: Vec<StreamRecord> = streams
            .iter()
            .map(|((agent, stream_id), st)| StreamRecord {
                agent: agent.clone(),
                stream_id: *stream_id,
                below: st.seen.contiguous_up_to(),
                above: st.sparse.iter().copied().collect(),
                last_append_ms: st.last_append_ms,
                batches: st.batches,
                samples: st.samples,
            })
            .collect();
        out.sort_by(|a, b| (&a.agent, a.stream_id).cmp(&(&b.agent, b.stream_id)));
        out
    }
}
