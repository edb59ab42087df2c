//! Collection: host metrics under node_exporter's names, and scrapes of application
//! `/metrics` endpoints with Prometheus's `up`/`job`/`instance` conventions.
