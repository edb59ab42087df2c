//! The wire codec: every message on a QUIC stream is one frame, a 4-byte big-endian length
//! followed by a bincode 2.0.1 body. Batches travel inside frames as snappy-compressed
//! bincode, so the collector can write the compressed bytes to its WAL untouched. This is
//! the only module that knows about bincode; every decode is bounded in size.

use crate::model::Batch;
use serde::{Deserialize, Serialize};

/// Largest frame body accepted, in bytes. Larger frames are refused before any allocation.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Largest batch accepted after decompression, in bytes.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Length of the frame header.
pub const HEADER_BYTES: usize = 4;
/// Largest command frame body ([`CollectorMessage::RunAction`]) an agent accepts, and largest
/// answer ([`AgentMessage::ActionResult`]) the collector accepts, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Longest action name a [`CollectorMessage::RunAction`] may carry, in bytes.
pub const MAX_ACTION_NAME_BYTES: usize = 256;

/// Errors from encoding or decoding frames and batches.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length prefix announces more than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    FrameTooLarge(usize),
    /// A compressed batch would expand past [`MAX_BATCH_BYTES`].
    #[error("batch of {0} bytes after decompression exceeds the limit of {MAX_BATCH_BYTES} bytes")]
    BatchTooLarge(usize),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The bytes end in the middle of a frame.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated { expected: usize, got: usize },
    /// Encoding failed (only possible for values beyond the size limits).
    #[error("encoding failed: {0}")]
    Encode(String),
    /// Snappy rejected the payload.
    #[error("compression: {0}")]
    Compression(#[from] snap::Error),
}

/// Why the collector refused a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The payload could not be decoded; resending will not help.
    Malformed(String),
    /// The collector could not make it durable right now; retry later.
    Unavailable(String),
}

/// Messages the agent sends. Each batch travels on its own bidirectional stream and is
/// answered there, so many batches can be in flight at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// One numbered batch. `stream_id` names the agent's buffer incarnation: a buffer that
    /// was lost and recreated starts a new stream so its sequence numbers start over safely.
    Batch {
        stream_id: u64,
        seq: u64,
        /// True for events that must overtake the backlog (anomalies, remediation results).
        priority: bool,
        /// When the agent collected the batch (Unix ms); the collector reports its lag from it.
        created_ms: i64,
        /// Snappy-compressed bincode of a [`Batch`]; see [`encode_batch`].
        payload: Vec<u8>,
    },
    /// The agent's answer to a [`CollectorMessage::RunAction`], on the stream the request
    /// came on.
    ActionResult {
        request_id: u64,
        /// True when the action ran (or was a dry run), false when it was refused.
        accepted: bool,
        /// A one-line summary: the outcome with exit code and duration, or the refusal reason.
        detail: String,
        /// How it went: `ok`, `failed`, `timeout`, `spawn_error`, `dry_run` or `refused`.
        outcome: String,
        /// The exit code of a finished run.
        exit_code: Option<i32>,
        /// The signal that ended a run, if any.
        signal: Option<i32>,
        /// How long the run took.
        duration_ms: Option<u64>,
        /// The start of stdout and stderr (the agent's audit log keeps more).
        stdout: String,
        stderr: String,
    },
}

/// Messages the collector sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CollectorMessage {
    /// The batch `seq` of `stream_id` is durable (or was already stored earlier).
    Ack {
        stream_id: u64,
        seq: u64,
        duplicate: bool,
    },
    /// The batch was not stored.
    Reject {
        stream_id: u64,
        seq: u64,
        reason: RejectReason,
    },
    /// Ask the agent to run a locally configured action by name.
    RunAction { request_id: u64, action: String },
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_BATCH_BYTES>()
}

/// Encodes a message as one frame: length prefix plus body.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0u8; HEADER_BYTES];
    bincode::serde::encode_into_std_write(msg, &mut out, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let len = out.len() - HEADER_BYTES;
    if len > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge(len));
    }
    out[..HEADER_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Reads the length from a frame header, refusing lengths above the limit.
pub fn frame_len(header: [u8; HEADER_BYTES]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body (without its header). Trailing bytes are an error.
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, CodecError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge(body.len()));
    }
    let (msg, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes after message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Decodes one whole frame (header plus body) from `bytes`.
pub fn decode_frame<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() < HEADER_BYTES {
        return Err(CodecError::Truncated {
            expected: HEADER_BYTES,
            got: bytes.len(),
        });
    }
    let len = frame_len(bytes[..HEADER_BYTES].try_into().expect("4 bytes"))?;
    let body = &bytes[HEADER_BYTES..];
    if body.len() != len {
        return Err(CodecError::Truncated {
            expected: len,
            got: body.len(),
        });
    }
    decode_body(body)
}

/// Encodes a batch as snappy-compressed bincode, the payload of [`AgentMessage::Batch`].
pub fn encode_batch(batch: &Batch) -> Result<Vec<u8>, CodecError> {
    compress_batch(&encode_batch_raw(batch)?)
}

/// The bincode of a batch before compression: what [`compress_batch`] turns into a payload.
pub fn encode_batch_raw(batch: &Batch) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(batch, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Compresses batch bincode (from [`encode_batch_raw`] or written to the same layout) into a
/// payload that [`decode_batch`] reads.
pub fn compress_batch(raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(snap::raw::Encoder::new().compress_vec(raw)?)
}

/// Decodes a payload made by [`encode_batch`], checking the decompressed size first.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, CodecError> {
    let len = snap::raw::decompress_len(payload)?;
    if len > MAX_BATCH_BYTES {
        return Err(CodecError::BatchTooLarge(len));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(payload)?;
    let (batch, used) = bincode::serde::decode_from_slice(&raw, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != raw.len() {
        return Err(CodecError::Malformed("trailing bytes after batch".into()));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Point, Series};

    fn batch() -> Batch {
        Batch {
            series: vec![Series {
                labels: Labels::metric("node_load1", &[("instance", "h1")]),
                points: vec![Point {
                    timestamp_ms: 1_700_000_000_000,
                    value: 0.5,
                }],
            }],
            events: vec![],
        }
    }

    #[test]
    fn batch_round_trips_through_a_frame() {
        let payload = encode_batch(&batch()).unwrap();
        let msg = AgentMessage::Batch {
            stream_id: 7,
            seq: 42,
            priority: false,
            created_ms: 1_700_000_000_000,
            payload,
        };
        let frame = encode_frame(&msg).unwrap();
        let back: AgentMessage = decode_frame(&frame).unwrap();
        assert_eq!(back, msg);
        let AgentMessage::Batch { payload, .. } = back else {
            panic!("not a batch")
        };
        assert_eq!(decode_batch(&payload).unwrap(), batch());
    }

    #[test]
    fn action_messages_round_trip_and_fit_the_command_limit() {
        let req = CollectorMessage::RunAction {
            request_id: u64::MAX,
            action: "x".repeat(MAX_ACTION_NAME_BYTES),
        };
        let frame = encode_frame(&req).unwrap();
        assert!(frame.len() - HEADER_BYTES <= MAX_COMMAND_BYTES);
        assert_eq!(decode_frame::<CollectorMessage>(&frame).unwrap(), req);
        // The largest answer the agent builds (1 KiB excerpts of multi-byte text) fits too.
        let answer = AgentMessage::ActionResult {
            request_id: 1,
            accepted: true,
            detail: "failed, exit code 3, signal 9, 30000 ms".into(),
            outcome: "failed".into(),
            exit_code: Some(3),
            signal: Some(9),
            duration_ms: Some(30_000),
            stdout: "é".repeat(512),
            stderr: "é".repeat(512),
        };
        let frame = encode_frame(&answer).unwrap();
        assert!(frame.len() - HEADER_BYTES <= MAX_COMMAND_BYTES);
        assert_eq!(decode_frame::<AgentMessage>(&frame).unwrap(), answer);
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_reading_the_body() {
        let header = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(matches!(
            frame_len(header),
            Err(CodecError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let garbage = [0xffu8; 64];
        assert!(decode_body::<AgentMessage>(&garbage).is_err());
        assert!(decode_batch(&garbage).is_err());
        let mut frame = encode_frame(&CollectorMessage::Ack {
            stream_id: 1,
            seq: 2,
            duplicate: false,
        })
        .unwrap();
        frame.push(0);
        assert!(decode_frame::<CollectorMessage>(&frame).is_err());
    }

    #[test]
    fn a_huge_announced_vec_length_does_not_allocate() {
        // variant 0 (Batch), then stream_id, seq, priority, then a varint vec length of u64::MAX.
        let mut body = vec![0u8, 1, 1, 0];
        body.push(253);
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_body::<AgentMessage>(&body).is_err());
    }
}
