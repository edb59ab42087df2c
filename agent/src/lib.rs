//! `vigil-agent` as a library: the binary in `main.rs` only parses the command line and
//! calls into these modules, so tests and benchmarks drive exactly the code that runs live.

#![forbid(unsafe_code)]

pub mod buffer;
pub mod checks;
pub mod clock;
pub mod collect;
pub mod config;
pub mod remediate;
pub mod run;
pub mod ship;
pub mod status;
pub mod telemetry;
