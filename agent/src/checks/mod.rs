//! Local checks that run on every collected batch: the streaming anomaly detector
//! ([`anomaly`]), its offline driver over Numenta Anomaly Benchmark files ([`nab`]), and the
//! configured threshold and anomaly checks that turn series into events ([`threshold`]), and
//! their per-series state as metrics ([`export`]).

pub mod anomaly;
pub mod export;
pub mod nab;
pub mod threshold;

/// Which event kind a check produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// A threshold condition (`threshold` events).
    Threshold,
    /// The anomaly detector (`anomaly` events).
    Anomaly,
}
