//! Rebuilding the head and the dedupe state at open: WAL records decoded on a reader
//! thread and applied in order on the opening thread.

use super::*;

/// A WAL record decoded for replay (on the reader thread).
#[derive(Debug)]
pub(super) enum Replayed {
    Agent {
        agent: String,
        stream_id: u64,
        seq: u64,
        append_ms: i64,
        batch: ParsedBatch,
    },
    Series(ParsedBatch),
}

impl Replayed {
    /// Decodes a record body; `None` (logged) when it cannot be used at all.
    pub(super) fn decode(body: &[u8]) -> Option<Replayed> {
        let rec = match WalRecord::decode(body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "skipping undecodable WAL record");
                return None;
            }
        };
        match rec {
            WalRecord::AgentBatch {
                agent,
                stream_id,
                seq,
                append_ms,
                payload,
            } => {
                let batch = ParsedBatch::decode(payload).unwrap_or_else(|e| {
                    // Validated before it was written, so this means a codec change: keep the
                    // dedupe state so the agent is not asked to resend data we cannot read.
                    tracing::warn!(agent, stream_id, seq, error = %e, "WAL batch payload is undecodable");
                    ParsedBatch::default()
                });
                Some(Replayed::Agent {
                    agent: agent.to_string(),
                    stream_id,
                    seq,
                    append_ms,
                    batch,
                })
            }
            WalRecord::Series { payload } => match ParsedBatch::decode(payload) {
                Ok(batch) => Some(Replayed::Series(batch)),
                Err(e) => {
                    tracing::warn!(error = %e, "WAL series payload is undecodable");
                    None
                }
            },
        }
    }
}

impl Shared {
    /// Applies one decoded WAL record.
    pub(super) fn replay_record(&self, head: &mut Head, rec: Replayed, now: i64) {
        match rec {
            Replayed::Agent {
                agent,
                stream_id,
                seq,
                append_ms,
                batch,
            } => {
                // Replayed series stay unowned until a tenant writes to them again.
                let (c, _) = self.apply_agent_batch(head, &agent, stream_id, &batch, now, None);
                let d = Delivery {
                    agent: &agent,
                    stream_id,
                    seq,
                    append_ms,
                };
                self.record_delivery(d, c.appended);
            }
            Replayed::Series(batch) => {
                let mut counts = AppendStats::default();
                head.append_parsed(
                    &batch,
                    None,
                    self.ooo_window_ms(),
                    self.min_valid_t(now),
                    None,
                    &mut counts,
                );
            }
        }
    }
}

/// Replays the WAL segments of `wal_dir` from `from_segment` into `head` and the dedupe
/// state. One thread reads and decodes records while this one applies them, in order.
pub(super) fn replay_wal(
    shared: &Shared,
    head: &mut Head,
    wal_dir: &Path,
    from_segment: u64,
    now: i64,
) -> Result<wal::ReplayReport, StorageError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Replayed>(256);
        let reader = scope.spawn(|| {
            wal::replay(wal_dir, from_segment, move |_, body| {
                if let Some(rec) = Replayed::decode(body) {
                    let _ = tx.send(rec);
                }
            })
        });
        for rec in rx {
            shared.replay_record(head, rec, now);
        }
        reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("WAL reader thread panicked")))
    })
    .map_err(|e| StorageError::io(format!("replaying WAL in {}", wal_dir.display()), e))
}
