//! The Prometheus text exposition format: parsing scraped pages and rendering series.
