//! The async runtime a subcommand runs on, the exit code of what it ran, and the signals
//! that end a running program (SIGINT, SIGTERM).

use std::process::ExitCode;

/// Builds `builder` with I/O and timers enabled, or prints why not and gives exit code 1.
pub fn build(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("Error: starting the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Exit code 0, or 1 after printing the error with its whole chain of causes.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM (only SIGINT when SIGTERM cannot be listened for).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
