//! Fuzzes the Go template parser and executor: Prometheus's alert dialect
//! (`Template::parse` as rule validation calls it, then `execute` as `expand` does for every
//! alert annotation) and Alertmanager's notification dialect (`TemplateSet::add` for the
//! config's `templates:` files, `TemplateSet::check` for notification fields).
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vigil_collector::rules::template::{Template, TemplateData, TemplateSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 4096 {
        return;
    }
    if let Ok(t) = Template::parse("fuzz", text) {
        let d = TemplateData {
            labels: BTreeMap::from([
                ("instance".to_string(), "a:9100".to_string()),
                ("job".to_string(), "node".to_string()),
            ]),
            external_labels: BTreeMap::from([("cluster".to_string(), "eu".to_string())]),
            external_url: "http://vigil.example:9090".into(),
            value: 0.75,
            query: None,
        };
        let _ = t.execute(&d);
    }
    let mut set = TemplateSet::default();
    let _ = set.add("fuzz.tmpl", text);
    let _ = set.check(text);
});
