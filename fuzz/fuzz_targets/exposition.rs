//! Fuzzes the exposition-format parser the agent runs on every scraped page
//! (`exposition::parse_with`, as `collect::scrape::scrape` calls it), in both the text
//! format and OpenMetrics, with the agent's default limits, and with the format sniffed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil_shared::exposition::{parse, parse_with, Format, Limits};

fuzz_target!(|data: &[u8]| {
    // The scraper refuses bodies that are not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        if let Ok(p) = parse_with(text, 1_700_000_000_000, format, &limits) {
            assert!(p.series.len() <= limits.max_samples);
            assert!(p.series.iter().all(|s| s.points.len() == 1));
        }
    }
    let _ = parse(text, 0);
});
