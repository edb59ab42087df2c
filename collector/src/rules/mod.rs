//! Prometheus-format alerting and recording rules: [`file`] loads and validates rule files
//! as strictly as `promtool check rules`, [`eval`] evaluates a group at a
//! timestamp with Prometheus's alert state machine (pending → firing → resolved, `for`,
//! `keep_firing_for`, `limit`, `ALERTS`/`ALERTS_FOR_STATE`), and [`promtool`] implements
//! `check rules` and `test rules` with promtool's file formats and output.

pub mod eval;
pub mod file;
pub mod manager;
pub mod promtool;
