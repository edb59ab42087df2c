//! Signals between the collector's subsystems that neither side should own: raised by
//! ingest (QUIC batches and remote_write), awaited by the rule manager, so ingest does not
//! depend on the rules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The signal from ingest to the rule manager that new samples are stored. Cheap to clone
/// and to raise: raising bumps a sequence number and wakes the manager; raises while the
/// manager is busy coalesce into one wake-up, so the signal never queues.
#[derive(Debug, Clone, Default)]
pub struct SamplesArrived(Arc<SamplesArrivedInner>);

#[derive(Debug, Default)]
struct SamplesArrivedInner {
    seq: AtomicU64,
    wake: tokio::sync::Notify,
}

impl SamplesArrived {
    /// Records that samples were stored and wakes the rule manager.
    pub fn raise(&self) {
        self.0.seq.fetch_add(1, Ordering::Release);
        self.0.wake.notify_one();
    }

    /// How many times samples have arrived since start.
    pub(crate) fn seq(&self) -> u64 {
        self.0.seq.load(Ordering::Acquire)
    }

    /// Waits until samples are next raised.
    pub(crate) async fn wait(&self) {
        self.0.wake.notified().await
    }
}
