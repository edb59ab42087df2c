//! Checkpoints: a durable snapshot of everything the WAL segments before a given index
//! contributed — the head's series and chunks, the per-(agent, stream) dedupe state, recent
//! events, and the list of live blocks — so those segments can be deleted and startup only
//! replays the WAL written since. A checkpoint file `checkpoint.<next segment>` is written to
//! a temporary name, fsynced and renamed, so it is either complete or absent; it ends in a
//! CRC-32 of its body. The newest readable checkpoint wins; its block list is authoritative.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_shared::model::{Event, Labels};

use super::chunk::ChunkAppender;
use super::encoding::{Dec, DecodeError, Enc};
use super::head::{Head, SealedChunk};
use super::wal::sync_dir;

const MAGIC: &[u8; 8] = b"VGCKPT02";
const PREFIX: &str = "checkpoint.";

/// Dedupe state and counters of one (agent, stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRecord {
    pub agent: String,
    pub stream_id: u64,
    /// Every sequence below this has been stored.
    pub below: u64,
    /// Stored sequences at or above `below`.
    pub above: Vec<u64>,
    pub last_append_ms: i64,
    pub batches: u64,
    pub samples: u64,
}

/// One series as restored from a checkpoint.
#[derive(Debug)]
pub(crate) struct SeriesRecord {
    pub labels: Labels,
    pub max_t: i64,
    pub last_bits: u64,
    pub sealed: Vec<SealedChunk>,
    pub open: Option<ChunkAppender>,
    pub ooo: BTreeMap<i64, u64>,
}

/// A decoded checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Checkpoint {
    /// Replay resumes at this WAL segment.
    pub next_segment: u64,
    /// Head data before this time has been compacted into blocks.
    pub compacted_before: i64,
    pub blocks: Vec<String>,
    pub streams: Vec<StreamRecord>,
    pub events: Vec<(String, Event)>,
    pub series: Vec<SeriesRecord>,
}

/// What a checkpoint is made of, borrowed from the live structures.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    pub next_segment: u64,
    pub compacted_before: i64,
    pub blocks: &'a [String],
    pub streams: &'a [StreamRecord],
    pub events: &'a [(String, Event)],
    pub head: &'a Head,
}

/// Streams a checkpoint to `w`, a megabyte at a time, so a large head is never copied
/// whole into memory.
pub(crate) fn encode_to(w: &mut impl Write, p: &Parts<'_>) -> io::Result<u64> {
    const FLUSH_AT: usize = 1 << 20;
    let mut crc = crc32fast::Hasher::new();
    let mut written = MAGIC.len() as u64;
    w.write_all(MAGIC)?;
    let mut flush = |e: &mut Enc, w: &mut dyn Write| -> io::Result<()> {
        crc.update(&e.buf);
        w.write_all(&e.buf)?;
        written += e.buf.len() as u64;
        e.buf.clear();
        Ok(())
    };
    let mut e = Enc::with_capacity(FLUSH_AT + (1 << 16));
    e.uvarint(p.next_segment);
    e.varint(p.compacted_before);
    e.uvarint(p.blocks.len() as u64);
    for b in p.blocks {
        e.str(b);
    }
    e.uvarint(p.streams.len() as u64);
    for s in p.streams {
        e.str(&s.agent);
        e.uvarint(s.stream_id);
        e.uvarint(s.below);
        e.uvarint(s.above.len() as u64);
        for &a in &s.above {
            e.uvarint(a);
        }
        e.varint(s.last_append_ms);
        e.uvarint(s.batches);
        e.uvarint(s.samples);
        if e.buf.len() >= FLUSH_AT {
            flush(&mut e, w)?;
        }
    }
    e.uvarint(p.events.len() as u64);
    for (agent, ev) in p.events {
        e.str(agent);
        e.event(ev);
    }
    e.uvarint(p.head.series_count() as u64);
    for s in p.head.iter() {
        e.labels(&s.labels);
        e.varint(s.max_t);
        e.u64_le(s.last_bits);
        e.uvarint(s.sealed.len() as u64);
        for c in &s.sealed {
            e.varint(c.mint);
            e.varint(c.maxt);
            e.uvarint(u64::from(c.count));
            e.bytes(&c.data);
        }
        match s.open.as_ref().filter(|o| o.count() > 0) {
            Some(o) => {
                e.u8(1);
                e.bytes(o.bytes());
            }
            None => e.u8(0),
        }
        e.uvarint(s.ooo.len() as u64);
        for (&t, &v) in &s.ooo {
            e.varint(t);
            e.u64_le(v);
        }
        if e.buf.len() >= FLUSH_AT {
            flush(&mut e, w)?;
        }
    }
    flush(&mut e, w)?;
    w.write_all(&crc.finalize().to_le_bytes())?;
    Ok(written + 4)
}

/// Encodes a checkpoint into memory.
#[cfg(test)]
pub(crate) fn encode(p: &Parts<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_to(&mut out, p).expect("writing to a Vec cannot fail");
    out
}

/// Decodes a checkpoint file's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(DecodeError("not a checkpoint (bad magic)".into()));
    }
    let body = &bytes[MAGIC.len()..bytes.len() - 4];
    let mut tail = Dec::new(&bytes[bytes.len() - 4..]);
    if crc32fast::hash(body) != tail.u32_le()? {
        return Err(DecodeError("checksum mismatch".into()));
    }
    let mut d = Dec::new(body);
    let mut ck = Checkpoint {
        next_segment: d.uvarint()?,
        compacted_before: d.varint()?,
        ..Default::default()
    };
    for _ in 0..d.len()? {
        ck.blocks.push(d.string()?);
    }
    for _ in 0..d.len()? {
        let agent = d.string()?;
        let stream_id = d.uvarint()?;
        let below = d.uvarint()?;
        let mut above = Vec::new();
        for _ in 0..d.len()? {
            above.push(d.uvarint()?);
        }
        ck.streams.push(StreamRecord {
            agent,
            stream_id,
            below,
            above,
            last_append_ms: d.varint()?,
            batches: d.uvarint()?,
            samples: d.uvarint()?,
        });
    }
    for _ in 0..d.len()? {
        let agent = d.string()?;
        ck.events.push((agent, d.event()?));
    }
    for _ in 0..d.len()? {
        let labels = d.labels()?;
        let max_t = d.varint()?;
        let last_bits = d.u64_le()?;
        let mut sealed = Vec::new();
        for _ in 0..d.len()? {
            let mint = d.varint()?;
            let maxt = d.varint()?;
            let count = u16::try_from(d.uvarint()?)
                .map_err(|_| DecodeError("chunk sample count out of range".into()))?;
            sealed.push(SealedChunk {
                mint,
                maxt,
                count,
                data: Arc::from(d.bytes()?),
            });
        }
        let open = match d.u8()? {
            0 => None,
            _ => Some(
                ChunkAppender::from_bytes(d.bytes()?)
                    .map_err(|e| DecodeError(format!("open chunk: {e}")))?,
            ),
        };
        let mut ooo = BTreeMap::new();
        for _ in 0..d.len()? {
            let t = d.varint()?;
            ooo.insert(t, d.u64_le()?);
        }
        ck.series.push(SeriesRecord {
            labels,
            max_t,
            last_bits,
            sealed,
            open,
            ooo,
        });
    }
    if !d.is_empty() {
        return Err(DecodeError("trailing bytes".into()));
    }
    Ok(ck)
}

fn checkpoint_path(dir: &Path, next_segment: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{next_segment:010}"))
}

/// Checkpoint files in `dir`, newest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix(PREFIX) {
            if let Ok(i) = n.parse::<u64>() {
                out.push((i, entry.path()));
            } else if n.ends_with(".tmp") {
                // A checkpoint that never finished: remove it.
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// Durably writes a checkpoint and removes older ones; returns its size.
pub(crate) fn write(dir: &Path, p: &Parts<'_>) -> io::Result<u64> {
    let path = checkpoint_path(dir, p.next_segment);
    let tmp = dir.join(format!("{PREFIX}{:010}.tmp", p.next_segment));
    let res = (|| -> io::Result<u64> {
        let mut w = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let size = encode_to(&mut w, p)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(size)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let size = res?;
    for (i, old) in list(dir)? {
        if i < p.next_segment {
            fs::remove_file(old)?;
        }
    }
    Ok(size)
}

/// Loads the newest readable checkpoint, if any. An unreadable one is logged and skipped;
/// the flag says whether that happened (then blocks it may have listed must be kept).
pub(crate) fn load_latest(dir: &Path) -> io::Result<(Option<Checkpoint>, bool)> {
    let mut skipped = false;
    for (i, path) in list(dir)? {
        let bytes = fs::read(&path)?;
        match decode(&bytes) {
            Ok(ck) if ck.next_segment == i => return Ok((Some(ck), skipped)),
            Ok(_) => tracing::warn!(
                path = %path.display(),
                "checkpoint names a different WAL segment than its file name; skipping it"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "checkpoint is unreadable; falling back to an older one (data it covered may be lost)"
            ),
        }
        skipped = true;
    }
    Ok((None, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::TempDir;

    #[test]
    fn checkpoint_round_trips_and_detects_corruption() {
        let mut head = Head::new(i64::MAX, Default::default());
        let l = Labels::metric("m", &[("a", "b")]);
        let id = head.get_or_create(&l);
        for t in 0..200 {
            head.append(id, t, (t as f64).to_bits(), 1000, i64::MIN);
        }
        head.append(id, 150, 1.5f64.to_bits(), 1000, i64::MIN);
        let streams = vec![StreamRecord {
            agent: "h1".into(),
            stream_id: 3,
            below: 10,
            above: vec![12, 15],
            last_append_ms: 99,
            batches: 12,
            samples: 1000,
        }];
        let events = vec![(
            "h1".to_string(),
            Event {
                timestamp_ms: 5,
                kind: "anomaly".into(),
                labels: Labels::metric("m", &[]),
                fields: vec![("score".into(), "3.2".into())],
            },
        )];
        let blocks = vec!["b1".to_string()];
        let parts = Parts {
            next_segment: 7,
            compacted_before: -5,
            blocks: &blocks,
            streams: &streams,
            events: &events,
            head: &head,
        };
        let bytes = encode(&parts);
        let ck = decode(&bytes).unwrap();
        assert_eq!(ck.next_segment, 7);
        assert_eq!(ck.compacted_before, -5);
        assert_eq!(ck.blocks, vec!["b1".to_string()]);
        assert_eq!(ck.streams, streams);
        assert_eq!(ck.events, events);
        assert_eq!(ck.series.len(), 1);
        let s = &ck.series[0];
        assert_eq!(s.labels, l);
        assert_eq!(s.max_t, 199);
        assert_eq!(s.sealed.len(), 1);
        assert_eq!(s.open.as_ref().map(|o| o.count()), Some(80));
        assert!(s.ooo.is_empty());

        let tmp = TempDir::new("ckpt");
        assert_eq!(write(tmp.path(), &parts).unwrap(), bytes.len() as u64);
        assert_eq!(fs::read(checkpoint_path(tmp.path(), 7)).unwrap(), bytes);
        let mut newer = bytes.clone();
        newer[20] ^= 1;
        fs::write(checkpoint_path(tmp.path(), 9), &newer).unwrap();
        // The corrupt newer one is skipped, the older one loads.
        let (ck, skipped) = load_latest(tmp.path()).unwrap();
        assert!(skipped);
        assert_eq!(ck.unwrap().next_segment, 7);
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
