//! Query engines over storage: SQL now, PromQL (translated to DataFusion plans) next.

pub mod promql;
pub mod sql;
