//! Little binary helpers shared by the WAL records, checkpoints and block indexes: varints,
//! length-prefixed strings and label sets, with a bounds-checked reader that reports
//! truncation as an error instead of panicking.

use vigil_shared::model::{Event, Labels};

/// A bounded reader ran out of bytes or met an invalid value.
#[derive(Debug, thiserror::Error)]
#[error("corrupt encoding: {0}")]
pub struct DecodeError(pub String);

/// Appends values to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn with_capacity(n: usize) -> Self {
        Enc {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32_le(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64_le(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn varint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn labels(&mut self, l: &Labels) {
        self.uvarint(l.len() as u64);
        for (n, v) in l.iter() {
            self.str(n);
            self.str(v);
        }
    }

    pub fn event(&mut self, e: &Event) {
        self.varint(e.timestamp_ms);
        self.str(&e.kind);
        self.labels(&e.labels);
        self.uvarint(e.fields.len() as u64);
        for (k, v) in &e.fields {
            self.str(k);
            self.str(v);
        }
    }
}

/// Reads values written by [`Enc`] from a slice.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.buf.len().saturating_sub(self.pos)
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes".into()))
    }

    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A length that must fit in the remaining bytes (each element takes at least one byte),
    /// so a corrupt count cannot trigger a huge allocation.
    pub fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        let remaining = self.buf.len().saturating_sub(self.pos) as u64;
        if n > remaining {
            return Err(DecodeError(format!(
                "length {n} exceeds the {remaining} remaining bytes"
            )));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
    }

    pub fn labels(&mut self) -> Result<Labels, DecodeError> {
        let n = self.len()?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            pairs.push((self.string()?, self.string()?));
        }
        Ok(Labels::new(pairs))
    }

    pub fn event(&mut self) -> Result<Event, DecodeError> {
        let timestamp_ms = self.varint()?;
        let kind = self.string()?;
        let labels = self.labels()?;
        let n = self.len()?;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            fields.push((self.string()?, self.string()?));
        }
        Ok(Event {
            timestamp_ms,
            kind,
            labels,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_truncation_is_an_error() {
        let mut e = Enc::default();
        e.uvarint(u64::MAX);
        e.varint(i64::MIN);
        e.varint(-1);
        e.str("héllo");
        e.labels(&Labels::metric("up", &[("job", "x")]));
        let mut d = Dec::new(&e.buf);
        assert_eq!(d.uvarint().unwrap(), u64::MAX);
        assert_eq!(d.varint().unwrap(), i64::MIN);
        assert_eq!(d.varint().unwrap(), -1);
        assert_eq!(d.string().unwrap(), "héllo");
        assert_eq!(d.labels().unwrap(), Labels::metric("up", &[("job", "x")]));
        assert!(d.is_empty());
        let cut = &e.buf[..e.buf.len() - 1];
        let mut d = Dec::new(cut);
        d.uvarint().unwrap();
        d.varint().unwrap();
        d.varint().unwrap();
        d.string().unwrap();
        assert!(d.labels().is_err());
        let mut d = Dec::new(&[0xff, 0xff, 0xff, 0x7f]);
        assert!(d.bytes().is_err());
    }
}
