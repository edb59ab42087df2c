//! Fuzzes the Alertmanager YAML loader (`notify::Config::load_str`, which `load_file` calls on
//! the file's text): parsing, unknown-field detection, validation and error location.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_collector::notify::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 16 * 1024 {
        return;
    }
    let _ = Config::load_str(text, "alertmanager.yml").map_err(|e| e.to_string());
});
