//! The shape both programs' settings share, without any I/O: a config file type that every
//! flag can override ([`Overlay`], [`ConfigFile`]) and validates as a whole into resolved
//! settings, and the [`ConfigError`] that names the file, line and field of a problem, or
//! every invalid setting at once. Reading the file is the binaries' job (`vigil-cli`).

/// Errors from loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema; the message names line and field.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// One or more settings are invalid; each line names one problem.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// A setting of a config file that a flag may override: the flag wins when it is given.
pub trait Overlay {
    /// Replaces `self` (from the file) with `flag` when the flag was given.
    fn overlay_with(&mut self, flag: Self);
}

/// A flag is given when it is set.
impl<T> Overlay for Option<T> {
    fn overlay_with(&mut self, flag: Self) {
        if flag.is_some() {
            *self = flag;
        }
    }
}

/// A repeatable flag is given when it is given at least once; it then replaces the file's
/// whole list.
impl<T> Overlay for Vec<T> {
    fn overlay_with(&mut self, flag: Self) {
        if !flag.is_empty() {
            *self = flag;
        }
    }
}

/// Overlays the named fields of `$flags` onto `$file` with [`Overlay::overlay_with`].
#[macro_export]
macro_rules! overlay_fields {
    ($file:ident, $flags:ident; $($field:ident),* $(,)?) => {
        $( $crate::config::Overlay::overlay_with(&mut $file.$field, $flags.$field); )*
    };
}

/// A program's configuration file: parsed from TOML, overlaid by the flags, then checked as
/// a whole (without binding anything) into the settings the program runs with.
pub trait ConfigFile: serde::de::DeserializeOwned + Default {
    /// The validated settings with defaults resolved.
    type Settings;

    /// Overlays `flags` onto `self` (the file): set fields win.
    fn overlay(self, flags: Self) -> Self;

    /// Checks everything that can be checked without starting, naming every problem.
    fn validate(self) -> Result<Self::Settings, ConfigError>;
}

#[cfg(test)]
mod tests {
    #[derive(Default)]
    struct Cfg {
        a: Option<u32>,
        b: Vec<u32>,
    }

    #[test]
    fn given_flags_win_and_absent_ones_keep_the_file() {
        let mut file = Cfg {
            a: Some(1),
            b: vec![1],
        };
        let flags = Cfg::default();
        crate::overlay_fields!(file, flags; a, b);
        assert_eq!((file.a, file.b.clone()), (Some(1), vec![1]));
        let flags = Cfg {
            a: Some(2),
            b: vec![2, 3],
        };
        crate::overlay_fields!(file, flags; a, b);
        assert_eq!((file.a, file.b), (Some(2), vec![2, 3]));
    }
}
