//! `vigil-collector` as a library: the binary in `main.rs` only parses the command line and
//! calls into these modules, so tests and benchmarks drive exactly the code that runs live.

#![forbid(unsafe_code)]

pub mod api;
pub mod certs_cmd;
pub mod clock;
pub mod config;
pub mod gocompat;
pub mod gotemplate;
pub mod ingest;
pub mod notify;
pub mod query;
pub mod rules;
pub mod run;
pub mod signals;
pub mod storage;
pub mod telemetry;
