//! Dense sample chunks for compacted blocks (block format 2). The head keeps Gorilla chunks
//! for cheap appends; when samples are compacted into a block they are re-encoded here,
//! series by series, in up to [`MAX_SAMPLES`] samples per chunk, the way VictoriaMetrics
//! stores its parts:
//!
//! - timestamps as a first value, a first delta and then deltas of deltas (a regular scrape
//!   interval makes these all zero);
//! - values, chosen per chunk: a single constant; or, when every value is a decimal number
//!   with at most 15 fractional digits that converts back bit-exactly, integer mantissas at a
//!   common decimal exponent stored as deltas or deltas of deltas (whichever compresses
//!   better); otherwise the XOR of consecutive bit patterns as raw 8-byte words;
//! - the two columns compressed together with zstd (kept raw when that is not smaller).
//!
//! Every encoding is lossless: values are bit patterns, so NaN payloads (the Prometheus stale
//! marker), ±Inf and -0.0 survive (they simply make a chunk use the XOR form).
//!
//! ```text
//! u8 frame: 0 = raw, 1 = zstd; then the (possibly compressed) body:
//!   uvarint count, varint t0, varint first delta, varint dod...,
//!   u8 value form: 0 = const (u64 LE), 1 = decimal delta, 2 = decimal delta-of-delta,
//!                  3 = xor (u64 LE words),
//!   decimal forms: u8 scale (fractional digits), varint m0, then varints
//! ```

use super::encoding::{Dec, DecodeError, Enc};

/// Most samples in one dense chunk (as VictoriaMetrics' 8k rows per block).
pub const MAX_SAMPLES: usize = 8192;

/// zstd level for block chunks: compaction runs in the background, so favour size.
const ZSTD_LEVEL: i32 = 9;

/// Most decoded body bytes one chunk may claim (a sample takes at most ~21 bytes).
const MAX_BODY: usize = MAX_SAMPLES * 24 + 64;

const FRAME_RAW: u8 = 0;
const FRAME_ZSTD: u8 = 1;

const FORM_CONST: u8 = 0;
const FORM_DELTA: u8 = 1;
const FORM_DOD: u8 = 2;
const FORM_XOR: u8 = 3;

/// Exact powers of ten as f64 (every one up to 1e22 is representable).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
const MAX_SCALE: usize = 15;
/// Mantissas stay below 2^53 so `m as f64` is exact.
const MAX_MANTISSA: i64 = 1 << 53;

/// Reuses a zstd context across the chunks of one block.
pub struct DenseEncoder {
    zstd: zstd::bulk::Compressor<'static>,
    body: Enc,
}

impl std::fmt::Debug for DenseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseEncoder").finish_non_exhaustive()
    }
}

fn decimal(v: u64) -> Option<(i64, usize)> {
    let f = f64::from_bits(v);
    if !f.is_finite() || (f == 0.0 && f.is_sign_negative()) {
        return None;
    }
    for (scale, p) in POW10.iter().enumerate() {
        let m = (f * p).round();
        if m.abs() >= MAX_MANTISSA as f64 {
            return None;
        }
        let m = m as i64;
        if (m as f64 / p).to_bits() == v {
            return Some((m, scale));
        }
    }
    None
}

/// Integer mantissas at one common scale, or `None` when some value is not such a decimal.
fn mantissas(samples: &[(i64, u64)]) -> Option<(Vec<i64>, u8)> {
    let mut parts = Vec::with_capacity(samples.len());
    let mut scale = 0;
    for &(_, v) in samples {
        let (m, s) = decimal(v)?;
        scale = scale.max(s);
        parts.push((m, s));
    }
    let p = POW10[scale];
    let mut out = Vec::with_capacity(parts.len());
    for (&(m, s), &(_, v)) in parts.iter().zip(samples) {
        let m = m.checked_mul(10i64.pow((scale - s) as u32))?;
        if m.abs() >= MAX_MANTISSA || (m as f64 / p).to_bits() != v {
            return None;
        }
        out.push(m);
    }
    Some((out, scale as u8))
}

impl DenseEncoder {
    pub fn new() -> Result<Self, std::io::Error> {
        Ok(DenseEncoder {
            zstd: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            body: Enc::with_capacity(1 << 16),
        })
    }

    /// Encodes sorted, de-duplicated samples (at most [`MAX_SAMPLES`]) into one chunk.
    pub fn encode(&mut self, samples: &[(i64, u64)]) -> Result<Vec<u8>, std::io::Error> {
        debug_assert!(samples.len() <= MAX_SAMPLES);
        let body = &mut self.body;
        body.buf.clear();
        body.uvarint(samples.len() as u64);
        let mut prev_t = 0i64;
        let mut prev_d = 0i64;
        for (i, &(t, _)) in samples.iter().enumerate() {
            match i {
                0 => body.varint(t),
                _ => {
                    let d = t.wrapping_sub(prev_t);
                    body.varint(if i == 1 { d } else { d.wrapping_sub(prev_d) });
                    prev_d = d;
                }
            }
            prev_t = t;
        }
        let first = samples.first().map_or(0, |s| s.1);
        if samples.iter().all(|s| s.1 == first) {
            body.u8(FORM_CONST);
            body.u64_le(first);
        } else if let Some((ms, scale)) = mantissas(samples) {
            // Deltas suit gauges and irregular counters, deltas of deltas steady counters:
            // keep whichever zstd makes smaller.
            let ts_len = body.buf.len();
            let mut best: Option<Vec<u8>> = None;
            for form in [FORM_DELTA, FORM_DOD] {
                body.buf.truncate(ts_len);
                body.u8(form);
                body.u8(scale);
                let (mut prev, mut prev_d) = (0i64, 0i64);
                for (i, &m) in ms.iter().enumerate() {
                    let d = m.wrapping_sub(prev);
                    let x = match (i, form) {
                        (0, _) => m,
                        (_, FORM_DELTA) | (1, _) => d,
                        _ => d.wrapping_sub(prev_d),
                    };
                    body.varint(x);
                    prev = m;
                    prev_d = d;
                }
                let framed = frame(&mut self.zstd, &body.buf)?;
                let better = match &best {
                    None => true,
                    Some(b) => framed.len() < b.len(),
                };
                if better {
                    best = Some(framed);
                }
            }
            return Ok(best.unwrap_or_default());
        } else {
            body.u8(FORM_XOR);
            let mut prev = 0u64;
            for &(_, v) in samples {
                body.u64_le(v ^ prev);
                prev = v;
            }
        }
        frame(&mut self.zstd, &body.buf)
    }
}

fn frame(
    zstd: &mut zstd::bulk::Compressor<'static>,
    body: &[u8],
) -> Result<Vec<u8>, std::io::Error> {
    let compressed = zstd.compress(body)?;
    let mut out;
    if compressed.len() < body.len() {
        out = Vec::with_capacity(compressed.len() + 1);
        out.push(FRAME_ZSTD);
        out.extend_from_slice(&compressed);
    } else {
        out = Vec::with_capacity(body.len() + 1);
        out.push(FRAME_RAW);
        out.extend_from_slice(body);
    }
    Ok(out)
}

/// Decodes a dense chunk into `out`, keeping only samples in `[start, end]`.
pub fn decode_range(
    bytes: &[u8],
    start: i64,
    end: i64,
    out: &mut Vec<(i64, u64)>,
) -> Result<(), DecodeError> {
    let (&frame, rest) = bytes
        .split_first()
        .ok_or_else(|| DecodeError("empty dense chunk".into()))?;
    let owned;
    let body: &[u8] = match frame {
        FRAME_RAW => rest,
        FRAME_ZSTD => {
            owned = zstd::bulk::decompress(rest, MAX_BODY)
                .map_err(|e| DecodeError(format!("dense chunk does not decompress: {e}")))?;
            &owned
        }
        other => return Err(DecodeError(format!("unknown dense chunk frame {other}"))),
    };
    let mut d = Dec::new(body);
    let n = d.len()?;
    if n > MAX_SAMPLES {
        return Err(DecodeError(format!("dense chunk claims {n} samples")));
    }
    let mut ts = Vec::with_capacity(n);
    let (mut t, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let x = d.varint()?;
        match i {
            0 => t = x,
            1 => {
                delta = x;
                t = t.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(x);
                t = t.wrapping_add(delta);
            }
        }
        ts.push(t);
    }
    let lo = ts.partition_point(|&t| t < start);
    let hi = ts.partition_point(|&t| t <= end);
    let mut push = |i: usize, v: u64| {
        if i >= lo && i < hi {
            out.push((ts[i], v));
        }
    };
    match d.u8()? {
        FORM_CONST => {
            let v = d.u64_le()?;
            for i in 0..n {
                push(i, v);
            }
        }
        form @ (FORM_DELTA | FORM_DOD) => {
            let scale = usize::from(d.u8()?);
            let p = *POW10
                .get(scale)
                .filter(|_| scale <= MAX_SCALE)
                .ok_or_else(|| DecodeError(format!("decimal scale {scale} out of range")))?;
            let (mut m, mut delta) = (0i64, 0i64);
            for i in 0..n {
                let x = d.varint()?;
                match (i, form) {
                    (0, _) => m = x,
                    (_, FORM_DELTA) | (1, _) => {
                        delta = x;
                        m = m.wrapping_add(x);
                    }
                    _ => {
                        delta = delta.wrapping_add(x);
                        m = m.wrapping_add(delta);
                    }
                }
                push(i, (m as f64 / p).to_bits());
            }
        }
        FORM_XOR => {
            let mut v = 0u64;
            for i in 0..n {
                v ^= d.u64_le()?;
                push(i, v);
            }
        }
        other => return Err(DecodeError(format!("unknown dense value form {other}"))),
    }
    if !d.is_empty() {
        return Err(DecodeError("trailing bytes in dense chunk".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(samples: &[(i64, u64)]) -> usize {
        let mut enc = DenseEncoder::new().unwrap();
        let bytes = enc.encode(samples).unwrap();
        let mut back = Vec::new();
        decode_range(&bytes, i64::MIN, i64::MAX, &mut back).unwrap();
        assert_eq!(back, samples);
        bytes.len()
    }

    fn at_15s(values: impl IntoIterator<Item = f64>) -> Vec<(i64, u64)> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (1_700_000_000_000 + i as i64 * 15_000, v.to_bits()))
            .collect()
    }

    #[test]
    fn every_value_form_round_trips_bit_exactly() {
        // Constant.
        let n = round_trip(&at_15s(std::iter::repeat_n(42.0, 480)));
        assert!(n < 40, "{n} bytes for a constant");
        // Counter with two decimals (like node_cpu_seconds_total).
        let cpu = at_15s((0..480).map(|i| f64::from(12_345_678 + i * 1493) / 100.0));
        let n = round_trip(&cpu);
        assert!(n < 200, "{n} bytes for a steady counter");
        // Gauge with varying decimals and negative values.
        round_trip(&at_15s([0.5, -1.25, 3.0, 1e-7, 2.5e15, 0.1, -0.0001]));
        // Special values force the XOR form.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        round_trip(&at_15s([1.0, stale, f64::INFINITY, -0.0, f64::NAN, 0.3]));
        round_trip(&at_15s([0.1 + 0.2, 1.0 / 3.0, f64::MAX, f64::MIN_POSITIVE]));
        // Irregular and huge timestamp gaps, one sample, no samples.
        round_trip(&[(i64::MIN, 1), (0, 2), (5, 3), (i64::MAX, 4)]);
        round_trip(&[(7, 9.5f64.to_bits())]);
        round_trip(&[]);
        let long = at_15s((0..MAX_SAMPLES).map(|i| (i % 17) as f64 * 0.25));
        round_trip(&long);
    }

    #[test]
    fn range_decoding_keeps_only_the_window() {
        let s = at_15s((0..100).map(f64::from));
        let mut enc = DenseEncoder::new().unwrap();
        let bytes = enc.encode(&s).unwrap();
        let mut out = Vec::new();
        decode_range(&bytes, s[10].0, s[19].0, &mut out).unwrap();
        assert_eq!(out, s[10..20]);
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        let s = at_15s((0..300).map(|i| f64::from(i) * 1.5));
        let mut enc = DenseEncoder::new().unwrap();
        let bytes = enc.encode(&s).unwrap();
        let mut out = Vec::new();
        assert!(decode_range(&[], 0, 1, &mut out).is_err());
        assert!(decode_range(&[9, 1, 2], 0, 1, &mut out).is_err());
        for cut in 1..bytes.len() {
            let _ = decode_range(&bytes[..cut], i64::MIN, i64::MAX, &mut out);
        }
        assert!(decode_range(&bytes[..bytes.len() / 2], i64::MIN, i64::MAX, &mut out).is_err());
        // A raw frame claiming too many samples.
        let mut e = Enc::default();
        e.u8(FRAME_RAW);
        e.uvarint(1 << 40);
        assert!(decode_range(&e.buf, i64::MIN, i64::MAX, &mut out).is_err());
    }
}
