//! Durable time-series storage: a checksummed WAL, the in-memory head, and retention.

pub mod matcher;

pub use matcher::{MatchOp, Matcher, MatcherError};
