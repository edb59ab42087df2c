//! Allocation-light reading of batch payloads on the ingest hot path. A payload is
//! snappy-compressed bincode (`vigil_shared::codec::encode_batch`); decoding it into a
//! `Batch` allocates two strings per label per series, which dominated ingest cost. This
//! module decompresses once and walks the bincode bytes, recording label and point positions
//! in flat vectors, so a batch costs a handful of allocations and known series are found by
//! hashing label bytes in place.
//!
//! The reader accepts exactly what `decode_batch` accepts (bincode 2 "standard" config:
//! varint lengths and integers with zigzag for signed, f64 as 8 little-endian bytes, UTF-8
//! checked strings, no trailing bytes); a differential test holds it to that. When it
//! refuses a payload, the caller asks `decode_batch` for the error message, and if
//! `decode_batch` accepts it after all, the batch is re-encoded canonically and read again.

use vigil_shared::codec::{decode_batch, encode_batch, CodecError, MAX_BATCH_BYTES};
#[cfg(test)]
use vigil_shared::model::Series;
use vigil_shared::model::{Batch, Event, Labels, Point};

/// Byte range of one label name or value inside [`ParsedBatch::raw`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// One series of a parsed batch: ranges into the flat label and point vectors.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSeries {
    labels: std::ops::Range<u32>,
    points: std::ops::Range<u32>,
    /// Names strictly ascending and no empty values: usable as is.
    canonical: bool,
}

/// A decoded batch that borrows label bytes from its decompressed buffer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParsedBatch {
    raw: Vec<u8>,
    labels: Vec<(Span, Span)>,
    series: Vec<ParsedSeries>,
    points: Vec<Point>,
    pub events: Vec<Event>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type ReadResult<T> = Result<T, &'static str>;

impl Reader<'_> {
    fn byte(&mut self) -> ReadResult<u8> {
        let b = *self.buf.get(self.pos).ok_or("unexpected end")?;
        self.pos += 1;
        Ok(b)
    }

    fn fixed<const N: usize>(&mut self) -> ReadResult<[u8; N]> {
        let end = self.pos.checked_add(N).ok_or("unexpected end")?;
        let s = self.buf.get(self.pos..end).ok_or("unexpected end")?;
        self.pos = end;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// bincode 2 varint `u64`: one byte below 251, else a marker and 2, 4 or 8 LE bytes.
    fn varint(&mut self) -> ReadResult<u64> {
        match self.byte()? {
            b @ 0..=250 => Ok(u64::from(b)),
            251 => Ok(u64::from(u16::from_le_bytes(self.fixed()?))),
            252 => Ok(u64::from(u32::from_le_bytes(self.fixed()?))),
            253 => Ok(u64::from_le_bytes(self.fixed()?)),
            _ => Err("invalid varint marker"),
        }
    }

    fn len(&mut self) -> ReadResult<usize> {
        usize::try_from(self.varint()?).map_err(|_| "length overflows usize")
    }

    fn i64(&mut self) -> ReadResult<i64> {
        let n = self.varint()?;
        Ok(if n % 2 == 0 {
            (n / 2) as i64
        } else {
            !(n / 2) as i64
        })
    }

    fn f64(&mut self) -> ReadResult<f64> {
        Ok(f64::from_le_bytes(self.fixed()?))
    }

    /// A UTF-8 string, returned as its span in the buffer.
    fn str_span(&mut self) -> ReadResult<Span> {
        let n = self.len()?;
        let end = self.pos.checked_add(n).ok_or("unexpected end")?;
        let s = self.buf.get(self.pos..end).ok_or("unexpected end")?;
        std::str::from_utf8(s).map_err(|_| "string is not UTF-8")?;
        let span = Span {
            start: u32::try_from(self.pos).map_err(|_| "batch too large")?,
            len: u32::try_from(n).map_err(|_| "batch too large")?,
        };
        self.pos = end;
        Ok(span)
    }

    fn string(&mut self) -> ReadResult<String> {
        let sp = self.str_span()?;
        let s = &self.buf[sp.start as usize..(sp.start + sp.len) as usize];
        Ok(String::from_utf8_lossy(s).into_owned())
    }

    fn pairs(&mut self) -> ReadResult<Vec<(String, String)>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push((self.string()?, self.string()?));
        }
        Ok(out)
    }
}

impl ParsedBatch {
    /// Decompresses and reads a payload; `Err` carries the reason in `decode_batch`'s words
    /// when it rejects the payload too.
    pub fn decode(payload: &[u8]) -> Result<ParsedBatch, CodecError> {
        match Self::try_fast(payload) {
            Ok(b) => Ok(b),
            Err(_) => {
                // Let the reference decoder decide and word the error.
                let batch = decode_batch(payload)?;
                tracing::warn!("batch accepted by decode_batch but not by the fast reader");
                Ok(Self::from_batch(&batch))
            }
        }
    }

    /// Builds a parsed batch from a decoded one (re-encodes it canonically).
    pub fn from_batch(batch: &Batch) -> ParsedBatch {
        encode_batch(batch)
            .ok()
            .and_then(|p| Self::try_fast(&p).ok())
            .unwrap_or_default()
    }

    fn try_fast(payload: &[u8]) -> Result<ParsedBatch, &'static str> {
        let len = snap::raw::decompress_len(payload).map_err(|_| "bad snappy header")?;
        if len > MAX_BATCH_BYTES {
            return Err("too large");
        }
        let raw = snap::raw::Decoder::new()
            .decompress_vec(payload)
            .map_err(|_| "bad snappy data")?;
        Self::parse_raw(raw)
    }

    /// Reads uncompressed batch bincode (what `encode_batch_raw` writes), keeping it.
    pub fn from_raw(raw: Vec<u8>) -> Result<ParsedBatch, &'static str> {
        Self::parse_raw(raw)
    }

    /// The uncompressed batch bincode the spans point into.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Number of points over all series.
    pub fn points_len(&self) -> usize {
        self.points.len()
    }

    fn parse_raw(raw: Vec<u8>) -> Result<ParsedBatch, &'static str> {
        let mut r = Reader { buf: &raw, pos: 0 };
        let n_series = r.len()?;
        // Each series takes at least two bytes: never trust a count beyond that.
        let mut series = Vec::with_capacity(n_series.min(raw.len() / 2));
        let mut labels = Vec::with_capacity(n_series.min(raw.len() / 2) * 4);
        let mut points = Vec::with_capacity(n_series.min(raw.len() / 2));
        for _ in 0..n_series {
            let n_labels = r.len()?;
            let lstart = labels.len() as u32;
            let mut canonical = true;
            let mut prev: Option<Span> = None;
            for _ in 0..n_labels {
                let name = r.str_span()?;
                let value = r.str_span()?;
                if value.len == 0 {
                    canonical = false;
                }
                if let Some(p) = prev {
                    if bytes(&raw, p) >= bytes(&raw, name) {
                        canonical = false;
                    }
                }
                prev = Some(name);
                labels.push((name, value));
            }
            let n_points = r.len()?;
            let pstart = points.len() as u32;
            for _ in 0..n_points {
                let timestamp_ms = r.i64()?;
                let value = r.f64()?;
                points.push(Point {
                    timestamp_ms,
                    value,
                });
            }
            series.push(ParsedSeries {
                labels: lstart..labels.len() as u32,
                points: pstart..points.len() as u32,
                canonical,
            });
        }
        let n_events = r.len()?;
        let mut events = Vec::with_capacity(n_events.min(1024));
        for _ in 0..n_events {
            let timestamp_ms = r.i64()?;
            let kind = r.string()?;
            let label_pairs = r.pairs()?;
            let fields = r.pairs()?;
            events.push(Event {
                timestamp_ms,
                kind,
                labels: Labels::new(label_pairs),
                fields,
            });
        }
        if r.pos != raw.len() {
            return Err("trailing bytes");
        }
        Ok(ParsedBatch {
            raw,
            labels,
            series,
            points,
            events,
        })
    }

    /// Number of series.
    pub fn series_len(&self) -> usize {
        self.series.len()
    }

    /// Label pairs of series `i` as byte slices, in payload order.
    pub fn label_bytes(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        let range = self.series[i].labels.clone();
        self.labels[range.start as usize..range.end as usize]
            .iter()
            .map(|&(n, v)| (bytes(&self.raw, n), bytes(&self.raw, v)))
    }

    /// True when series `i`'s labels are already canonical (see [`Labels::new`]).
    pub fn is_canonical(&self, i: usize) -> bool {
        self.series[i].canonical
    }

    /// Series `i`'s labels as an owned, normalized label set.
    pub fn labels(&self, i: usize) -> Labels {
        let pairs = self
            .label_bytes(i)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        Labels::new(pairs)
    }

    /// Points of series `i`.
    pub fn points(&self, i: usize) -> &[Point] {
        let r = &self.series[i].points;
        &self.points[r.start as usize..r.end as usize]
    }

    /// True when a series would be left with no labels after normalization.
    pub fn has_empty_series(&self) -> bool {
        (0..self.series.len()).any(|i| self.label_bytes(i).all(|(_, v)| v.is_empty()))
    }

    /// The batch as model types, labels normalized.
    #[cfg(test)]
    pub fn to_batch(&self) -> Batch {
        Batch {
            series: (0..self.series.len())
                .map(|i| Series {
                    labels: self.labels(i),
                    points: self.points(i).to_vec(),
                })
                .collect(),
            events: self.events.clone(),
        }
    }
}

fn bytes(raw: &[u8], s: Span) -> &[u8] {
    &raw[s.start as usize..(s.start + s.len) as usize]
}

/// Unused outside tests, kept to document the equivalence the differential test checks.
#[cfg(test)]
fn normalized(batch: Batch) -> Batch {
    Batch {
        series: batch
            .series
            .into_iter()
            .map(|s| Series {
                labels: Labels::new(s.labels.into_inner()),
                points: s.points,
            })
            .collect(),
        events: batch.events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch(seed: u64) -> Batch {
        let mut x = seed | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut series = Vec::new();
        for i in 0..(rnd() % 20) {
            let mut pairs = vec![("__name__".to_string(), format!("m{}", rnd() % 5))];
            for k in 0..(rnd() % 4) {
                pairs.push((format!("l{k}"), format!("v{}é", rnd() % 300)));
            }
            let points = (0..(rnd() % 5))
                .map(|j| Point {
                    timestamp_ms: (rnd() as i64) >> (rnd() % 64),
                    value: match j % 3 {
                        0 => f64::from_bits(rnd()),
                        1 => i as f64,
                        _ => f64::from_bits(0x7ff0_0000_0000_0002),
                    },
                })
                .collect();
            series.push(Series {
                labels: Labels::new(pairs),
                points,
            });
        }
        let events = (0..(rnd() % 2))
            .map(|_| Event {
                timestamp_ms: -(rnd() as i64 % 1000),
                kind: "anomaly".into(),
                labels: Labels::metric("x", &[("a", "b")]),
                fields: vec![("score".into(), "1".into())],
            })
            .collect();
        Batch { series, events }
    }

    fn same(a: &Batch, b: &Batch) -> bool {
        // Compare values bit-exactly (NaN != NaN under PartialEq).
        a.series.len() == b.series.len()
            && a.events == b.events
            && a.series.iter().zip(&b.series).all(|(x, y)| {
                x.labels == y.labels
                    && x.points.len() == y.points.len()
                    && x.points.iter().zip(&y.points).all(|(p, q)| {
                        p.timestamp_ms == q.timestamp_ms && p.value.to_bits() == q.value.to_bits()
                    })
            })
    }

    #[test]
    fn fast_reader_agrees_with_decode_batch_on_valid_payloads() {
        for seed in 0..300 {
            let b = sample_batch(seed * 7919 + 1);
            let p = encode_batch(&b).unwrap();
            let fast = ParsedBatch::try_fast(&p).expect("fast reader refused a valid payload");
            assert!(same(
                &fast.to_batch(),
                &normalized(decode_batch(&p).unwrap())
            ));
            assert!(same(&fast.to_batch(), &b));
        }
    }

    #[test]
    fn fast_reader_agrees_with_decode_batch_on_damaged_payloads() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for seed in 0..400 {
            let b = sample_batch(seed + 11);
            let raw = bincode::serde::encode_to_vec(&b, bincode::config::standard()).unwrap();
            let mut damaged = raw.clone();
            match rnd() % 3 {
                0 if !damaged.is_empty() => {
                    let i = (rnd() as usize) % damaged.len();
                    damaged[i] = rnd() as u8;
                }
                1 if !damaged.is_empty() => {
                    let n = (rnd() as usize) % damaged.len();
                    damaged.truncate(n);
                }
                _ => damaged.push(rnd() as u8),
            }
            let payload = snap::raw::Encoder::new().compress_vec(&damaged).unwrap();
            let reference = decode_batch(&payload);
            let fast = ParsedBatch::try_fast(&payload);
            match (&reference, &fast) {
                (Ok(r), Ok(f)) => {
                    accepted += 1;
                    assert!(same(&f.to_batch(), &normalized(r.clone())), "seed {seed}");
                }
                (Err(_), Err(_)) => {}
                (r, f) => panic!(
                    "seed {seed}: decode_batch {:?} but fast reader {:?}",
                    r.as_ref().map(|_| ()),
                    f.as_ref().map(|_| ())
                ),
            }
        }
        assert!(
            accepted > 10,
            "too few damaged payloads stayed valid: {accepted}"
        );
    }

    #[test]
    fn non_canonical_labels_are_flagged_and_normalized() {
        let raw: Labels = serde_json::from_str(r#"[["b","1"],["a","2"],["c",""]]"#).unwrap();
        let p = encode_batch(&Batch {
            series: vec![Series {
                labels: raw,
                points: vec![],
            }],
            events: vec![],
        })
        .unwrap();
        let f = ParsedBatch::decode(&p).unwrap();
        assert!(!f.is_canonical(0));
        assert_eq!(
            f.labels(0),
            Labels::new(vec![("a".into(), "2".into()), ("b".into(), "1".into())])
        );
        assert!(!f.has_empty_series());
        assert!(ParsedBatch::decode(&[1, 2, 3]).is_err());
    }
}
