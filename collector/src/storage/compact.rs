//! The writer's maintenance between groups: retention, compaction of old head data into
//! blocks, merging of small blocks, and the checkpoints that commit both and let old WAL
//! segments be deleted.

use super::writer::RETENTION_INTERVAL;
use super::*;

impl Writer {
    /// Periodic work between groups: retention and checkpoints.
    pub(super) fn maintenance(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if !matches!(self.last_retention, Some(t) if t.elapsed() < RETENTION_INTERVAL) {
            if let Err(e) = self.retention() {
                tracing::error!(error = %e, "retention failed");
            }
        }
        if !matches!(self.compaction_backoff, Some(t) if Instant::now() < t)
            && self.compaction_cutoff() > self.compacted_before
        {
            match self.compact(false) {
                Ok(()) => self.compaction_backoff = None,
                Err(e) => {
                    tracing::error!(error = %e, "compaction failed; retrying in a minute");
                    self.compaction_backoff = Some(Instant::now() + RETENTION_INTERVAL);
                }
            }
        }
        let due = self.bytes_since_checkpoint
            >= self
                .shared
                .opts
                .checkpoint_wal_bytes
                .max(self.last_checkpoint_bytes)
            || (self.bytes_since_checkpoint > 0
                && self.last_checkpoint.elapsed() >= self.shared.opts.checkpoint_interval);
        let backing_off = matches!(self.checkpoint_backoff, Some(t) if Instant::now() < t);
        if due && !backing_off {
            match self.checkpoint() {
                Ok(()) => self.checkpoint_backoff = None,
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint failed; WAL segments are kept, retrying in a minute");
                    self.checkpoint_backoff = Some(Instant::now() + RETENTION_INTERVAL);
                }
            }
        }
    }

    pub(super) fn block_range_ms(&self) -> i64 {
        (self.shared.opts.block_duration.as_millis() as i64).max(1)
    }

    /// Head data older than this belongs in blocks: half a block duration ago, aligned down
    /// to a block boundary. Based on the wall clock, so an agent with a clock far in the future
    /// cannot push everything out of the head.
    pub(super) fn compaction_cutoff(&self) -> i64 {
        let range = self.block_range_ms();
        (now_ms() - range / 2).div_euclid(range) * range
    }

    /// Drops head data and whole blocks older than the retention period.
    pub(super) fn retention(&mut self) -> Result<(), StorageError> {
        self.last_retention = Some(Instant::now());
        self.shared.interner.purge();
        let cutoff = self.shared.min_valid_t(now_ms());
        let expired: Vec<Arc<Block>> = {
            let mut blocks = write(&self.shared.blocks);
            let (gone, keep): (Vec<_>, Vec<_>) = blocks.drain(..).partition(|b| b.maxt() < cutoff);
            *blocks = keep;
            let mut head = write(&self.shared.head);
            let removed = head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
            if removed > 0 {
                tracing::debug!(removed, "retention removed expired series from the head");
            }
            gone
        };
        if expired.is_empty() {
            return Ok(());
        }
        for b in &expired {
            tracing::info!(
                block = b.name(),
                maxt = b.maxt(),
                "block expired by retention"
            );
            self.pending_delete.push(b.name().to_string());
        }
        self.publish_block_stats();
        // The files go once a checkpoint no longer lists them.
        self.checkpoint()
    }

    /// Moves head data older than the cutoff into new blocks and merges finished windows of
    /// small blocks, then checkpoints (the commit point: blocks not listed by a checkpoint are
    /// discarded on the next open).
    pub(super) fn compact(&mut self, forced: bool) -> Result<(), StorageError> {
        let moved = self.compact_head(forced)?;
        let merged = self.merge_blocks().inspect_err(|_| {
            self.shared.metrics.compaction_failures.inc();
        })?;
        if moved || merged {
            self.checkpoint()?;
            self.shared.interner.purge();
        }
        Ok(())
    }

    /// How long a merged block may span: 12 block durations (a day by default), at most a
    /// tenth of the retention, as a multiple of the block duration.
    pub(super) fn merge_range_ms(&self) -> i64 {
        let range = self.block_range_ms();
        let retention = self.shared.opts.retention;
        let cap = if retention.is_zero() {
            i64::MAX
        } else {
            (retention.as_millis() as i64 / 10).max(range)
        };
        (range.saturating_mul(12)).min(cap) / range * range
    }

    /// Merges the blocks of every merge window the head can no longer add to into one block,
    /// so the number of blocks (and their in-memory indexes) stays small. Returns whether
    /// anything was merged.
    pub(super) fn merge_blocks(&mut self) -> Result<bool, StorageError> {
        let range = self.merge_range_ms();
        if range <= self.block_range_ms() {
            return Ok(false);
        }
        let blocks: Vec<Arc<Block>> = read(&self.shared.blocks).clone();
        let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in blocks {
            windows
                .entry(b.mint().div_euclid(range))
                .or_default()
                .push(b);
        }
        let mut merged_any = false;
        for (w, group) in windows {
            if group.len() < 2 || (w + 1).saturating_mul(range) > self.compacted_before {
                continue;
            }
            let started = Instant::now();
            let name = format!("{:010}", self.next_block);
            self.next_block += 1;
            let mut by_labels: BTreeMap<Arc<Labels>, Vec<(usize, u32)>> = BTreeMap::new();
            for (bi, b) in group.iter().enumerate() {
                for (si, l) in b.series_labels() {
                    by_labels.entry(l.clone()).or_default().push((bi, si));
                }
            }
            let source = by_labels.into_iter().map(|(labels, refs)| {
                let mut samples = Vec::new();
                for (bi, si) in refs {
                    samples.extend(group[bi].read_samples(si)?);
                }
                block::sort_dedup(&mut samples);
                Ok(block::SeriesData { labels, samples })
            });
            block::write_sorted(&self.blocks_dir, &name, source)?;
            let merged = match Block::open(&self.blocks_dir, &name, &self.shared.interner) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    let _ = std::fs::remove_file(block::path(&self.blocks_dir, &name));
                    return Err(e);
                }
            };
            {
                let mut blocks = write(&self.shared.blocks);
                blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(g, b)));
                blocks.push(merged);
                blocks.sort_by_key(|b| (b.mint(), b.maxt()));
            }
            for b in &group {
                self.pending_delete.push(b.name().to_string());
            }
            merged_any = true;
            tracing::info!(
                block = %name,
                merged = group.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "merged blocks"
            );
        }
        if merged_any {
            self.publish_block_stats();
        }
        Ok(merged_any)
    }

    /// Moves head data older than the cutoff into new blocks; returns whether it made any.
    pub(super) fn compact_head(&mut self, forced: bool) -> Result<bool, StorageError> {
        let range = self.block_range_ms();
        let cutoff = self.compaction_cutoff();
        if !forced && cutoff <= self.compacted_before {
            return Ok(false);
        }
        let started = Instant::now();
        write(&self.shared.head).seal_before(cutoff);
        let groups = read(&self.shared.head).collect_before(cutoff, range);
        if groups.is_empty() {
            self.compacted_before = self.compacted_before.max(cutoff);
            return Ok(false);
        }
        let mut new_blocks: Vec<Arc<Block>> = Vec::new();
        let mut result = Ok(());
        for series in groups.into_values() {
            let name = format!("{:010}", self.next_block);
            self.next_block += 1;
            let written = block::write(&self.blocks_dir, &name, series)
                .and_then(|_| Block::open(&self.blocks_dir, &name, &self.shared.interner));
            match written {
                Ok(b) => new_blocks.push(Arc::new(b)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result {
            self.shared.metrics.compaction_failures.inc();
            for b in &new_blocks {
                let _ = std::fs::remove_file(block::path(&self.blocks_dir, b.name()));
            }
            return Err(e);
        }
        let made = new_blocks.len();
        {
            let mut blocks = write(&self.shared.blocks);
            let mut head = write(&self.shared.head);
            blocks.extend(new_blocks);
            head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
        }
        self.compacted_before = self.compacted_before.max(cutoff);
        self.shared.metrics.compactions.inc();
        self.publish_block_stats();
        tracing::info!(
            cutoff,
            blocks = made,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted head into blocks"
        );
        Ok(true)
    }

    pub(super) fn publish_block_stats(&self) {
        let blocks = read(&self.shared.blocks);
        self.shared.metrics.blocks.set(blocks.len() as i64);
        self.shared
            .metrics
            .block_size_bytes
            .set(blocks.iter().map(|b| b.size()).sum::<u64>() as i64);
    }

    /// Rotates the WAL, snapshots everything written so far into a checkpoint, and deletes
    /// the WAL segments (and older checkpoints) it covers.
    pub(super) fn checkpoint(&mut self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(StorageError::Failed(f.clone()));
        }
        let started = Instant::now();
        let res = self.checkpoint_inner();
        self.last_checkpoint = Instant::now();
        match &res {
            Ok(()) => {
                self.shared.metrics.checkpoints.inc();
                self.wal_stats
                    .checkpoints
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    next_segment = self.checkpoint_segment,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "wrote checkpoint"
                );
            }
            Err(_) => self.shared.metrics.checkpoint_failures.inc(),
        }
        self.publish_wal_stats();
        res
    }

    pub(super) fn checkpoint_inner(&mut self) -> Result<(), StorageError> {
        let next = self
            .wal
            .rotate()
            .map_err(|e| StorageError::io("rotating the WAL for a checkpoint", e))?;
        let cutoff = self.shared.min_valid_t(now_ms());
        let size = {
            let blocks_guard = read(&self.shared.blocks);
            let blocks: Vec<String> = blocks_guard.iter().map(|b| b.name().to_string()).collect();
            let mut head = write(&self.shared.head);
            head.truncate_before(cutoff);
            self.shared.update_head_gauges(&head);
            drop(head);
            let head = read(&self.shared.head);
            let streams = self.shared.stream_records();
            let events: Vec<(String, Event)> = lock(&self.shared.events).iter().cloned().collect();
            let parts = checkpoint::Parts {
                next_segment: next,
                compacted_before: self.compacted_before,
                blocks: &blocks,
                streams: &streams,
                events: &events,
                head: &head,
            };
            checkpoint::write(&self.dir, &parts).map_err(|e| {
                StorageError::io(format!("writing checkpoint in {}", self.dir.display()), e)
            })?
        };
        self.checkpoint_segment = next;
        self.bytes_since_checkpoint = 0;
        self.last_checkpoint_bytes = size;
        for name in std::mem::take(&mut self.pending_delete) {
            if let Err(e) = std::fs::remove_file(block::path(&self.blocks_dir, &name)) {
                tracing::warn!(block = %name, error = %e, "cannot delete expired block");
            }
        }
        self.wal
            .remove_before(next)
            .map_err(|e| StorageError::io("removing checkpointed WAL segments", e))?;
        Ok(())
    }
}
