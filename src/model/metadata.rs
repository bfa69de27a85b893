//! What a metric family declares about itself (its `# TYPE`, `# HELP` and `# UNIT` lines):
//! read by scraping, shown by the metadata APIs.

/// Type of a metric family as declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` in 0.0.4, `unknown` in OpenMetrics, or no `# TYPE` line.
    Unknown,
}

impl MetricType {
    /// The name Prometheus's metadata APIs give the type.
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// Metadata of one metric family, gathered from its HELP, TYPE and UNIT lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub metric_family: String,
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
}
