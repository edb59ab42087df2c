//! Loading a program's configuration: read the TOML file (an error names the file, and for
//! a parse error the line and field), overlay the flags, validate as a whole. On failure
//! the binaries print `Invalid configuration: …` with every problem and exit 64, without
//! having bound anything; `check-config FILE` does only this and prints `FILE: OK`.

use crate::EXIT_USAGE;
use std::path::Path;
use std::process::ExitCode;
use vigil_shared::config::{ConfigError, ConfigFile};

/// Reads and parses a config file.
pub fn load<C: serde::de::DeserializeOwned>(path: &Path) -> Result<C, ConfigError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: p.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: p,
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })
}

/// The settings from the file at `path` (none: all defaults) with `flags` over it.
pub fn settings<C: ConfigFile>(path: Option<&Path>, flags: C) -> Result<C::Settings, ConfigError> {
    let file = match path {
        Some(p) => load::<C>(p)?,
        None => C::default(),
    };
    file.overlay(flags).validate()
}

/// [`settings`], or the exit code after printing `Invalid configuration: …`.
pub fn settings_or_exit<C: ConfigFile>(
    path: Option<&Path>,
    flags: C,
) -> Result<C::Settings, ExitCode> {
    settings(path, flags).map_err(|e| {
        eprintln!("Invalid configuration: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// `check-config --config FILE`: `FILE: OK` and 0, or every problem and 64.
pub fn check_config<C: ConfigFile>(path: &Path) -> ExitCode {
    match settings_or_exit(Some(path), C::default()) {
        Ok(_) => {
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
