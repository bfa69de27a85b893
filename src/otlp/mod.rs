//! OpenTelemetry metrics (OTLP) as Prometheus 3.x ingests them: `names` turns metric names,
//! units and attribute keys into Prometheus names under a translation strategy, and
//! `translate` turns an `ExportMetricsServiceRequest` into series of samples and exemplars.
//! The HTTP receiver is `api::otlp`.

mod names;
mod translate;

pub use names::TranslationStrategy;
pub use translate::{Series, Translated, translate};

#[cfg(test)]
mod tests;
