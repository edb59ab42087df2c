//! The write-ahead log: numbered segment files in `<data>/wal/`, each a sequence of records
//! framed as `[u32 LE body length][u32 LE CRC-32 of body][body]`. A segment always starts on
//! a record boundary, so segments are independent: on replay a torn or corrupt record ends
//! its segment (the file is truncated there, logged and counted) and replay continues with
//! the next segment. Writes append whole groups of records and are made durable with one
//! `fdatasync`; a failed write is cut back off so no garbage precedes later records.
//!
//! Record bodies start with a kind byte:
//! - `1` agent batch: agent name, stream id, sequence, append time, then the payload exactly
//!   as the agent sent it (snappy-compressed bincode), so dedupe state and data commit together;
//! - `2` series: a payload in the same format, from remote_write or recording rules.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::encoding::{Dec, DecodeError, Enc};

/// Largest record body accepted, in bytes; a larger length on disk means corruption.
pub(crate) const MAX_RECORD_BYTES: usize = 256 << 20;
const HEADER_BYTES: usize = 8;
const KIND_AGENT_BATCH: u8 = 1;
const KIND_SERIES: u8 = 2;

/// One decoded WAL record, borrowing from the segment bytes.
#[derive(Debug, PartialEq)]
pub(crate) enum WalRecord<'a> {
    /// A batch from an agent, with the identity used for exactly-once delivery.
    AgentBatch {
        agent: &'a str,
        stream_id: u64,
        seq: u64,
        append_ms: i64,
        payload: &'a [u8],
    },
    /// Series written through remote_write or by recording rules.
    Series { payload: &'a [u8] },
}

impl<'a> WalRecord<'a> {
    /// Appends this record, framed and checksummed, to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; HEADER_BYTES]);
        let mut enc = Enc {
            buf: std::mem::take(buf),
        };
        match self {
            WalRecord::AgentBatch {
                agent,
                stream_id,
                seq,
                append_ms,
                payload,
            } => {
                enc.u8(KIND_AGENT_BATCH);
                enc.str(agent);
                enc.uvarint(*stream_id);
                enc.uvarint(*seq);
                enc.varint(*append_ms);
                enc.buf.extend_from_slice(payload);
            }
            WalRecord::Series { payload } => {
                enc.u8(KIND_SERIES);
                enc.buf.extend_from_slice(payload);
            }
        }
        *buf = enc.buf;
        let body = &buf[start + HEADER_BYTES..];
        let len = body.len() as u32;
        let crc = crc32fast::hash(body);
        buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a record body (without its frame).
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(body);
        match d.u8()? {
            KIND_AGENT_BATCH => {
                let agent = std::str::from_utf8(d.bytes()?)
                    .map_err(|_| DecodeError("agent name is not UTF-8".into()))?;
                let stream_id = d.uvarint()?;
                let seq = d.uvarint()?;
                let append_ms = d.varint()?;
                Ok(WalRecord::AgentBatch {
                    agent,
                    stream_id,
                    seq,
                    append_ms,
                    payload: d.rest(),
                })
            }
            KIND_SERIES => Ok(WalRecord::Series { payload: d.rest() }),
            k => Err(DecodeError(format!("unknown record kind {k}"))),
        }
    }
}

/// A group could not be made durable.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub(crate) struct WalWriteError {
    pub source: io::Error,
    /// True when the WAL's state on disk is unknown and no further writes may be trusted.
    pub fatal: bool,
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    /// Segments whose tail was torn or corrupt and has been truncated.
    pub truncations: u64,
    /// Highest segment index seen, if any.
    pub last_index: Option<u64>,
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:010}"))
}

/// Segment files in `dir`, sorted by index.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(i) = name.parse::<u64>() {
                out.push((i, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory so that created, renamed or removed entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads every record of segments with index `>= from`, calling `f(segment, body)` in order.
/// A torn or corrupt record truncates its segment at that point.
pub(crate) fn replay(
    dir: &Path,
    from: u64,
    mut f: impl FnMut(u64, &[u8]),
) -> io::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for (index, path) in list_segments(dir)? {
        report.last_index = Some(index);
        if index < from {
            continue;
        }
        report.segments += 1;
        let data = fs::read(&path)?;
        let mut off = 0usize;
        let mut problem: Option<String> = None;
        while off < data.len() {
            let rest = &data[off..];
            if rest.len() < HEADER_BYTES {
                problem = Some(format!("{} trailing bytes, short of a header", rest.len()));
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
            if len == 0 || len > MAX_RECORD_BYTES {
                problem = Some(format!("invalid record length {len}"));
                break;
            }
            if rest.len() < HEADER_BYTES + len {
                problem = Some(format!(
                    "record of {len} bytes cut off after {} bytes",
                    rest.len() - HEADER_BYTES
                ));
                break;
            }
            let body = &rest[HEADER_BYTES..HEADER_BYTES + len];
            if crc32fast::hash(body) != crc {
                problem = Some(format!("checksum mismatch on a {len}-byte record"));
                break;
            }
            f(index, body);
            report.records += 1;
            off += HEADER_BYTES + len;
        }
        if let Some(problem) = problem {
            tracing::warn!(
                segment = %path.display(),
                offset = off,
                dropped_bytes = data.len() - off,
                "WAL segment has a torn or corrupt tail ({problem}); truncating it"
            );
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(off as u64)?;
            file.sync_all()?;
            report.truncations += 1;
        }
    }
    Ok(report)
}

/// The segment currently being appended to.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    index: u64,
    size: u64,
    segment_bytes: u64,
    /// Bytes in older segments still on disk.
    older_bytes: u64,
    older_segments: Vec<(u64, u64)>,
}

impl Wal {
    /// Opens segment `index` in `dir` for appending (older segments are counted, not
    /// touched). When the newest existing segment is empty it is reused instead.
    pub fn create(dir: &Path, index: u64, segment_bytes: u64) -> io::Result<Wal> {
        let mut index = index;
        if let Some((last, path)) = list_segments(dir)?.pop() {
            if last < index && fs::metadata(&path)?.len() == 0 {
                index = last;
            }
        }
        let mut older_segments = Vec::new();
        for (i, path) in list_segments(dir)? {
            if i < index {
                older_segments.push((i, fs::metadata(&path)?.len()));
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, index))?;
        let size = file.metadata()?.len();
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            index,
            size,
            segment_bytes,
            older_bytes: older_segments.iter().map(|(_, b)| b).sum(),
            older_segments,
        })
    }

    /// Index of the segment being written.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Bytes in all segments on disk.
    pub fn total_bytes(&self) -> u64 {
        self.older_bytes + self.size
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.older_segments.len() + 1
    }

    /// Appends a group of framed records (not yet durable: see [`Wal::sync`]). A failed
    /// write is cut back off the segment; if even that fails the error is fatal.
    pub fn write_group(&mut self, buf: &[u8]) -> Result<(), WalWriteError> {
        if self.size >= self.segment_bytes {
            self.rotate().map_err(|source| WalWriteError {
                source,
                fatal: false,
            })?;
        }
        if let Err(source) = self.file.write_all(buf) {
            // Never leave a partial group in front of later records.
            let fatal = self
                .file
                .set_len(self.size)
                .and_then(|()| self.file.sync_all())
                .is_err();
            return Err(WalWriteError { source, fatal });
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Makes everything written so far durable with one `fdatasync`. Takes `&self`, so it
    /// can run on another thread while the writer applies the group to the head. A failure
    /// is fatal: afterwards the kernel may have dropped the dirty pages.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// [`Wal::write_group`] followed by [`Wal::sync`].
    #[cfg(test)]
    pub fn write_durably(&mut self, buf: &[u8]) -> Result<(), WalWriteError> {
        self.write_group(buf)?;
        self.sync().map_err(|source| WalWriteError {
            source,
            fatal: true,
        })
    }

    /// Closes the current segment and starts the next one; returns the new index.
    pub fn rotate(&mut self) -> io::Result<u64> {
        self.file.sync_all()?;
        let next = self.index + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))?;
        sync_dir(&self.dir)?;
        self.older_segments.push((self.index, self.size));
        self.older_bytes += self.size;
        self.file = file;
        self.index = next;
        self.size = 0;
        Ok(next)
    }

    /// Deletes segments with index below `index` (their contents are checkpointed).
    pub fn remove_before(&mut self, index: u64) -> io::Result<usize> {
        let mut removed = 0;
        let mut keep = Vec::new();
        for (i, bytes) in std::mem::take(&mut self.older_segments) {
            if i < index {
                match fs::remove_file(segment_path(&self.dir, i)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        keep.push((i, bytes));
                        self.older_segments = keep;
                        return Err(e);
                    }
                }
                self.older_bytes -= bytes;
                removed += 1;
            } else {
                keep.push((i, bytes));
            }
        }
        self.older_segments = keep;
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::TempDir;

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 10 + i * 7]).collect()
    }

    fn write_all(dir: &Path, recs: &[Vec<u8>]) -> Wal {
        let mut wal = Wal::create(dir, 1, 1 << 20).unwrap();
        for (i, r) in recs.iter().enumerate() {
            let mut buf = Vec::new();
            WalRecord::AgentBatch {
                agent: "a",
                stream_id: 1,
                seq: i as u64,
                append_ms: 5,
                payload: r,
            }
            .encode_into(&mut buf);
            wal.write_durably(&buf).unwrap();
        }
        wal
    }

    fn read_back(dir: &Path) -> (Vec<(u64, Vec<u8>)>, ReplayReport) {
        let mut got = Vec::new();
        let rep = replay(dir, 0, |_, body| match WalRecord::decode(body).unwrap() {
            WalRecord::AgentBatch { seq, payload, .. } => got.push((seq, payload.to_vec())),
            WalRecord::Series { .. } => panic!("unexpected kind"),
        })
        .unwrap();
        (got, rep)
    }

    #[test]
    fn wal_round_trips_records_across_rotation() {
        let tmp = TempDir::new("wal-rt");
        let recs = records(20);
        let mut wal = write_all(tmp.path(), &recs[..10]);
        wal.rotate().unwrap();
        for (i, r) in recs.iter().enumerate().skip(10) {
            let mut buf = Vec::new();
            WalRecord::AgentBatch {
                agent: "a",
                stream_id: 1,
                seq: i as u64,
                append_ms: 5,
                payload: r,
            }
            .encode_into(&mut buf);
            WalRecord::Series { payload: b"xyz" }.encode_into(&mut buf);
            wal.write_durably(&buf).unwrap();
        }
        assert_eq!(wal.segment_count(), 2);
        let mut seen = Vec::new();
        let mut series = 0;
        let rep = replay(tmp.path(), 0, |seg, body| {
            match WalRecord::decode(body).unwrap() {
                WalRecord::AgentBatch { seq, payload, .. } => {
                    seen.push((seg, seq, payload.to_vec()))
                }
                WalRecord::Series { payload } => {
                    assert_eq!(payload, b"xyz");
                    series += 1;
                }
            }
        })
        .unwrap();
        assert_eq!(rep.truncations, 0);
        assert_eq!(rep.records, 30);
        assert_eq!(series, 10);
        assert_eq!(seen.len(), 20);
        for (i, (seg, seq, payload)) in seen.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(payload, &recs[i]);
            assert_eq!(*seg, if i < 10 { 1 } else { 2 });
        }
        wal.remove_before(2).unwrap();
        assert_eq!(list_segments(tmp.path()).unwrap().len(), 1);
    }

    #[test]
    fn torn_tail_mid_record_is_truncated_and_counted() {
        let tmp = TempDir::new("wal-torn");
        let recs = records(5);
        let wal = write_all(tmp.path(), &recs);
        drop(wal);
        let path = segment_path(tmp.path(), 1);
        let full = fs::metadata(&path).unwrap().len();
        // Cut the last record in half.
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 20)
            .unwrap();
        let (got, rep) = read_back(tmp.path());
        assert_eq!(rep.truncations, 1);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].1, recs[3]);
        // The file now ends exactly after record 3; a second replay is clean.
        let (got2, rep2) = read_back(tmp.path());
        assert_eq!(rep2.truncations, 0);
        assert_eq!(got2, got);
    }

    #[test]
    fn garbage_appended_after_the_last_record_is_truncated() {
        let tmp = TempDir::new("wal-garbage");
        let recs = records(3);
        drop(write_all(tmp.path(), &recs));
        let path = segment_path(tmp.path(), 1);
        let clean = fs::metadata(&path).unwrap().len();
        for garbage in [&[0u8; 3][..], &[0u8; 64][..], &[0xabu8; 100][..]] {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(garbage).unwrap();
            drop(f);
            let (got, rep) = read_back(tmp.path());
            assert_eq!(rep.truncations, 1, "garbage of {} bytes", garbage.len());
            assert_eq!(got.len(), 3);
            assert_eq!(fs::metadata(&path).unwrap().len(), clean);
        }
    }

    #[test]
    fn crc_corruption_in_the_middle_drops_the_rest_of_that_segment_only() {
        let tmp = TempDir::new("wal-crc");
        let recs = records(6);
        let mut wal = write_all(tmp.path(), &recs[..3]);
        wal.rotate().unwrap();
        for (i, r) in recs.iter().enumerate().skip(3) {
            let mut buf = Vec::new();
            WalRecord::AgentBatch {
                agent: "a",
                stream_id: 1,
                seq: i as u64,
                append_ms: 5,
                payload: r,
            }
            .encode_into(&mut buf);
            wal.write_durably(&buf).unwrap();
        }
        drop(wal);
        // Flip one payload byte of the second record of segment 1.
        let path = segment_path(tmp.path(), 1);
        let mut data = fs::read(&path).unwrap();
        let first_len = HEADER_BYTES + u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
        // The third record stays intact but follows the bad one, so it is dropped too.
        data[first_len + HEADER_BYTES + 12] ^= 0x40;
        fs::write(&path, &data).unwrap();
        let (got, rep) = read_back(tmp.path());
        assert_eq!(rep.truncations, 1);
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![0, 3, 4, 5]);
    }

    #[test]
    fn failed_decode_of_unknown_kind_is_an_error() {
        assert!(WalRecord::decode(&[9, 1, 2]).is_err());
        assert!(WalRecord::decode(&[]).is_err());
        assert!(WalRecord::decode(&[1, 200]).is_err());
    }
}
