//! Quiver's own instruments, exposed on `/metrics` in the Prometheus text format.
//!
//! Each subsystem gets a small struct of handles so it can count without knowing about the
//! registry or the HTTP layer.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Instruments of the write path and storage.
#[derive(Clone)]
pub struct StorageMetrics {
    pub samples_appended: IntCounter,
    pub samples_rejected: IntCounterVec,
    pub head_series: IntGauge,
    pub head_samples: IntGauge,
    pub head_chunk_bytes: IntGauge,
    pub wal_bytes: IntGauge,
    pub wal_fsyncs: IntCounter,
    pub wal_fsync_seconds: Histogram,
    pub wal_corruptions: IntCounter,
    pub blocks_written: IntCounter,
    pub block_bytes_written: IntCounter,
    /// Block cuts that failed (the head keeps the window; retried with backoff).
    pub block_cut_failures: IntCounter,
    /// When the last cut pass succeeded, in seconds since the epoch.
    pub block_cut_last_success: IntGauge,
    pub blocks_loaded: IntGauge,
    pub compactions: IntCounter,
    pub compaction_failures: IntCounter,
    pub compaction_seconds: Histogram,
    /// Blocks, objects and bytes the manifest names, by `resolution` and `level`.
    pub bucket_blocks: IntGaugeVec,
    pub bucket_objects: IntGaugeVec,
    pub bucket_bytes: IntGaugeVec,
    /// Objects deleted from the bucket: replaced blocks, expired blocks, leftovers of crashes.
    pub objects_deleted: IntCounter,
    /// Requests to the block read caches by `cache` and `result` (hit, miss).
    pub cache_requests: IntCounterVec,
    pub cache_evictions: IntCounterVec,
    pub cache_bytes: IntGaugeVec,
}

/// Instruments of the query layer.
#[derive(Clone)]
pub struct QueryMetrics {
    pub sql_queries: IntCounterVec,
    pub sql_query_seconds: Histogram,
    /// PromQL queries over the HTTP API, by `kind` (instant, range, explain: an `analyze`
    /// run) and `outcome`.
    pub promql_queries: IntCounterVec,
    pub promql_query_seconds: Histogram,
}

/// Instruments of the HTTP ingest endpoints.
#[derive(Clone)]
pub struct IngestMetrics {
    pub remote_write_requests: IntCounterVec,
    /// OTLP metrics requests by HTTP status code.
    pub otlp_requests: IntCounterVec,
    /// OTLP data points not stored, by reason.
    pub otlp_rejected_points: IntCounterVec,
}

/// Instruments of the PostgreSQL wire protocol.
#[derive(Clone)]
pub struct PostgresMetrics {
    /// Connections refused at start-up, by reason (`password`, `tls_required`).
    pub failed_logins: IntCounterVec,
}

impl PostgresMetrics {
    fn unregistered() -> PostgresMetrics {
        PostgresMetrics {
            failed_logins: counter_vec(
                "quiver_postgres_failed_logins_total",
                "PostgreSQL connections refused at start-up, by reason.",
                &["reason"],
            ),
        }
    }
}

/// Instruments of rule evaluation, by rule group (`file;name`, as Prometheus labels them).
#[derive(Clone)]
pub struct RuleMetrics {
    pub evaluations: IntCounterVec,
    pub evaluation_failures: IntCounterVec,
    pub iterations_missed: IntCounterVec,
    pub iterations: IntCounterVec,
    pub last_duration_seconds: prometheus::GaugeVec,
    pub evaluation_seconds: Histogram,
}

/// The registry and every instrument in it.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub storage: StorageMetrics,
    pub query: QueryMetrics,
    pub ingest: IngestMetrics,
    pub rules: RuleMetrics,
    pub notifier: crate::notifier::NotifierMetrics,
    pub postgres: PostgresMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let metrics = Metrics {
            storage: StorageMetrics::unregistered(),
            query: QueryMetrics::unregistered(),
            ingest: IngestMetrics::unregistered(),
            rules: RuleMetrics::unregistered(),
            notifier: notifier_metrics(),
            postgres: PostgresMetrics::unregistered(),
            registry,
        };
        metrics.register_all();
        metrics.initialize_label_values();
        metrics
    }

    fn register_all(&self) {
        let s = &self.storage;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(s.samples_appended.clone()),
            Box::new(s.samples_rejected.clone()),
            Box::new(s.head_series.clone()),
            Box::new(s.head_samples.clone()),
            Box::new(s.head_chunk_bytes.clone()),
            Box::new(s.wal_bytes.clone()),
            Box::new(s.wal_fsyncs.clone()),
            Box::new(s.wal_fsync_seconds.clone()),
            Box::new(s.wal_corruptions.clone()),
            Box::new(s.blocks_written.clone()),
            Box::new(s.block_bytes_written.clone()),
            Box::new(s.block_cut_failures.clone()),
            Box::new(s.block_cut_last_success.clone()),
            Box::new(s.blocks_loaded.clone()),
            Box::new(s.compactions.clone()),
            Box::new(s.compaction_failures.clone()),
            Box::new(s.compaction_seconds.clone()),
            Box::new(s.bucket_blocks.clone()),
            Box::new(s.bucket_objects.clone()),
            Box::new(s.bucket_bytes.clone()),
            Box::new(s.objects_deleted.clone()),
            Box::new(s.cache_requests.clone()),
            Box::new(s.cache_evictions.clone()),
            Box::new(s.cache_bytes.clone()),
            Box::new(self.query.sql_queries.clone()),
            Box::new(self.query.sql_query_seconds.clone()),
            Box::new(self.query.promql_queries.clone()),
            Box::new(self.query.promql_query_seconds.clone()),
            Box::new(self.ingest.remote_write_requests.clone()),
            Box::new(self.ingest.otlp_requests.clone()),
            Box::new(self.ingest.otlp_rejected_points.clone()),
            Box::new(self.rules.evaluations.clone()),
            Box::new(self.rules.evaluation_failures.clone()),
            Box::new(self.rules.iterations_missed.clone()),
            Box::new(self.rules.iterations.clone()),
            Box::new(self.rules.last_duration_seconds.clone()),
            Box::new(self.rules.evaluation_seconds.clone()),
            Box::new(self.notifier.sent.clone()),
            Box::new(self.notifier.errors.clone()),
            Box::new(self.notifier.dropped.clone()),
            Box::new(self.notifier.queue_length.clone()),
            Box::new(self.notifier.queue_capacity.clone()),
            Box::new(self.notifier.alertmanagers.clone()),
            Box::new(self.postgres.failed_logins.clone()),
        ];
        for c in collectors {
            // Names are fixed and unique in this file; a clash is a programming error caught
            // by the unit test below.
            self.registry
                .register(c)
                .expect("self-metric names are unique");
        }
    }

    /// Creates the known children of labelled counters, so they show up (at 0) before the
    /// first event, as dashboards and `rate()` expect.
    fn initialize_label_values(&self) {
        for reason in ["password", "tls_required"] {
            self.postgres.failed_logins.with_label_values(&[reason]);
        }
        for reason in ["out_of_bounds", "out_of_order", "invalid_labels"] {
            self.storage.samples_rejected.with_label_values(&[reason]);
        }
        for outcome in ["success", "error"] {
            self.query.sql_queries.with_label_values(&[outcome]);
            for kind in ["instant", "range", "explain"] {
                self.query
                    .promql_queries
                    .with_label_values(&[kind, outcome]);
            }
        }
    }

    /// Renders every instrument in the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding self-metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric name")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric name")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric name")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric")
}

impl StorageMetrics {
    /// Instruments not attached to any registry (tests, tools).
    pub fn unregistered() -> StorageMetrics {
        StorageMetrics {
            samples_appended: counter(
                "quiver_tsdb_head_samples_appended_total",
                "Samples accepted into the head.",
            ),
            samples_rejected: counter_vec(
                "quiver_tsdb_samples_rejected_total",
                "Samples refused, by reason.",
                &["reason"],
            ),
            head_series: gauge("quiver_tsdb_head_series", "Series in the head."),
            head_samples: gauge("quiver_tsdb_head_samples", "Samples held in the head."),
            head_chunk_bytes: gauge(
                "quiver_tsdb_head_chunks_bytes",
                "Memory held by the head's compressed sample chunks (measured every minute).",
            ),
            wal_bytes: gauge(
                "quiver_tsdb_wal_storage_size_bytes",
                "Size of the WAL on disk.",
            ),
            wal_fsyncs: counter("quiver_tsdb_wal_fsyncs_total", "fsync calls on the WAL."),
            wal_fsync_seconds: histogram(
                "quiver_tsdb_wal_fsync_duration_seconds",
                "Duration of WAL fsyncs.",
                vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0],
            ),
            wal_corruptions: counter(
                "quiver_tsdb_wal_corruptions_total",
                "Torn or corrupt WAL tails found and truncated at replay.",
            ),
            blocks_written: counter(
                "quiver_tsdb_blocks_written_total",
                "Parquet blocks written.",
            ),
            block_bytes_written: counter(
                "quiver_tsdb_block_bytes_written_total",
                "Bytes of Parquet written for blocks.",
            ),
            block_cut_failures: counter(
                "quiver_tsdb_block_cuts_failed_total",
                "Block cuts that failed; the head keeps the window and the cut is retried.",
            ),
            block_cut_last_success: gauge(
                "quiver_tsdb_block_cut_last_success_timestamp_seconds",
                "When the last block cut pass succeeded (0: none yet).",
            ),
            blocks_loaded: gauge("quiver_tsdb_blocks_loaded", "Blocks in the manifest."),
            compactions: counter(
                "quiver_compactions_total",
                "Blocks merged into a larger block.",
            ),
            compaction_failures: counter(
                "quiver_compactions_failed_total",
                "Compactions that failed (retried on the next pass).",
            ),
            compaction_seconds: histogram(
                "quiver_compaction_duration_seconds",
                "Duration of one compaction: reading, merging and writing a block.",
                vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0],
            ),
            bucket_blocks: gauge_vec(
                "quiver_bucket_blocks",
                "Blocks named by the manifest, by resolution and compaction level.",
                &["resolution", "level"],
            ),
            bucket_objects: gauge_vec(
                "quiver_bucket_objects",
                "Objects of the blocks named by the manifest, by resolution and compaction level.",
                &["resolution", "level"],
            ),
            bucket_bytes: gauge_vec(
                "quiver_bucket_bytes",
                "Bytes of the blocks named by the manifest, by resolution and compaction level.",
                &["resolution", "level"],
            ),
            objects_deleted: counter(
                "quiver_bucket_objects_deleted_total",
                "Objects deleted: sources of compactions, expired blocks, leftovers of crashes.",
            ),
            cache_requests: counter_vec(
                "quiver_cache_requests_total",
                "Lookups in the block read caches, by cache and result (hit or miss).",
                &["cache", "result"],
            ),
            cache_evictions: counter_vec(
                "quiver_cache_evictions_total",
                "Entries evicted from the block read caches for space.",
                &["cache"],
            ),
            cache_bytes: gauge_vec(
                "quiver_cache_size_bytes",
                "Bytes held by the block read caches.",
                &["cache"],
            ),
        }
    }
}

impl QueryMetrics {
    pub fn unregistered() -> QueryMetrics {
        QueryMetrics {
            sql_queries: counter_vec(
                "quiver_sql_queries_total",
                "SQL queries, by outcome.",
                &["outcome"],
            ),
            sql_query_seconds: histogram(
                "quiver_sql_query_duration_seconds",
                "Duration of SQL queries.",
                prometheus::exponential_buckets(0.001, 4.0, 9).unwrap_or_default(),
            ),
            promql_queries: counter_vec(
                "quiver_promql_queries_total",
                "PromQL queries over the HTTP API, by kind and outcome.",
                &["kind", "outcome"],
            ),
            promql_query_seconds: histogram(
                "quiver_promql_query_duration_seconds",
                "Duration of PromQL queries over the HTTP API, queueing for a slot included.",
                prometheus::exponential_buckets(0.001, 4.0, 9).unwrap_or_default(),
            ),
        }
    }
}

impl RuleMetrics {
    pub fn unregistered() -> RuleMetrics {
        let group = &["rule_group"];
        RuleMetrics {
            evaluations: counter_vec(
                "quiver_rule_evaluations_total",
                "Rule evaluations, by group.",
                group,
            ),
            evaluation_failures: counter_vec(
                "quiver_rule_evaluation_failures_total",
                "Rule evaluations that failed, by group.",
                group,
            ),
            iterations_missed: counter_vec(
                "quiver_rule_group_iterations_missed_total",
                "Group evaluations skipped because the previous one ran too long.",
                group,
            ),
            iterations: counter_vec(
                "quiver_rule_group_iterations_total",
                "Scheduled group evaluations, run or missed.",
                group,
            ),
            last_duration_seconds: prometheus::GaugeVec::new(
                Opts::new(
                    "quiver_rule_group_last_duration_seconds",
                    "Duration of the group's last evaluation.",
                ),
                group,
            )
            .expect("valid metric name"),
            evaluation_seconds: histogram(
                "quiver_rule_evaluation_duration_seconds",
                "Duration of single rule evaluations.",
                prometheus::exponential_buckets(0.001, 4.0, 8).unwrap_or_default(),
            ),
        }
    }
}

fn notifier_metrics() -> crate::notifier::NotifierMetrics {
    let am = &["alertmanager"];
    crate::notifier::NotifierMetrics {
        sent: counter_vec(
            "quiver_notifications_sent_total",
            "Alerts delivered, by Alertmanager.",
            am,
        ),
        errors: counter_vec(
            "quiver_notifications_errors_total",
            "Alerts whose delivery failed, by Alertmanager.",
            am,
        ),
        dropped: counter(
            "quiver_notifications_dropped_total",
            "Alerts dropped because the queue was full.",
        ),
        queue_length: gauge(
            "quiver_notifications_queue_length",
            "Alerts waiting to be sent.",
        ),
        queue_capacity: gauge(
            "quiver_notifications_queue_capacity",
            "Capacity of the alert queue.",
        ),
        alertmanagers: gauge(
            "quiver_notifications_alertmanagers_discovered",
            "Alertmanagers alerts are sent to.",
        ),
    }
}

impl IngestMetrics {
    pub fn unregistered() -> IngestMetrics {
        IngestMetrics {
            remote_write_requests: counter_vec(
                "quiver_remote_write_requests_total",
                "Remote-write requests, by HTTP status code and protocol version (1.0, 2.0; empty when the request named none Quiver reads).",
                &["code", "version"],
            ),
            otlp_requests: counter_vec(
                "quiver_otlp_requests_total",
                "OTLP metrics requests (/api/v1/otlp/v1/metrics), by HTTP status code.",
                &["code"],
            ),
            otlp_rejected_points: counter_vec(
                "quiver_otlp_rejected_data_points_total",
                "OTLP data points not stored: translation (delta temporality, exponential histograms, invalid names) or storage (out of order, out of bounds).",
                &["reason"],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_families() {
        let m = Metrics::new();
        m.storage.samples_appended.inc_by(3);
        m.query.sql_queries.with_label_values(&["success"]).inc();
        let text = m.render();
        assert!(text.contains("quiver_tsdb_head_samples_appended_total 3"));
        assert!(text.contains("# TYPE quiver_sql_query_duration_seconds histogram"));
    }
}
