//! Compressed sample chunks in the Gorilla format (Facebook's "Gorilla" paper, as used by
//! Prometheus's XOR chunks): timestamps as delta-of-delta with variable-width buckets and
//! values as the XOR with the previous value, reusing the previous leading/trailing-zero
//! window when it fits. A chunk starts with a 2-byte big-endian sample count, so a chunk is
//! self-describing. Values are handled as raw bit patterns, so NaN payloads (including the
//! Prometheus stale marker), ±Inf and -0.0 survive bit-exactly.

/// How many samples a head chunk takes before it is sealed (Prometheus uses 120).
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// A chunk's bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("corrupt chunk: {0}")]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Default)]
struct BitWriter {
    buf: Vec<u8>,
    /// Unused low bits in the last byte.
    free: u32,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `v`, most significant first (`n <= 64`).
    fn write_bits(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let bits = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
    }
}

#[derive(Debug, Clone)]
struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// The next 64 bits without consuming them, zeros past the end.
    #[inline]
    fn peek(&self) -> u64 {
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        let hi = match self.buf.get(byte..byte + 8) {
            Some(b) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let mut w = [0u8; 8];
                let rest = self.buf.get(byte..).unwrap_or_default();
                w[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(w)
            }
        };
        let lo = u64::from(self.buf.get(byte + 8).copied().unwrap_or(0));
        (hi << off) | (lo << off >> 8)
    }

    /// Consumes `n` bits; `None` when fewer are left.
    #[inline]
    fn skip(&mut self, n: u32) -> Option<()> {
        let pos = self.pos + n as usize;
        (pos <= self.buf.len() * 8).then(|| self.pos = pos)
    }

    #[cfg(test)]
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    fn read_bits(&mut self, mut n: u32) -> Option<u64> {
        // Fast path: the bits lie within one 8-byte big-endian load.
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        if n > 0 && n + off <= 64 {
            if let Some(w) = self.buf.get(byte..byte + 8) {
                let w = u64::from_be_bytes(w.try_into().ok()?);
                self.pos += n as usize;
                return Some((w << off) >> (64 - n));
            }
        }
        let mut out = 0u64;
        while n > 0 {
            let byte = *self.buf.get(self.pos / 8)?;
            let off = (self.pos % 8) as u32;
            let avail = 8 - off;
            let take = n.min(avail);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            out = (out << take) | u64::from(bits);
            self.pos += take as usize;
            n -= take;
        }
        Some(out)
    }
}

/// Delta-of-delta buckets: (prefix bits, prefix length, payload width).
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

fn fits(v: i64, bits: u32) -> bool {
    let lim = 1i64 << (bits - 1);
    -lim <= v && v < lim
}

/// Appends samples to a chunk under construction.
#[derive(Debug, Clone)]
pub struct ChunkAppender {
    w: BitWriter,
    count: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u32,
    trailing: u32,
    mint: i64,
}

impl Default for ChunkAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkAppender {
    /// An empty chunk.
    pub fn new() -> Self {
        let mut w = BitWriter::default();
        w.write_bits(0, 16);
        ChunkAppender {
            w,
            count: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: u32::MAX,
            trailing: 0,
            mint: 0,
        }
    }

    /// Rebuilds an appender from an encoded chunk so more samples can be added.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChunkError> {
        let mut a = ChunkAppender::new();
        for s in ChunkIter::new(bytes)? {
            let (t, v) = s?;
            a.append(t, v);
        }
        Ok(a)
    }

    /// Samples in the chunk.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// First timestamp (meaningless while empty).
    pub fn mint(&self) -> i64 {
        self.mint
    }

    /// Last timestamp (meaningless while empty).
    pub fn maxt(&self) -> i64 {
        self.t
    }

    /// The encoded bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// Consumes the appender, returning the encoded chunk.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut b = self.w.buf;
        b.shrink_to_fit();
        b
    }

    /// Appends a sample; the caller guarantees `t` is greater than the last timestamp.
    pub fn append(&mut self, t: i64, v: u64) {
        match self.count {
            0 => {
                self.w.write_bits(t as u64, 64);
                self.w.write_bits(v, 64);
                self.mint = t;
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                self.write_dod(dod);
                self.write_value(v);
                self.delta = delta;
            }
        }
        self.t = t;
        self.v = v;
        self.count += 1;
        let c = self.count.to_be_bytes();
        self.w.buf[0] = c[0];
        self.w.buf[1] = c[1];
    }

    fn write_dod(&mut self, dod: i64) {
        if dod == 0 {
            self.w.write_bit(false);
            return;
        }
        for (prefix, plen, width) in DOD_BUCKETS {
            if fits(dod, width) {
                self.w.write_bits(prefix, plen);
                self.w
                    .write_bits((dod as u64) & ((1u64 << width) - 1), width);
                return;
            }
        }
        self.w.write_bits(0b1111, 4);
        self.w.write_bits(dod as u64, 64);
    }

    fn write_value(&mut self, v: u64) {
        let xor = v ^ self.v;
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if self.leading != u32::MAX && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bits(0b10, 2);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(xor >> self.trailing, sig);
        } else {
            self.w.write_bits(0b11, 2);
            let sig = 64 - leading - trailing;
            self.w.write_bits(u64::from(leading), 5);
            // 64 significant bits are written as 0: 0 itself is impossible (xor != 0).
            self.w.write_bits(u64::from(sig & 63), 6);
            self.w.write_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }
}

/// A chunk whose bits end early or describe an impossible value.
const BAD_STREAM: ChunkError = ChunkError("truncated or invalid bit stream");

/// Iterates the samples of an encoded chunk as `(timestamp_ms, value bits)`.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    remaining: u16,
    read: u16,
    t: i64,
    delta: i64,
    v: u64,
    leading: u32,
    trailing: u32,
    failed: bool,
}

impl<'a> ChunkIter<'a> {
    /// Starts reading a chunk; fails when the header is missing.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        if bytes.len() < 2 {
            return Err(ChunkError("missing header"));
        }
        let count = u16::from_be_bytes([bytes[0], bytes[1]]);
        Ok(ChunkIter {
            r: BitReader {
                buf: bytes,
                pos: 16,
            },
            remaining: count,
            read: 0,
            t: 0,
            delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            failed: false,
        })
    }

    fn next_sample(&mut self) -> Option<(i64, u64)> {
        if self.read == 0 {
            self.t = self.r.read_bits(64)? as i64;
            self.v = self.r.read_bits(64)?;
            return Some((self.t, self.v));
        }
        // Delta of delta: a zero bit for 0 (most samples), else up to four one bits ended
        // by a zero unless there are four, then the payload. `w` is left holding the bits
        // that follow, so the common case reads the stream once per sample.
        let mut w = self.r.peek();
        if w >> 63 == 0 {
            self.r.skip(1)?;
            w <<= 1;
        } else {
            let ones = (!w).leading_zeros().min(4);
            self.r.skip(if ones < 4 { ones + 1 } else { 4 })?;
            let dod = match ones {
                4 => self.r.read_bits(64)? as i64,
                n => {
                    let width = DOD_BUCKETS[(n - 1) as usize].2;
                    let raw = self.r.read_bits(width)?;
                    // Sign-extend.
                    ((raw << (64 - width)) as i64) >> (64 - width)
                }
            };
            self.delta = self.delta.wrapping_add(dod);
            w = self.r.peek();
        }
        self.t = self.t.wrapping_add(self.delta);
        // Value: 0 (unchanged), 10 (xor within the previous window) or 11 (new window: 5
        // bits of leading zeros and 6 of significant bits, 0 meaning 64).
        match w >> 62 {
            0 | 1 => {
                self.r.skip(1)?;
                return Some((self.t, self.v));
            }
            2 => {
                self.r.skip(2)?;
                if self.leading + self.trailing >= 64 {
                    return None;
                }
            }
            _ => {
                self.r.skip(13)?;
                self.leading = ((w >> 57) & 31) as u32;
                let sig = match ((w >> 51) & 63) as u32 {
                    0 => 64,
                    n => n,
                };
                if self.leading + sig > 64 {
                    return None;
                }
                self.trailing = 64 - self.leading - sig;
            }
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits << self.trailing;
        Some((self.t, self.v))
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<(i64, u64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.read >= self.remaining {
            return None;
        }
        match self.next_sample() {
            Some(s) => {
                self.read += 1;
                Some(Ok(s))
            }
            None => {
                self.failed = true;
                Some(Err(BAD_STREAM))
            }
        }
    }
}

/// Decodes a whole chunk into `out`, keeping only samples in `[start, end]`.
pub fn decode_range(
    bytes: &[u8],
    start: i64,
    end: i64,
    out: &mut Vec<(i64, u64)>,
) -> Result<(), ChunkError> {
    decode_range_as(bytes, start, end, out, |t, v| (t, v))
}

/// [`decode_range`] into any sample type, made by `make(timestamp, value bits)`.
pub fn decode_range_as<T>(
    bytes: &[u8],
    start: i64,
    end: i64,
    out: &mut Vec<T>,
    make: impl Fn(i64, u64) -> T,
) -> Result<(), ChunkError> {
    let mut it = ChunkIter::new(bytes)?;
    out.reserve(usize::from(it.remaining));
    for _ in 0..it.remaining {
        let (t, v) = it.next_sample().ok_or(BAD_STREAM)?;
        it.read += 1;
        if t > end {
            break;
        }
        if t >= start {
            out.push(make(t, v));
        }
    }
    Ok(())
}

/// The number of samples a chunk holds, from its header (0 when it has none).
pub fn sample_count(bytes: &[u8]) -> usize {
    match bytes {
        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn round_trip(samples: &[(i64, u64)]) {
        let mut a = ChunkAppender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        let bytes = a.into_bytes();
        let back: Vec<(i64, u64)> = ChunkIter::new(&bytes)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, samples);
        let again = ChunkAppender::from_bytes(&bytes).unwrap();
        assert_eq!(again.bytes(), &bytes[..]);
    }

    #[test]
    fn chunk_round_trips_special_values_bit_exactly() {
        let specials = [
            1.0f64.to_bits(),
            STALE_NAN,
            f64::NAN.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            (-0.0f64).to_bits(),
            0.0f64.to_bits(),
            f64::MIN_POSITIVE.to_bits(),
            f64::MAX.to_bits(),
            1u64, // smallest subnormal
            u64::MAX,
            STALE_NAN,
            STALE_NAN,
        ];
        let samples: Vec<(i64, u64)> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| (1_700_000_000_000 + i as i64 * 15_000, v))
            .collect();
        round_trip(&samples);
    }

    #[test]
    fn chunk_round_trips_every_timestamp_bucket() {
        let mut t = -5_000_000i64;
        let mut samples = vec![];
        let gaps = [
            1i64,
            15_000,
            15_000,
            15_001,
            14_999,
            100_000,
            1,
            1 << 20,
            3,
            1 << 40,
            2,
            i64::MAX / 4,
            1,
        ];
        for (i, g) in gaps.iter().enumerate() {
            t += g;
            samples.push((t, (i as f64 * 1.5).to_bits()));
        }
        round_trip(&samples);
    }

    /// The word-at-a-time `read_bits` against reading bit by bit, for every width, at
    /// every alignment, up to the end of the buffer (where the fast path cannot load 8
    /// bytes and the byte loop takes over).
    #[test]
    fn read_bits_agrees_with_reading_bit_by_bit() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let buf: Vec<u8> = (0..37)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for start in 0..16 {
            for n in 1..=64u32 {
                let mut fast = BitReader {
                    buf: &buf,
                    pos: start,
                };
                let mut slow = BitReader {
                    buf: &buf,
                    pos: start,
                };
                loop {
                    // peek shows the next 64 bits, zeros past the end, and consumes nothing.
                    let mut padded = BitReader {
                        buf: &buf,
                        pos: slow.pos,
                    };
                    let want_peek = (0..64).fold(0u64, |acc, _| {
                        (acc << 1) | u64::from(padded.read_bit().unwrap_or(false))
                    });
                    assert_eq!(fast.peek(), want_peek, "peek at {}", fast.pos);
                    let want: Option<u64> = (0..n)
                        .map(|_| slow.read_bit())
                        .try_fold(0u64, |acc, b| b.map(|b| (acc << 1) | u64::from(b)));
                    let got = fast.read_bits(n);
                    if want.is_none() {
                        assert_eq!(got, None, "start {start} n {n}");
                        break;
                    }
                    assert_eq!(got, want, "start {start} n {n} pos {}", fast.pos);
                    assert_eq!(fast.pos, slow.pos);
                }
            }
        }
    }

    #[test]
    fn chunk_round_trips_random_walks_and_counters() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50 {
            let mut samples = vec![];
            let mut t = 1_700_000_000_000i64;
            let mut v = 0.0f64;
            for _ in 0..SAMPLES_PER_CHUNK {
                t += 1 + (rnd() % 30_000) as i64;
                match rnd() % 4 {
                    0 => v += (rnd() % 1000) as f64,
                    1 => v = f64::from_bits(rnd()),
                    2 => {}
                    _ => v = (rnd() % 100) as f64 / 7.0,
                }
                samples.push((t, v.to_bits()));
            }
            round_trip(&samples);
        }
    }

    #[test]
    fn regular_counter_compresses_to_about_two_bytes_per_sample() {
        let mut a = ChunkAppender::new();
        let mut v = 1000.0f64;
        for i in 0..120i64 {
            v += 4096.0 * ((i % 3) as f64 + 1.0);
            a.append(1_700_000_000_000 + i * 15_000, v.to_bits());
        }
        let len = a.bytes().len();
        assert!(len < 120 * 3, "{len} bytes for 120 samples");
    }

    fn bytes_per_sample(values: impl Fn(i64) -> f64, jitter: bool) -> f64 {
        let mut a = ChunkAppender::new();
        for i in 0..120i64 {
            let j = if jitter { (i * 7919) % 5 } else { 0 };
            a.append(1_700_000_000_000 + i * 15_000 + j, values(i).to_bits());
        }
        a.bytes().len() as f64 / 120.0
    }

    #[test]
    fn compression_by_value_shape() {
        // Constant values on a regular 15 s grid: a couple of bits per sample.
        let steady = bytes_per_sample(|_| 8_589_934_592.0, false);
        assert!(steady < 0.5, "{steady}");
        // Millisecond scrape jitter costs the 14-bit delta-of-delta bucket.
        let jittered = bytes_per_sample(|_| 8_589_934_592.0, true);
        assert!(jittered < 2.5, "{jittered}");
        // Integer byte counters.
        let bytes = bytes_per_sample(
            |i| 1e9 + (i * 123_457 % 200_000 + i * 150_000) as f64,
            false,
        );
        assert!(bytes < 4.5, "{bytes}");
        // CPU seconds in 0.01 steps: decimal fractions leave most mantissa bits changing.
        let cpu = bytes_per_sample(
            |i| (100_000_000 + i * 1437 + i * i % 97) as f64 / 100.0,
            false,
        );
        assert!(cpu < 7.0, "{cpu}");
        eprintln!(
            "bytes/sample: steady {steady:.2}, steady+jitter {jittered:.2}, byte counter {bytes:.2}, cpu seconds {cpu:.2}"
        );
    }

    #[test]
    fn truncated_chunk_is_an_error_not_a_panic() {
        let mut a = ChunkAppender::new();
        for i in 0..10 {
            a.append(i * 1000, (i as f64 * 0.1).to_bits());
        }
        let bytes = a.into_bytes();
        for cut in 0..bytes.len() {
            if let Ok(it) = ChunkIter::new(&bytes[..cut]) {
                let r: Result<Vec<_>, _> = it.collect();
                assert!(r.is_err(), "cut at {cut} decoded");
            }
        }
        let mut garbage = vec![0xffu8; 40];
        garbage[0] = 0;
        garbage[1] = 50;
        let r: Result<Vec<_>, _> = ChunkIter::new(&garbage).unwrap().collect();
        assert!(r.is_err());
    }
}
