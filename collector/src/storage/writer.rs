//! The single writer thread and group commit: the requests it is sent, the series limits
//! checked per append, one WAL record per request and one `fdatasync` per group, then the
//! group applied to the head and every caller answered.

use super::*;

/// What the writer is asked to append.
#[derive(Debug)]
pub(super) enum AppendOp {
    Agent {
        agent: String,
        stream_id: u64,
        seq: u64,
        payload: Vec<u8>,
        batch: ParsedBatch,
        tenant: String,
    },
    /// Series from remote_write or recording rules: no dedupe state, no events.
    Series {
        payload: Vec<u8>,
        batch: ParsedBatch,
        tenant: String,
    },
}

/// A series an append would create, or claim for its tenant.
#[derive(Debug)]
pub(super) struct Unowned {
    pub(super) labels: Labels,
    /// The series is in the head already (restored, not owned by any tenant yet).
    pub(super) exists: bool,
    /// An agent event series (`vigil_agent_event`): counted toward the global limit only.
    pub(super) event: bool,
}

impl AppendOp {
    pub(super) fn tenant(&self) -> &str {
        match self {
            AppendOp::Agent { tenant, .. } | AppendOp::Series { tenant, .. } => tenant,
        }
    }

    /// Series this append would create or claim for its tenant (deduplicated by labels): new
    /// series, and existing ones no tenant owns yet.
    pub(super) fn unowned_series(&self, head: &Head) -> Vec<Unowned> {
        let mut out: Vec<Unowned> = Vec::new();
        let mut seen: HashSet<Labels> = HashSet::new();
        let mut consider = |owner: Option<u16>, event: bool, labels: &dyn Fn() -> Labels| {
            if owner.is_some_and(|t| t != head::NO_TENANT) {
                return;
            }
            let labels = labels();
            if seen.insert(labels.clone()) {
                out.push(Unowned {
                    labels,
                    event,
                    exists: owner.is_some(),
                });
            }
        };
        match self {
            AppendOp::Agent { agent, batch, .. } => {
                for i in 0..batch.series_len() {
                    consider(head.parsed_series_tenant(batch, i), false, &|| {
                        batch.labels(i)
                    });
                }
                for s in event_series::event_series(agent, &batch.events) {
                    consider(head.series_tenant(&s.labels), true, &|| s.labels.clone());
                }
            }
            AppendOp::Series { batch, .. } => {
                for i in 0..batch.series_len() {
                    consider(head.parsed_series_tenant(batch, i), false, &|| {
                        batch.labels(i)
                    });
                }
            }
        }
        out
    }

    /// Removes series (by position) from an agent batch, re-encoding its payload, so the WAL
    /// holds exactly what was stored.
    pub(super) fn drop_agent_series(&mut self, drop: &HashSet<usize>) -> Result<(), StorageError> {
        let AppendOp::Agent { payload, batch, .. } = self else {
            return Ok(());
        };
        let mut full = vigil_shared::codec::decode_batch(payload)
            .map_err(|e| StorageError::Malformed(e.to_string()))?;
        let mut i = 0;
        full.series.retain(|_| {
            i += 1;
            !drop.contains(&(i - 1))
        });
        *payload = encode_batch(&full).map_err(|e| StorageError::Malformed(e.to_string()))?;
        *batch =
            ParsedBatch::decode(payload).map_err(|e| StorageError::Malformed(e.to_string()))?;
        Ok(())
    }
}

#[derive(Debug)]
pub(super) enum AppendReply {
    Agent(AppendOutcome),
    Series(AppendStats),
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

#[derive(Debug)]
pub(super) enum Request {
    Append {
        /// Boxed: an append carries far more than the other requests.
        op: Box<AppendOp>,
        reply: Reply<AppendReply>,
    },
    Checkpoint {
        reply: Reply<()>,
    },
    Compact {
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

/// WAL figures published by the writer for `stats`.
#[derive(Debug, Default)]
pub(super) struct WalStats {
    pub(super) bytes: std::sync::atomic::AtomicU64,
    pub(super) segments: std::sync::atomic::AtomicU64,
    pub(super) checkpoints: std::sync::atomic::AtomicU64,
}

/// A copy of an error for a second caller waiting on the same outcome.
pub(super) fn copy_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io { context, source } => StorageError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StorageError::Failed(m) => StorageError::Failed(m.clone()),
        other => StorageError::Failed(other.to_string()),
    }
}

/// Enforces the global and the per-tenant active-series limits on one append, counting the
/// series it creates or claims into the group's pending tallies when it may go ahead.
///
/// Over the global limit the whole append is refused. Over its tenant's limit a remote_write
/// (or rule) append is refused whole, with an error naming the tenant and a metric (like
/// Mimir's per-tenant series limit); an agent batch is accepted without the series that do
/// not fit (they are counted in `vigil_storage_tenant_series_rejected_total` and logged),
/// and its payload is re-encoded so the WAL holds what was stored. Nothing else of the batch
/// is lost, and the agent does not resend it forever.
pub(super) fn check_series_limits(
    shared: &Shared,
    head: &Head,
    op: &mut AppendOp,
    pending_new: &mut HashSet<Labels>,
    pending_created: &mut usize,
    pending_owned: &mut HashMap<String, usize>,
) -> Result<(), StorageError> {
    let global = shared.opts.max_series;
    let tenant_limit = shared.opts.tenant_limit(op.tenant());
    if global == 0 && tenant_limit == 0 {
        return Ok(());
    }
    let mut unowned = op.unowned_series(head);
    unowned.retain(|u| !pending_new.contains(&u.labels));
    if unowned.is_empty() {
        return Ok(());
    }
    let creating = unowned.iter().filter(|u| !u.exists).count();
    if global > 0 && creating > 0 && head.series_count() + *pending_created + creating > global {
        shared.metrics.series_limit_rejections.inc();
        let metric = unowned
            .iter()
            .find(|u| !u.exists)
            .map_or("", |u| u.labels.name());
        return Err(StorageError::SeriesLimit {
            metric: metric.to_string(),
            limit: global,
        });
    }
    let tenant = op.tenant().to_string();
    let (events, mut unowned): (Vec<Unowned>, Vec<Unowned>) =
        unowned.into_iter().partition(|u| u.event);
    if tenant_limit > 0 {
        let owned = head.tenant_series(&tenant) + pending_owned.get(&tenant).copied().unwrap_or(0);
        let room = tenant_limit.saturating_sub(owned);
        if unowned.len() > room {
            let refused = unowned.split_off(room);
            let err = StorageError::TenantSeriesLimit {
                tenant: tenant.clone(),
                metric: refused[0].labels.name().to_string(),
                limit: tenant_limit,
                rejected: refused.len(),
            };
            shared.metrics.series_limit_rejections.inc();
            shared
                .metrics
                .tenant_series_rejected
                .with_label_values(&[&tenant])
                .inc_by(refused.len() as u64);
            match op {
                AppendOp::Series { .. } => return Err(err),
                AppendOp::Agent { agent, batch, .. } => {
                    tracing::warn!(agent = %agent, error = %err, "agent batch stored without the series over its tenant's limit");
                    // Every occurrence of a refused series goes, should a batch repeat one.
                    let refused: HashSet<&Labels> = refused.iter().map(|u| &u.labels).collect();
                    let drop: HashSet<usize> = (0..batch.series_len())
                        .filter(|&i| refused.contains(&batch.labels(i)))
                        .collect();
                    op.drop_agent_series(&drop)?;
                }
            }
        }
    }
    *pending_created += unowned.iter().chain(&events).filter(|u| !u.exists).count();
    *pending_owned.entry(tenant).or_default() += unowned.len();
    pending_new.extend(unowned.into_iter().chain(events).map(|u| u.labels));
    Ok(())
}

/// Applies an accepted group's samples and events to the head, returning each caller's
/// answer. Dedupe state is recorded separately, once the group is durable.
pub(super) fn apply_group(shared: &Shared, accepted: &[Accepted], now: i64) -> Vec<AppendReply> {
    let m = &shared.metrics;
    let mut results = Vec::with_capacity(accepted.len());
    let mut head = write(&shared.head);
    for a in accepted {
        let r = match &a.op {
            AppendOp::Agent {
                agent,
                stream_id,
                batch,
                tenant,
                ..
            } => {
                let t = head.tenant_id(tenant);
                let (c, events) =
                    shared.apply_agent_batch(&mut head, agent, *stream_id, batch, now, Some(t));
                m.batches_appended.inc();
                shared.record_counts(&c);
                m.event_samples_appended.inc_by(events.appended);
                AppendReply::Agent(AppendOutcome::Stored {
                    samples: c.appended as usize,
                })
            }
            AppendOp::Series { batch, tenant, .. } => {
                let t = head.tenant_id(tenant);
                let c = shared.apply_series(&mut head, tenant, batch, now, Some(t));
                shared.record_counts(&c);
                AppendReply::Series(c)
            }
        };
        results.push(r);
    }
    shared.update_head_gauges(&head);
    results
}

/// Largest payload accepted in one append (leaves room for the record header fields).
pub(super) const MAX_PAYLOAD_BYTES: usize = wal::MAX_RECORD_BYTES - 64 * 1024;
/// A group stops collecting requests at this many payload bytes.
pub(super) const MAX_GROUP_BYTES: usize = 32 << 20;
/// How often retention runs.
pub(super) const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// The writer wakes at least this often to run maintenance.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// The single writer: owns the WAL and is the only mutator of the head and dedupe state.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) wal: Wal,
    pub(super) rx: mpsc::Receiver<Request>,
    pub(super) dir: PathBuf,
    pub(super) blocks_dir: PathBuf,
    pub(super) failed: Option<String>,
    pub(super) wal_stats: Arc<WalStats>,
    /// WAL segment the newest checkpoint resumes at.
    pub(super) checkpoint_segment: u64,
    pub(super) last_checkpoint: Instant,
    /// When retention last ran; `None` runs it at the first opportunity.
    pub(super) last_retention: Option<Instant>,
    pub(super) bytes_since_checkpoint: u64,
    /// Size of the last checkpoint: the WAL may grow at least this much before the next,
    /// so rewriting the head costs no more than the WAL it replaces.
    pub(super) last_checkpoint_bytes: u64,
    /// Held while the writer runs: one process per data directory.
    pub(super) _lock: std::fs::File,
    /// Head data before this time has been compacted.
    pub(super) compacted_before: i64,
    /// Number of the next block file.
    pub(super) next_block: u64,
    /// No automatic compaction before this instant (backoff after a failure).
    pub(super) compaction_backoff: Option<Instant>,
    /// No automatic checkpoint before this instant (backoff after a failure).
    pub(super) checkpoint_backoff: Option<Instant>,
    /// Expired block files to delete once a checkpoint no longer lists them.
    pub(super) pending_delete: Vec<String>,
}

pub(super) struct Accepted {
    pub(super) op: AppendOp,
    pub(super) reply: Reply<AppendReply>,
    pub(super) append_ms: i64,
}

impl Writer {
    pub(super) fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "storage writer cannot start its timer runtime");
                return;
            }
        };
        loop {
            let first = rt.block_on(async { tokio::time::timeout(TICK, self.rx.recv()).await });
            let first = match first {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    self.maintenance();
                    continue;
                }
            };
            let mut group = vec![first];
            let mut bytes = 0usize;
            while bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(r) => {
                        if let Request::Append { op, .. } = &r {
                            bytes += match op.as_ref() {
                                AppendOp::Agent { payload, .. }
                                | AppendOp::Series { payload, .. } => payload.len(),
                            };
                        }
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            if self.process_group(group) {
                break;
            }
            self.maintenance();
        }
    }

    /// Writes and applies one group; returns true when asked to close.
    pub(super) fn process_group(&mut self, group: Vec<Request>) -> bool {
        let shared = self.shared.clone();
        let mut buf = Vec::new();
        let mut accepted: Vec<Accepted> = Vec::new();
        let mut checkpoints = Vec::new();
        let mut compactions = Vec::new();
        let mut close = None;
        let now = now_ms();
        let mut appends = Vec::new();
        for req in group {
            match req {
                Request::Append { op, reply } => appends.push((*op, reply)),
                Request::Checkpoint { reply } => checkpoints.push(reply),
                Request::Compact { reply } => compactions.push(reply),
                Request::Close { reply } => close = Some(reply),
            }
        }
        // Sequences accepted earlier in this group, and later requests repeating them: those
        // are answered only once the first is durable, with its outcome.
        let mut pending_seqs: HashMap<(String, u64, u64), usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        // Series created or claimed by earlier appends of this group, and how many of them
        // are new to the head and how many each tenant claimed.
        let mut pending_new: HashSet<Labels> = HashSet::new();
        let mut pending_created = 0usize;
        let mut pending_owned: HashMap<String, usize> = HashMap::new();
        let head = read(&shared.head);
        let mut keep = vec![false; appends.len()];
        let mut early: Vec<(usize, Result<AppendReply, StorageError>)> = Vec::new();
        for (i, (op, _)) in appends.iter_mut().enumerate() {
            if let Some(f) = &self.failed {
                early.push((i, Err(StorageError::Failed(f.clone()))));
                continue;
            }
            if let AppendOp::Agent {
                agent,
                stream_id,
                seq,
                ..
            } = op
            {
                if shared.is_seen(agent, *stream_id, *seq) {
                    shared.metrics.batches_duplicate.inc();
                    early.push((i, Ok(AppendReply::Agent(AppendOutcome::Duplicate))));
                    continue;
                }
                let key = (agent.clone(), *stream_id, *seq);
                if let Some(&first) = pending_seqs.get(&key) {
                    repeats.push((i, first));
                    continue;
                }
                pending_seqs.insert(key, i);
            }
            if let Err(e) = check_series_limits(
                &shared,
                &head,
                op,
                &mut pending_new,
                &mut pending_created,
                &mut pending_owned,
            ) {
                early.push((i, Err(e)));
                if let AppendOp::Agent {
                    agent,
                    stream_id,
                    seq,
                    ..
                } = op
                {
                    pending_seqs.remove(&(agent.clone(), *stream_id, *seq));
                }
                continue;
            }
            match op {
                AppendOp::Agent {
                    agent,
                    stream_id,
                    seq,
                    payload,
                    ..
                } => WalRecord::AgentBatch {
                    agent,
                    stream_id: *stream_id,
                    seq: *seq,
                    append_ms: now,
                    payload,
                }
                .encode_into(&mut buf),
                AppendOp::Series { payload, .. } => {
                    WalRecord::Series { payload }.encode_into(&mut buf)
                }
            }
            keep[i] = true;
        }
        drop(head);
        drop(pending_seqs);
        drop(pending_new);
        let mut replies: Vec<Option<Reply<AppendReply>>> = Vec::with_capacity(appends.len());
        let mut ops = Vec::with_capacity(appends.len());
        for (op, reply) in appends {
            ops.push(op);
            replies.push(Some(reply));
        }
        for (i, r) in early {
            if let Some(reply) = replies[i].take() {
                let _ = reply.send(r);
            }
        }
        let mut accepted_index = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            if keep[i] {
                if let Some(reply) = replies[i].take() {
                    accepted_index.push(i);
                    accepted.push(Accepted {
                        op,
                        reply,
                        append_ms: now,
                    });
                }
            }
        }
        if !accepted.is_empty() {
            let results = self.commit(&buf, &accepted, now);
            let mut outcome: HashMap<usize, Result<(), StorageError>> = HashMap::new();
            for ((a, r), i) in accepted.into_iter().zip(results).zip(accepted_index) {
                outcome.insert(
                    i,
                    match &r {
                        Ok(_) => Ok(()),
                        Err(e) => Err(copy_error(e)),
                    },
                );
                let _ = a.reply.send(r);
            }
            for (i, first) in repeats {
                let r = match outcome.get(&first) {
                    Some(Ok(())) => {
                        shared.metrics.batches_duplicate.inc();
                        Ok(AppendReply::Agent(AppendOutcome::Duplicate))
                    }
                    Some(Err(e)) => Err(copy_error(e)),
                    None => Err(StorageError::Failed(
                        "lost track of a repeated batch".into(),
                    )),
                };
                if let Some(reply) = replies[i].take() {
                    let _ = reply.send(r);
                }
            }
        }
        for reply in compactions {
            let r = self.retention().and_then(|()| self.compact(true));
            let _ = reply.send(r);
        }
        for reply in checkpoints {
            let r = self.checkpoint();
            let _ = reply.send(r);
        }
        if let Some(reply) = close {
            let r = if self.failed.is_none() && self.bytes_since_checkpoint > 0 {
                self.checkpoint()
            } else {
                Ok(())
            };
            let _ = reply.send(r);
            return true;
        }
        false
    }

    /// Writes a group to the WAL, then applies it to the head while another thread
    /// `fdatasync`s it, and answers the callers once both are done. Readers may see the group
    /// a moment before it is durable; if the sync fails the storage is poisoned (every later
    /// append fails), so nothing is ever acknowledged, as stored or as a duplicate, without
    /// being durable.
    pub(super) fn commit(
        &mut self,
        buf: &[u8],
        accepted: &[Accepted],
        now: i64,
    ) -> Vec<Result<AppendReply, StorageError>> {
        let shared = self.shared.clone();
        let m = &shared.metrics;
        if let Err(e) = self.wal.write_group(buf) {
            m.wal_write_failures.inc();
            let msg = format!("writing WAL segment {}: {e}", self.wal.index());
            tracing::error!(error = %msg, "WAL write failed");
            if e.fatal {
                self.poison(msg.clone());
            }
            self.publish_wal_stats();
            return accepted
                .iter()
                .map(|_| {
                    Err(if e.fatal {
                        StorageError::Failed(msg.clone())
                    } else {
                        StorageError::io(
                            format!("writing WAL segment {}", self.wal.index()),
                            std::io::Error::new(e.source.kind(), e.source.to_string()),
                        )
                    })
                })
                .collect();
        }
        let started = Instant::now();
        let wal = &self.wal;
        let (synced, results) = std::thread::scope(|scope| {
            let sync = scope.spawn(move || wal.sync().map(|()| started.elapsed()));
            let results = apply_group(&shared, accepted, now);
            let synced = sync
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")));
            (synced, results)
        });
        let out = match synced {
            Ok(elapsed) => {
                m.wal_fsyncs.inc();
                m.wal_fsync_seconds.observe(elapsed.as_secs_f64());
                m.wal_bytes_written.inc_by(buf.len() as u64);
                m.wal_records.inc_by(accepted.len() as u64);
                m.group_commit_records.observe(accepted.len() as f64);
                self.bytes_since_checkpoint += buf.len() as u64;
                // Durable now: only from here on may a resend be answered as a duplicate.
                for (a, r) in accepted.iter().zip(&results) {
                    if let (
                        AppendOp::Agent {
                            agent,
                            stream_id,
                            seq,
                            ..
                        },
                        AppendReply::Agent(AppendOutcome::Stored { samples }),
                    ) = (&a.op, r)
                    {
                        let d = Delivery {
                            agent,
                            stream_id: *stream_id,
                            seq: *seq,
                            append_ms: a.append_ms,
                        };
                        shared.record_delivery(d, *samples as u64);
                    }
                }
                results.into_iter().map(Ok).collect()
            }
            Err(e) => {
                m.wal_write_failures.inc();
                let msg = format!("fdatasync of WAL segment {}: {e}", self.wal.index());
                tracing::error!(error = %msg, "WAL sync failed; refusing all further writes");
                self.poison(msg.clone());
                accepted
                    .iter()
                    .map(|_| Err(StorageError::Failed(msg.clone())))
                    .collect()
            }
        };
        self.publish_wal_stats();
        out
    }

    pub(super) fn poison(&mut self, msg: String) {
        *lock(&self.shared.poisoned) = Some(msg.clone());
        self.failed = Some(msg);
    }

    pub(super) fn publish_wal_stats(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let bytes = self.wal.total_bytes();
        let segments = self.wal.segment_count() as u64;
        self.wal_stats.bytes.store(bytes, Relaxed);
        self.wal_stats.segments.store(segments, Relaxed);
        self.shared.metrics.wal_size_bytes.set(bytes as i64);
        self.shared.metrics.wal_segments.set(segments as i64);
    }
}
