//! Query engines over storage: PromQL (translated to DataFusion plans) and SQL, both reading
//! through `scan`.

pub mod promql;
pub mod scan;
pub mod sql;
