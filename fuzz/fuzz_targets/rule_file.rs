//! Fuzzes the rule-file YAML loader (`rules::file::load_str`, which `load_file` calls on the
//! file's text): YAML parsing, then rulefmt validation, which parses every expression as
//! PromQL and every annotation and label as a Go template.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_collector::rules::file::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 16 * 1024 {
        return;
    }
    let _ = load_str(text, "rules.yml").map_err(|e| e.to_string());
});
