//! Local checks that run on every collected batch: the streaming anomaly detector.
