//! Collection: host metrics under node_exporter's names, and scrapes of application
//! `/metrics` endpoints with Prometheus's `up`/`job`/`instance` conventions.
//!
//! [`HostCollector`] reads `/proc`, `/sys`, `statfs(2)` and `uname(2)` (roots configurable
//! for a DaemonSet that mounts the host's) and returns node_exporter-compatible series.
//! [`scrape`] fetches one Prometheus or OpenMetrics text endpoint over HTTP/1.1 with a
//! timeout and a body cap, labels the samples with `job` and `instance` and adds the
//! synthetic `up` and `scrape_*` series. Neither adds host identity labels (`host`,
//! `instance` for host metrics): the caller does. Both only produce series; buffering and
//! shipping belong to the caller.

pub mod host;
pub mod metadata;
pub mod scrape;

pub use host::{CollectError, HostCollector, HostError, HostOptions};
pub use metadata::{host_metadata, MetadataTracker, METADATA_EVENT_KIND};
pub use scrape::{scrape, ScrapeClient, ScrapeError, ScrapeOptions, ScrapeResult, ScrapeTarget};
