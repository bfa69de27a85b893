"""databases/: MySQL/MariaDB (mysqld_exporter), PostgreSQL (postgres_exporter) and Redis
(redis_exporter), matching the alert rules in rules/databases/."""

from grafana_foundation_sdk.builders import dashboard

from common import graph, label_variable, new_dashboard, prom, single

SEL = 'job=~"$job", instance=~"$instance"'


def _with_targets(d: dashboard.Dashboard, up_metric: str) -> dashboard.Dashboard:
    d = d.with_variable(label_variable("job", "Job", f"label_values({up_metric}, job)"))
    return d.with_variable(label_variable("instance", "Instance", f'label_values({up_metric}{{job=~"$job"}}, instance)'))


def mysql() -> dashboard.Dashboard:
    d = new_dashboard("quiver-mysql", "Databases / MySQL and MariaDB", ["mysql"], "Servers watched by mysqld_exporter.")
    d = _with_targets(d, "mysql_up")
    d = d.with_panel(single("Servers up", "short", prom(f"sum(mysql_up{{{SEL}}})")))
    d = d.with_panel(single("Uptime", "s", prom(f"min(mysql_global_status_uptime{{{SEL}}})")))
    d = d.with_panel(
        single(
            "Connections used",
            "percentunit",
            prom(f"max(mysql_global_status_threads_connected{{{SEL}}} / mysql_global_variables_max_connections{{{SEL}}})"),
        )
    )
    d = d.with_panel(
        graph(
            "Queries per second",
            "qps",
            prom(f"rate(mysql_global_status_questions{{{SEL}}}[$__rate_interval])", "{{instance}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Threads",
            "short",
            prom(f"mysql_global_status_threads_connected{{{SEL}}}", "{{instance}} connected", "A"),
            prom(f"mysql_global_status_threads_running{{{SEL}}}", "{{instance}} running", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Commands per second",
            "short",
            prom(f"topk(8, sum by (command) (rate(mysql_global_status_commands_total{{{SEL}}}[$__rate_interval])))", "{{command}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Slow queries and aborted connections per second",
            "short",
            prom(f"rate(mysql_global_status_slow_queries{{{SEL}}}[$__rate_interval])", "{{instance}} slow", "A"),
            prom(f"rate(mysql_global_status_aborted_connects{{{SEL}}}[$__rate_interval])", "{{instance}} aborted connects", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "InnoDB buffer pool",
            "bytes",
            prom(f"mysql_global_variables_innodb_buffer_pool_size{{{SEL}}}", "{{instance}} size"),
        )
    )
    d = d.with_panel(
        graph(
            "Network traffic",
            "Bps",
            prom(f"rate(mysql_global_status_bytes_received{{{SEL}}}[$__rate_interval])", "{{instance}} received", "A"),
            prom(f"rate(mysql_global_status_bytes_sent{{{SEL}}}[$__rate_interval])", "{{instance}} sent", "B"),
        )
    )
    return d


def postgresql() -> dashboard.Dashboard:
    d = new_dashboard("quiver-postgresql", "Databases / PostgreSQL", ["postgresql"], "Servers watched by postgres_exporter.")
    d = _with_targets(d, "pg_up")
    d = d.with_panel(single("Servers up", "short", prom(f"sum(pg_up{{{SEL}}})")))
    d = d.with_panel(
        single(
            "Connections used",
            "percentunit",
            prom(f"sum(pg_stat_activity_count{{{SEL}}}) / max(pg_settings_max_connections{{{SEL}}})"),
        )
    )
    d = d.with_panel(single("Databases", "short", prom(f"count(pg_database_size_bytes{{{SEL}}})")))
    d = d.with_panel(
        graph(
            "Transactions per second",
            "short",
            prom(f"sum by (instance) (rate(pg_stat_database_xact_commit{{{SEL}}}[$__rate_interval]))", "{{instance}} commits", "A"),
            prom(f"sum by (instance) (rate(pg_stat_database_xact_rollback{{{SEL}}}[$__rate_interval]))", "{{instance}} rollbacks", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Connections by state",
            "short",
            prom(f"sum by (instance, state) (pg_stat_activity_count{{{SEL}}})", "{{instance}} {{state}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Rows per second",
            "short",
            prom(f"sum by (instance) (rate(pg_stat_database_tup_fetched{{{SEL}}}[$__rate_interval]))", "{{instance}} fetched", "A"),
            prom(f"sum by (instance) (rate(pg_stat_database_tup_inserted{{{SEL}}}[$__rate_interval]))", "{{instance}} inserted", "B"),
            prom(f"sum by (instance) (rate(pg_stat_database_tup_updated{{{SEL}}}[$__rate_interval]))", "{{instance}} updated", "C"),
        )
    )
    d = d.with_panel(
        graph(
            "Cache hit ratio",
            "percentunit",
            prom(
                f"sum by (instance) (rate(pg_stat_database_blks_hit{{{SEL}}}[$__rate_interval])) / (sum by (instance) (rate(pg_stat_database_blks_hit{{{SEL}}}[$__rate_interval])) + sum by (instance) (rate(pg_stat_database_blks_read{{{SEL}}}[$__rate_interval])))",
                "{{instance}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Database size",
            "bytes",
            prom(f"pg_database_size_bytes{{{SEL}}}", "{{instance}} {{datname}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Deadlocks per second",
            "short",
            prom(f"sum by (instance) (rate(pg_stat_database_deadlocks{{{SEL}}}[$__rate_interval]))", "{{instance}}"),
        )
    )
    return d


def redis() -> dashboard.Dashboard:
    d = new_dashboard("quiver-redis", "Databases / Redis", ["redis"], "Servers watched by redis_exporter.")
    d = _with_targets(d, "redis_up")
    d = d.with_panel(single("Servers up", "short", prom(f"sum(redis_up{{{SEL}}})")))
    d = d.with_panel(single("Clients", "short", prom(f"sum(redis_connected_clients{{{SEL}}})")))
    d = d.with_panel(single("Keys", "short", prom(f"sum(redis_db_keys{{{SEL}}})")))
    d = d.with_panel(
        graph(
            "Commands per second",
            "short",
            prom(f"sum by (instance) (rate(redis_commands_processed_total{{{SEL}}}[$__rate_interval]))", "{{instance}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Memory",
            "bytes",
            prom(f"redis_memory_used_bytes{{{SEL}}}", "{{instance}} used", "A"),
            prom(f"redis_memory_max_bytes{{{SEL}}} > 0", "{{instance}} max", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Hit ratio",
            "percentunit",
            prom(
                f"rate(redis_keyspace_hits_total{{{SEL}}}[$__rate_interval]) / (rate(redis_keyspace_hits_total{{{SEL}}}[$__rate_interval]) + rate(redis_keyspace_misses_total{{{SEL}}}[$__rate_interval]))",
                "{{instance}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Keys by database",
            "short",
            prom(f"sum by (instance, db) (redis_db_keys{{{SEL}}})", "{{instance}} {{db}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Network traffic",
            "Bps",
            prom(f"rate(redis_net_input_bytes_total{{{SEL}}}[$__rate_interval])", "{{instance}} in", "A"),
            prom(f"rate(redis_net_output_bytes_total{{{SEL}}}[$__rate_interval])", "{{instance}} out", "B"),
        )
    )
    return d


DASHBOARDS = {"databases": [mysql, postgresql, redis]}
