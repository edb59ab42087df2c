//! Prometheus-format alerting and recording rules: [`file`] loads and validates rule files
//! as strictly as `promtool check rules`, [`template`] expands alert labels and annotations
//! (Go `text/template` subset with Prometheus's functions), [`eval`] evaluates a group at a
//! timestamp with Prometheus's alert state machine (pending → firing → resolved, `for`,
//! `keep_firing_for`, `limit`, `ALERTS`/`ALERTS_FOR_STATE`), and [`promtool`] implements
//! `check rules` and `test rules` with promtool's file formats and output.

pub mod eval;
pub mod file;
pub mod gotime;
pub mod manager;
pub mod promtool;
pub mod template;
