//! Local checks that run on every collected batch: the streaming anomaly detector
//! ([`anomaly`]), its offline driver over Numenta Anomaly Benchmark files ([`nab`]), and the
//! configured threshold and anomaly checks that turn series into events ([`threshold`]).

pub mod anomaly;
pub mod nab;
pub mod threshold;
