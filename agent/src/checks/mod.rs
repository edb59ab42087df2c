//! Local checks that run on every collected batch: the streaming anomaly detector
//! ([`anomaly`]) and its offline driver over Numenta Anomaly Benchmark files ([`nab`]).

pub mod anomaly;
pub mod nab;
