"""quiver/: Quiver watching itself, from its own /metrics (scraped as job="quiver" by
deploy/prometheus.yml), and the overview only Quiver can draw: SQL next to PromQL."""

from grafana_foundation_sdk.builders import dashboard

from common import graph, grid, label_variable, new_dashboard, prom, single, sql, sql_datasource_variable

SEL = 'job=~"$job", instance=~"$instance"'


def server() -> dashboard.Dashboard:
    d = new_dashboard(
        "quiver-server",
        "Quiver / Server",
        ["meta-monitoring"],
        "Ingest, head, WAL, blocks and compaction, queries, rules, notifications and scrapes of Quiver itself.",
    )
    d = d.with_variable(label_variable("job", "Job", 'label_values(quiver_tsdb_head_series, job)'))
    d = d.with_variable(label_variable("instance", "Instance", 'label_values(quiver_tsdb_head_series{job=~"$job"}, instance)'))
    d = d.with_row(dashboard.Row("Ingest and head"))
    d = d.with_panel(single("Head series", "short", prom(f"sum(quiver_tsdb_head_series{{{SEL}}})")))
    d = d.with_panel(single("Head samples", "short", prom(f"sum(quiver_tsdb_head_samples{{{SEL}}})")))
    d = d.with_panel(
        single(
            "Head chunk memory per sample",
            "bytes",
            prom(f"sum(quiver_tsdb_head_chunks_bytes{{{SEL}}}) / sum(quiver_tsdb_head_samples{{{SEL}}})"),
            description="Bytes of compressed chunks per sample held in the head.",
        )
    )
    d = d.with_panel(
        graph(
            "Samples appended per second",
            "short",
            prom(f"sum by (instance) (rate(quiver_tsdb_head_samples_appended_total{{{SEL}}}[$__rate_interval]))", "{{instance}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Samples rejected per second",
            "short",
            prom(f"sum by (reason) (rate(quiver_tsdb_samples_rejected_total{{{SEL}}}[$__rate_interval]))", "{{reason}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Remote-write requests per second",
            "reqps",
            prom(f"sum by (code) (rate(quiver_remote_write_requests_total{{{SEL}}}[$__rate_interval]))", "{{code}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Head memory",
            "bytes",
            prom(f"sum by (instance) (quiver_tsdb_head_chunks_bytes{{{SEL}}})", "chunks {{instance}}"),
        )
    )
    d = d.with_row(dashboard.Row("WAL"))
    d = d.with_panel(graph("WAL size", "bytes", prom(f"sum by (instance) (quiver_tsdb_wal_storage_size_bytes{{{SEL}}})", "{{instance}}")))
    d = d.with_panel(
        graph(
            "WAL fsync latency (p99)",
            "s",
            prom(
                f"histogram_quantile(0.99, sum by (le, instance) (rate(quiver_tsdb_wal_fsync_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                "{{instance}}",
            ),
        )
    )
    d = d.with_row(dashboard.Row("Blocks and compaction"))
    d = d.with_panel(
        graph(
            "Bucket bytes by resolution and level",
            "bytes",
            prom(f"sum by (resolution, level) (quiver_bucket_bytes{{{SEL}}})", "{{resolution}} L{{level}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Blocks written and compactions per hour",
            "short",
            prom(f"sum(increase(quiver_tsdb_blocks_written_total{{{SEL}}}[1h]))", "blocks cut", "A"),
            prom(f"sum(increase(quiver_compactions_total{{{SEL}}}[1h]))", "compactions", "B"),
            prom(f"sum(increase(quiver_compactions_failed_total{{{SEL}}}[1h]))", "failed compactions", "C"),
        )
    )
    d = d.with_panel(
        graph(
            "Block cache hit ratio",
            "percentunit",
            prom(
                f'sum by (cache) (rate(quiver_cache_requests_total{{{SEL}, result="hit"}}[$__rate_interval])) / sum by (cache) (rate(quiver_cache_requests_total{{{SEL}}}[$__rate_interval]))',
                "{{cache}}",
            ),
        )
    )
    d = d.with_row(dashboard.Row("Queries"))
    d = d.with_panel(
        graph(
            "Queries per second",
            "reqps",
            prom(f"sum by (kind, outcome) (rate(quiver_promql_queries_total{{{SEL}}}[$__rate_interval]))", "PromQL {{kind}} {{outcome}}", "A"),
            prom(f"sum by (outcome) (rate(quiver_sql_queries_total{{{SEL}}}[$__rate_interval]))", "SQL {{outcome}}", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Query latency (p50, p99)",
            "s",
            prom(f"histogram_quantile(0.5, sum by (le) (rate(quiver_promql_query_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "PromQL p50", "A"),
            prom(f"histogram_quantile(0.99, sum by (le) (rate(quiver_promql_query_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "PromQL p99", "B"),
            prom(f"histogram_quantile(0.5, sum by (le) (rate(quiver_sql_query_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "SQL p50", "C"),
            prom(f"histogram_quantile(0.99, sum by (le) (rate(quiver_sql_query_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", "SQL p99", "D"),
        )
    )
    d = d.with_row(dashboard.Row("Rules and notifications"))
    d = d.with_panel(
        graph(
            "Rule evaluations and failures per second",
            "short",
            prom(f"sum(rate(quiver_rule_evaluations_total{{{SEL}}}[$__rate_interval]))", "evaluations", "A"),
            prom(f"sum(rate(quiver_rule_evaluation_failures_total{{{SEL}}}[$__rate_interval]))", "failures", "B"),
            prom(f"sum(rate(quiver_rule_group_iterations_missed_total{{{SEL}}}[$__rate_interval]))", "missed iterations", "C"),
        )
    )
    d = d.with_panel(
        graph(
            "Slowest rule groups",
            "s",
            prom(f"topk(5, max by (rule_group) (quiver_rule_group_last_duration_seconds{{{SEL}}}))", "{{rule_group}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Notification queue",
            "short",
            prom(f"sum(quiver_notifications_queue_length{{{SEL}}})", "queued", "A"),
            prom(f"sum(quiver_notifications_queue_capacity{{{SEL}}})", "capacity", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Notifications sent, failed and dropped per second",
            "short",
            prom(f"sum(rate(quiver_notifications_sent_total{{{SEL}}}[$__rate_interval]))", "sent", "A"),
            prom(f"sum(rate(quiver_notifications_errors_total{{{SEL}}}[$__rate_interval]))", "errors", "B"),
            prom(f"sum(rate(quiver_notifications_dropped_total{{{SEL}}}[$__rate_interval]))", "dropped", "C"),
        )
    )
    d = d.with_row(dashboard.Row("Scrapes"))
    d = d.with_panel(single("Targets up", "short", prom("sum(up)")))
    d = d.with_panel(single("Targets down", "short", prom("count(up == 0) or vector(0)")))
    d = d.with_panel(
        graph(
            "Scrape duration by job",
            "s",
            prom("max by (job) (scrape_duration_seconds)", "{{job}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Samples scraped per second by job",
            "short",
            prom("sum by (job) (scrape_samples_scraped) / 15", "{{job}}"),
            description="Samples per scrape over the 15 s default interval.",
        )
    )
    return d


def overview() -> dashboard.Dashboard:
    d = new_dashboard(
        "quiver-sql-overview",
        "Quiver / Metrics in SQL",
        ["sql"],
        "What SQL over Quiver's tables adds to PromQL: cardinality and sample counts by metric and label, and long-range trends.",
    )
    d = d.with_variable(sql_datasource_variable())
    d = d.with_panel(
        grid(
            "Top metrics by series",
            sql("""SELECT metric, count(*) AS series FROM series
                   GROUP BY metric ORDER BY series DESC LIMIT 20"""),
            description="From the series table: every series Quiver knows, head and blocks.",
        )
    )
    d = d.with_panel(
        grid(
            "Top metrics by samples in the range",
            sql("""SELECT metric, count(*) AS samples FROM samples
                   WHERE $__timeFilter(timestamp)
                   GROUP BY metric ORDER BY samples DESC LIMIT 20"""),
        )
    )
    d = d.with_panel(
        grid(
            "Cardinality by label",
            sql("""SELECT label, count(DISTINCT value) AS distinct_values, count(*) AS series
                   FROM (SELECT unnest(map_keys(labels)) AS label,
                                unnest(map_values(labels)) AS value FROM series) AS pairs
                   GROUP BY label ORDER BY distinct_values DESC LIMIT 20"""),
        )
    )
    d = d.with_panel(
        graph(
            "Samples per scrape interval (SQL)",
            "short",
            sql(
                """SELECT $__timeGroupAlias(timestamp, '5m'), count(*) AS samples FROM samples
                   WHERE $__timeFilter(timestamp) GROUP BY 1 ORDER BY 1""",
                fmt="time_series",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Series per job (PromQL)",
            "short",
            prom("count by (job) ({__name__=~\".+\"})", "{{job}}"),
        )
    )
    return d


DASHBOARDS = {"quiver": [server, overview]}
