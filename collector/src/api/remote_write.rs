//! Prometheus remote_write 1.0 wire types (protobuf `prometheus.WriteRequest`, snappy block
//! compressed), declared with prost's derive so no code generation step is needed, plus the
//! conversion into Vigil series. The same types serve remote_write out.
//!
//! The receiving hot path, [`decode_for_storage`], does not build a `WriteRequest`: it walks
//! the protobuf bytes once and writes the series straight into the storage's batch encoding
//! (uncompressed bincode, as `vigil_shared::codec` defines it), so a request costs a few
//! allocations instead of two per label. It accepts exactly what [`decode_request`] (prost
//! plus validation) accepts; whatever it is unsure of (groups, odd wire types, a bad label)
//! it hands to [`decode_request`], which decides and words the error. A differential test
//! and the `remote_write` fuzz target hold the two to that.

use vigil_shared::model::{Labels, Point, Series};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Largest decompressed remote_write body accepted.
pub const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// Why a remote_write body was refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The body is not snappy block-compressed data.
    #[error("snappy decompression failed: {0}")]
    Snappy(#[from] snap::Error),
    /// The decompressed body is larger than [`MAX_DECODED_BYTES`].
    #[error("decompressed body of {0} bytes exceeds the limit of {MAX_DECODED_BYTES} bytes")]
    TooLarge(usize),
    /// The body is not a WriteRequest.
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A series has no metric name or an invalid label name.
    #[error("series {index}: {problem}")]
    InvalidSeries { index: usize, problem: String },
    /// The series would take more than the storage's batch limit once decoded.
    #[error("the series of this request take {0} bytes or more once decoded, over the limit of {limit} bytes; send fewer samples per request", limit = vigil_shared::codec::MAX_BATCH_BYTES)]
    SeriesTooLarge(usize),
    /// A metadata entry has no family name or an unknown type.
    #[error("metadata {index}: {problem}")]
    InvalidMetadata { index: usize, problem: String },
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The metric type names of `prometheus.MetricMetadata.MetricType`, by enum value.
const METRIC_TYPES: [&str; 8] = [
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
];

/// One family's metadata from a WriteRequest, with the type as Prometheus's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata {
    pub family: String,
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// A decoded WriteRequest: series and metric metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub series: Vec<Series>,
    pub metadata: Vec<FamilyMetadata>,
}

/// Decodes a snappy-compressed WriteRequest body into series, ignoring metadata.
pub fn decode(body: &[u8]) -> Result<Vec<Series>, RemoteWriteError> {
    decode_request(body).map(|d| d.series)
}

/// Decodes a snappy-compressed WriteRequest body into series and metric metadata. A
/// metadata entry with an unknown type value is an error naming it.
pub fn decode_request(body: &[u8]) -> Result<Decoded, RemoteWriteError> {
    let len = snap::raw::decompress_len(body)?;
    if len > MAX_DECODED_BYTES {
        return Err(RemoteWriteError::TooLarge(len));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let req = <WriteRequest as prost::Message>::decode(raw.as_slice())?;
    let mut metadata = Vec::with_capacity(req.metadata.len());
    for (index, m) in req.metadata.into_iter().enumerate() {
        let kind = usize::try_from(m.r#type)
            .ok()
            .and_then(|t| METRIC_TYPES.get(t))
            .ok_or_else(|| RemoteWriteError::InvalidMetadata {
                index,
                problem: format!("unknown metric type {}", m.r#type),
            })?;
        if m.metric_family_name.is_empty() {
            return Err(RemoteWriteError::InvalidMetadata {
                index,
                problem: "empty metric_family_name".into(),
            });
        }
        metadata.push(FamilyMetadata {
            family: m.metric_family_name,
            kind,
            help: m.help,
            unit: m.unit,
        });
    }
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (index, ts) in req.timeseries.into_iter().enumerate() {
        if let Some(l) = ts.labels.iter().find(|l| !valid_label_name(&l.name)) {
            return Err(RemoteWriteError::InvalidSeries {
                index,
                problem: format!("invalid label name {:?}", l.name),
            });
        }
        let labels = Labels::new(ts.labels.into_iter().map(|l| (l.name, l.value)).collect());
        if labels.name().is_empty() {
            return Err(RemoteWriteError::InvalidSeries {
                index,
                problem: "missing __name__ label".into(),
            });
        }
        let points = ts
            .samples
            .into_iter()
            .map(|s| Point {
                timestamp_ms: s.timestamp,
                value: s.value,
            })
            .collect();
        out.push(Series { labels, points });
    }
    Ok(Decoded {
        series: out,
        metadata,
    })
}

/// A remote_write body decoded for storage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageBatch {
    /// The series as an uncompressed batch payload (bincode of `vigil_shared::model::Batch`,
    /// no events), ready for `Storage::append_raw_batch_for`.
    pub raw: Vec<u8>,
    /// Number of samples in `raw`.
    pub samples: usize,
    pub metadata: Vec<FamilyMetadata>,
}

/// Decodes a snappy-compressed WriteRequest body into a storage batch and metric metadata,
/// accepting and refusing exactly what [`decode_request`] does, with the same errors. A body
/// whose series take more than [`vigil_shared::codec::MAX_BATCH_BYTES`] once decoded is
/// refused as too large.
pub fn decode_for_storage(body: &[u8]) -> Result<StorageBatch, RemoteWriteError> {
    let len = snap::raw::decompress_len(body)?;
    if len > MAX_DECODED_BYTES {
        return Err(RemoteWriteError::TooLarge(len));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    match transcode(&raw) {
        Ok(b) => Ok(b),
        Err(Unsure::TooLarge(n)) => Err(RemoteWriteError::SeriesTooLarge(n)),
        Err(Unsure::Refer) => {
            // Let the reference decoder decide and word the error.
            let d = decode_request(body)?;
            tracing::warn!("remote_write body accepted by prost but not by the fast reader");
            let batch = vigil_shared::model::Batch {
                series: d.series,
                events: Vec::new(),
            };
            let raw = vigil_shared::codec::encode_batch_raw(&batch)
                .map_err(|_| RemoteWriteError::SeriesTooLarge(MAX_DECODED_BYTES))?;
            Ok(StorageBatch {
                raw,
                samples: batch.series.iter().map(|s| s.points.len()).sum(),
                metadata: d.metadata,
            })
        }
    }
}

/// Why the fast reader gave up.
enum Unsure {
    /// Not certain: ask [`decode_request`].
    Refer,
    /// The series take more than this many bytes once decoded.
    TooLarge(usize),
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A protobuf reader over one message's bytes.
struct Pb<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Pb<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint as prost reads it: at most ten bytes, the tenth at most 1.
    fn varint(&mut self) -> Result<u64, Unsure> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(Unsure::Refer)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(Unsure::Refer);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Unsure::Refer)
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u32, u8), Unsure> {
        let k = u32::try_from(self.varint()?).map_err(|_| Unsure::Refer)?;
        let field = k >> 3;
        if field == 0 {
            return Err(Unsure::Refer);
        }
        Ok((field, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Unsure> {
        let n = usize::try_from(self.varint()?).map_err(|_| Unsure::Refer)?;
        let end = self.pos.checked_add(n).ok_or(Unsure::Refer)?;
        let s = self.buf.get(self.pos..end).ok_or(Unsure::Refer)?;
        self.pos = end;
        Ok(s)
    }

    fn str(&mut self) -> Result<&'a [u8], Unsure> {
        let s = self.bytes()?;
        std::str::from_utf8(s).map_err(|_| Unsure::Refer)?;
        Ok(s)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], Unsure> {
        let end = self.pos.checked_add(8).ok_or(Unsure::Refer)?;
        let s = self.buf.get(self.pos..end).ok_or(Unsure::Refer)?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skips an unknown field (groups are left to prost).
    fn skip(&mut self, wire: u8) -> Result<(), Unsure> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                let end = self.pos.checked_add(4).ok_or(Unsure::Refer)?;
                if end > self.buf.len() {
                    return Err(Unsure::Refer);
                }
                self.pos = end;
                Ok(())
            }
            _ => Err(Unsure::Refer),
        }
    }
}

/// bincode 2 "standard" varint.
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Inserts the bincode varint `n` at `at` (a count known only after its items were written).
fn insert_count(out: &mut Vec<u8>, at: usize, n: usize) {
    let mut v = Vec::with_capacity(9);
    put_varint(&mut v, n as u64);
    out.splice(at..at, v);
}

/// The fast reader: protobuf `WriteRequest` bytes to batch bincode.
fn transcode(pb: &[u8]) -> Result<StorageBatch, Unsure> {
    let limit = vigil_shared::codec::MAX_BATCH_BYTES;
    let mut r = Pb { buf: pb, pos: 0 };
    // The count of series goes in front once known; the events count (0) at the end.
    let mut out = Vec::with_capacity(pb.len() + pb.len() / 4 + 16);
    let mut n_series = 0usize;
    let mut samples = 0usize;
    let mut metadata = Vec::new();
    while !r.done() {
        match r.key()? {
            (1, LEN) => {
                let ts = r.bytes()?;
                samples += write_series(ts, &mut out)?;
                n_series += 1;
                if out.len() > limit {
                    return Err(Unsure::TooLarge(out.len()));
                }
            }
            (1, _) | (3, VARINT | FIXED64 | FIXED32) => return Err(Unsure::Refer),
            (3, LEN) => metadata.push(read_metadata(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    insert_count(&mut out, 0, n_series);
    out.push(0);
    Ok(StorageBatch {
        raw: out,
        samples,
        metadata,
    })
}

/// Writes one `TimeSeries` as a batch series (labels, then points); returns its samples.
fn write_series(ts: &[u8], out: &mut Vec<u8>) -> Result<usize, Unsure> {
    // Labels first: bincode puts them before the points, wherever protobuf has them.
    let start = out.len();
    let mut r = Pb { buf: ts, pos: 0 };
    let mut n_labels = 0usize;
    let mut named = false;
    while !r.done() {
        match r.key()? {
            (1, LEN) => {
                let mut l = Pb {
                    buf: r.bytes()?,
                    pos: 0,
                };
                let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
                while !l.done() {
                    match l.key()? {
                        (1, LEN) => name = l.str()?,
                        (2, LEN) => value = l.str()?,
                        (1 | 2, _) => return Err(Unsure::Refer),
                        (_, wire) => l.skip(wire)?,
                    }
                }
                // Label names are ASCII when valid, so the byte check is the char check.
                let valid = matches!(name.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
                    && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
                if !valid {
                    return Err(Unsure::Refer);
                }
                named |= name == vigil_shared::model::METRIC_NAME.as_bytes() && !value.is_empty();
                put_str(out, name);
                put_str(out, value);
                n_labels += 1;
            }
            (1 | 2, VARINT | FIXED64 | FIXED32) => return Err(Unsure::Refer),
            (_, wire) => r.skip(wire)?,
        }
    }
    if !named {
        return Err(Unsure::Refer);
    }
    insert_count(out, start, n_labels);
    let points_at = out.len();
    let mut r = Pb { buf: ts, pos: 0 };
    let mut n_points = 0usize;
    while !r.done() {
        match r.key()? {
            (2, LEN) => {
                let mut p = Pb {
                    buf: r.bytes()?,
                    pos: 0,
                };
                let (mut value, mut t) = ([0u8; 8], 0i64);
                while !p.done() {
                    match p.key()? {
                        (1, FIXED64) => value = p.fixed64()?,
                        (2, VARINT) => t = p.varint()? as i64,
                        (1 | 2, _) => return Err(Unsure::Refer),
                        (_, wire) => p.skip(wire)?,
                    }
                }
                put_varint(out, ((t << 1) ^ (t >> 63)) as u64);
                out.extend_from_slice(&value);
                n_points += 1;
                if out.len() > vigil_shared::codec::MAX_BATCH_BYTES {
                    return Err(Unsure::TooLarge(out.len()));
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    insert_count(out, points_at, n_points);
    Ok(n_points)
}

/// Reads and validates one `MetricMetadata`.
fn read_metadata(m: &[u8]) -> Result<FamilyMetadata, Unsure> {
    let mut r = Pb { buf: m, pos: 0 };
    let (mut kind, mut family, mut help, mut unit): (i32, &[u8], &[u8], &[u8]) = (0, b"", b"", b"");
    while !r.done() {
        match r.key()? {
            (1, VARINT) => kind = r.varint()? as i32,
            (2, LEN) => family = r.str()?,
            (4, LEN) => help = r.str()?,
            (5, LEN) => unit = r.str()?,
            (1 | 2 | 4 | 5, _) => return Err(Unsure::Refer),
            (_, wire) => r.skip(wire)?,
        }
    }
    let kind = usize::try_from(kind)
        .ok()
        .and_then(|t| METRIC_TYPES.get(t))
        .ok_or(Unsure::Refer)?;
    if family.is_empty() {
        return Err(Unsure::Refer);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(FamilyMetadata {
        family: text(family),
        kind,
        help: text(help),
        unit: text(unit),
    })
}

/// Encodes series as a snappy-compressed WriteRequest body (for remote_write out and tests).
pub fn encode(series: &[Series]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.into(),
                        value: v.into(),
                    })
                    .collect(),
                samples: s
                    .points
                    .iter()
                    .map(|p| Sample {
                        value: p.value,
                        timestamp: p.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    let raw = prost::Message::encode_to_vec(&req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_bodies() {
        let s = vec![Series {
            labels: Labels::metric("up", &[("job", "a")]),
            points: vec![
                Point {
                    timestamp_ms: 5,
                    value: f64::NAN,
                },
                Point {
                    timestamp_ms: 6,
                    value: 1.0,
                },
            ],
        }];
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back[0].labels, s[0].labels);
        assert!(back[0].points[0].value.is_nan());
        assert!(matches!(
            decode(b"not snappy at all"),
            Err(RemoteWriteError::Snappy(_)) | Err(RemoteWriteError::Protobuf(_))
        ));
        let nameless = vec![Series {
            labels: Labels::new(vec![("job".into(), "a".into())]),
            points: vec![],
        }];
        assert!(matches!(
            decode(&encode(&nameless)),
            Err(RemoteWriteError::InvalidSeries { .. })
        ));
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A request with the awkward parts remote_write senders produce: unsorted and
    /// repeated label names, empty values, NaN bits, negative timestamps, metadata.
    fn random_request(seed: u64) -> WriteRequest {
        let mut rnd = rng(seed);
        let names = ["__name__", "job", "instance", "a", "zz", "_x"];
        let timeseries = (0..rnd() % 6)
            .map(|_| TimeSeries {
                labels: (0..1 + rnd() % 5)
                    .map(|k| Label {
                        name: if k == 0 {
                            "__name__".into()
                        } else {
                            names[(rnd() % 6) as usize].into()
                        },
                        value: match rnd() % 4 {
                            0 => String::new(),
                            1 => "é€".into(),
                            _ => format!("v{}", rnd() % 100),
                        },
                    })
                    .collect(),
                samples: (0..rnd() % 4)
                    .map(|_| Sample {
                        value: f64::from_bits(rnd()),
                        timestamp: (rnd() as i64) >> (rnd() % 64),
                    })
                    .collect(),
            })
            .collect();
        let metadata = (0..rnd() % 2)
            .map(|_| MetricMetadata {
                r#type: (rnd() % 9) as i32,
                metric_family_name: ["", "m"][(rnd() % 2) as usize].into(),
                help: "h".into(),
                unit: String::new(),
            })
            .collect();
        WriteRequest {
            timeseries,
            metadata,
        }
    }

    /// What the storage receives from the fast decoder, as model series.
    fn stored(b: &StorageBatch) -> Vec<Series> {
        crate::storage::bench_parse_raw(&b.raw)
    }

    fn normalized(d: Decoded) -> Vec<Series> {
        d.series
            .into_iter()
            .map(|s| Series {
                labels: Labels::new(s.labels.into_inner()),
                points: s.points,
            })
            .collect()
    }

    fn same(a: &[Series], b: &[Series]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.labels == y.labels
                    && x.points.len() == y.points.len()
                    && x.points.iter().zip(&y.points).all(|(p, q)| {
                        p.timestamp_ms == q.timestamp_ms && p.value.to_bits() == q.value.to_bits()
                    })
            })
    }

    /// The fast decoder and prost agree on every body: accepted with the same series and
    /// metadata, or refused with the same message.
    fn agree(body: &[u8]) {
        match (decode_for_storage(body), decode_request(body)) {
            (Ok(fast), Ok(reference)) => {
                assert_eq!(fast.metadata, reference.metadata);
                let samples: usize = reference.series.iter().map(|s| s.points.len()).sum();
                assert_eq!(fast.samples, samples);
                assert!(same(&stored(&fast), &normalized(reference)));
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("fast {a:?} but prost {b:?} for {body:?}"),
        }
    }

    #[test]
    fn fast_decoder_matches_prost_on_valid_and_broken_bodies() {
        let mut rnd = rng(7);
        for seed in 1..400u64 {
            let raw = prost::Message::encode_to_vec(&random_request(seed));
            let snappy = |b: &[u8]| snap::raw::Encoder::new().compress_vec(b).unwrap();
            agree(&snappy(&raw));
            // Truncations, flipped bytes and unknown fields spliced in at random places.
            if !raw.is_empty() {
                let cut = (rnd() as usize) % raw.len();
                agree(&snappy(&raw[..cut]));
                let mut flipped = raw.clone();
                let at = (rnd() as usize) % raw.len();
                flipped[at] ^= 1 << (rnd() % 8);
                agree(&snappy(&flipped));
                let mut extra = raw.clone();
                let at = (rnd() as usize) % raw.len();
                let field: &[&[u8]] = &[&[0x28, 0x05], &[0x3a, 0x01, 0x00], &[0x1b, 0x1c], &[0x00]];
                extra.splice(at..at, field[(rnd() % 4) as usize].iter().copied());
                agree(&snappy(&extra));
            }
        }
        // Unknown top-level and nested fields are skipped, as prost skips them.
        let mut raw = prost::Message::encode_to_vec(&random_request(3));
        raw.extend_from_slice(&[0x22, 0x02, 0x08, 0x01, 0x2d, 1, 2, 3, 4]);
        agree(&snap::raw::Encoder::new().compress_vec(&raw).unwrap());
    }

    #[test]
    fn fast_decoder_refuses_what_prost_refuses_with_its_words() {
        let bad_name = encode(&[Series {
            labels: Labels::new(vec![
                ("__name__".into(), "up".into()),
                ("bad-name".into(), "x".into()),
            ]),
            points: vec![],
        }]);
        let e = decode_for_storage(&bad_name).unwrap_err().to_string();
        assert_eq!(e, "series 0: invalid label name \"bad-name\"");
        assert!(matches!(
            decode_for_storage(b"not snappy at all"),
            Err(RemoteWriteError::Snappy(_)) | Err(RemoteWriteError::Protobuf(_))
        ));
    }

    fn with_metadata(metadata: Vec<MetricMetadata>) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(&WriteRequest {
            timeseries: vec![],
            metadata,
        });
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    }

    #[test]
    fn metadata_is_decoded_and_bad_types_are_named() {
        let d = decode_request(&with_metadata(vec![MetricMetadata {
            r#type: 3,
            metric_family_name: "req_seconds".into(),
            help: "Latency.".into(),
            unit: "seconds".into(),
        }]))
        .unwrap();
        assert_eq!(
            d.metadata,
            vec![FamilyMetadata {
                family: "req_seconds".into(),
                kind: "histogram",
                help: "Latency.".into(),
                unit: "seconds".into(),
            }]
        );
        let err = decode_request(&with_metadata(vec![MetricMetadata {
            r#type: 42,
            metric_family_name: "x".into(),
            help: String::new(),
            unit: String::new(),
        }]))
        .unwrap_err();
        assert_eq!(err.to_string(), "metadata 0: unknown metric type 42");
    }
}
