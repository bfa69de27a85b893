//! Integration tests: one binary (each test binary links all of DataFusion), one module per
//! capability. Tests start real processes on loopback and stop them when done.

mod api_diff;
mod api_peers;
mod blocks;
mod common;
mod compaction;
mod crash;
mod dashboards;
mod deploy;
mod grafana;
mod histograms;
mod http;
mod longterm_diff;
mod otlp;
mod postgres;
mod prepared;
mod prometheus_peer;
mod promql_diff;
mod promql_fuzz;
mod promqltest;
mod query_tier;
mod re2;
mod remote_write;
mod rules;
mod scrape;
mod soak;
mod sql;
mod start_timestamps;
mod status;
mod storage;
mod web_config;
mod webui;
