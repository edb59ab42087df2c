//! Vigil's protocol crate: the message types both programs exchange, the bincode codec and
//! length-prefixed framing, per-agent sequence/acknowledgement bookkeeping, and the TLS and
//! certificate helpers. Like `quinn-proto`, it owns no sockets, clocks or runtime: the agent
//! and the collector drive it and do all I/O themselves.

#![forbid(unsafe_code)]

pub mod calendar;
pub mod certs;
pub mod codec;
pub mod config;
pub mod duration;
pub mod model;
pub mod seq;

/// The ALPN protocol identifier both ends require on the QUIC handshake.
pub const ALPN: &[u8] = b"vigil/1";
pub mod exposition;
