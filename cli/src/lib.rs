//! What `vigil-agent` and `vigil-collector` do at the edge of the process, in one place so
//! the two behave alike: logging to stderr (`RUST_LOG`, default `info`), command-line errors
//! and the exit codes (0 ok, [`EXIT_USAGE`] for bad usage or configuration, 1 runtime
//! failure), config files overlaid by flags and `check-config` ([`config`]), and the async
//! runtime with its shutdown signals ([`runtime`]). Each `main.rs` keeps only its own
//! arguments and what it runs.

#![forbid(unsafe_code)]

pub mod config;
pub mod runtime;

use std::process::ExitCode;

/// Exit code for bad usage or an invalid configuration (`EX_USAGE` of sysexits.h).
pub const EXIT_USAGE: u8 = 64;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Parses the command line. On `--help` or `--version` clap's text goes to stdout and the
/// exit code is 0; on a usage error it goes to stderr and the code is [`EXIT_USAGE`].
pub fn parse_args<C: clap::Parser>() -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
        let _ = e.print();
        ExitCode::from(code)
    })
}
