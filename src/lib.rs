//! Quiver: a Prometheus-compatible metrics server on Arrow, Parquet and DataFusion.
//!
//! Data flows left to right through the modules, as in Prometheus's own layout:
//! `scrape`/`api::write` -> `storage` -> `query` -> `api`. See ARCHITECTURE.md.

pub mod api;
pub mod config;
pub mod discovery;
pub mod gocompat;
pub mod metrics;
pub mod model;
pub mod notifier;
pub mod otlp;
pub mod pem;
pub mod postgres;
pub mod prompb;
pub mod query;
pub mod rules;
pub mod scrape;
pub mod server;
pub mod storage;
#[cfg(test)]
mod testutil;
pub mod ui;
pub mod web;

/// The Prometheus version whose HTTP API and PromQL semantics Quiver follows; reported by
/// `/api/v1/status/buildinfo` so clients pick the right feature set.
pub const PROMETHEUS_COMPAT_VERSION: &str = "3.0.0";
