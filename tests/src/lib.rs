//! Helpers shared by the end-to-end tests live in `tests/tests/util`; this crate has no library code.

#![forbid(unsafe_code)]
