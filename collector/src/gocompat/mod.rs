//! Compatibility with Go's standard library where Prometheus's and Alertmanager's output
//! depends on it: [`time`] formats and parses times as Go's `time` package does (layouts,
//! RFC 3339), and [`strings`] quotes and escapes strings as `strconv`, `net/url` and
//! `net/textproto` do. The Go template engine ([`crate::gotemplate`]), the rules and the
//! notification pipeline all use these, so none of them owns them.

pub mod strings;
pub mod time;

pub use strings::{canonical_mime_header_key, go_quote, url_query_escape};
pub use time::{parse_rfc3339, rfc3339, unix_parts};
