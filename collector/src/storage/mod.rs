//! Durable time-series storage: a checksummed WAL, the in-memory head, and retention.
