//! PromQL evaluation over the storage, behind the Prometheus HTTP API.
