"""infrastructure/: hosts, from node_exporter."""

from grafana_foundation_sdk.builders import dashboard

from common import graph, label_variable, new_dashboard, prom, single

SEL = 'job=~"$job", instance=~"$instance"'


def hosts() -> dashboard.Dashboard:
    d = new_dashboard(
        "quiver-hosts",
        "Infrastructure / Hosts",
        ["node-exporter"],
        "CPU, memory, disks, file systems, network and load of hosts running node_exporter.",
    )
    d = d.with_variable(label_variable("job", "Job", "label_values(node_uname_info, job)"))
    d = d.with_variable(label_variable("instance", "Instance", 'label_values(node_uname_info{job=~"$job"}, instance)'))
    d = d.with_row(dashboard.Row("Overview"))
    d = d.with_panel(single("Hosts up", "short", prom(f"count(node_uname_info{{{SEL}}})")))
    d = d.with_panel(
        single(
            "CPU busy",
            "percentunit",
            prom(f'1 - avg(rate(node_cpu_seconds_total{{{SEL}, mode="idle"}}[$__rate_interval]))'),
        )
    )
    d = d.with_panel(
        single(
            "Memory used",
            "percentunit",
            prom(f"1 - sum(node_memory_MemAvailable_bytes{{{SEL}}}) / sum(node_memory_MemTotal_bytes{{{SEL}}})"),
        )
    )
    d = d.with_panel(
        single("Uptime", "s", prom(f"min(time() - node_boot_time_seconds{{{SEL}}})"))
    )
    d = d.with_row(dashboard.Row("CPU and load"))
    d = d.with_panel(
        graph(
            "CPU by mode",
            "percentunit",
            prom(
                f'sum by (instance, mode) (rate(node_cpu_seconds_total{{{SEL}, mode!="idle"}}[$__rate_interval])) / on (instance) group_left count by (instance) (node_cpu_seconds_total{{{SEL}, mode="idle"}})',
                "{{instance}} {{mode}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Load average",
            "short",
            prom(f"node_load1{{{SEL}}}", "{{instance}} 1m", "A"),
            prom(f"node_load5{{{SEL}}}", "{{instance}} 5m", "B"),
            prom(f"node_load15{{{SEL}}}", "{{instance}} 15m", "C"),
        )
    )
    d = d.with_row(dashboard.Row("Memory"))
    d = d.with_panel(
        graph(
            "Memory",
            "bytes",
            prom(f"node_memory_MemTotal_bytes{{{SEL}}} - node_memory_MemAvailable_bytes{{{SEL}}}", "{{instance}} used", "A"),
            prom(f"node_memory_Cached_bytes{{{SEL}}} + node_memory_Buffers_bytes{{{SEL}}}", "{{instance}} cache and buffers", "B"),
            prom(f"node_memory_MemTotal_bytes{{{SEL}}}", "{{instance}} total", "C"),
        )
    )
    d = d.with_panel(
        graph(
            "Swap used",
            "bytes",
            prom(f"node_memory_SwapTotal_bytes{{{SEL}}} - node_memory_SwapFree_bytes{{{SEL}}}", "{{instance}}"),
        )
    )
    d = d.with_row(dashboard.Row("Disks and file systems"))
    fs = 'fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs"'
    d = d.with_panel(
        graph(
            "File system used",
            "percentunit",
            prom(
                f"1 - node_filesystem_avail_bytes{{{SEL}, {fs}}} / node_filesystem_size_bytes{{{SEL}, {fs}}}",
                "{{instance}} {{mountpoint}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Disk I/O",
            "Bps",
            prom(f"sum by (instance) (rate(node_disk_read_bytes_total{{{SEL}}}[$__rate_interval]))", "{{instance}} read", "A"),
            prom(f"sum by (instance) (rate(node_disk_written_bytes_total{{{SEL}}}[$__rate_interval]))", "{{instance}} written", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Disk busy",
            "percentunit",
            prom(f"rate(node_disk_io_time_seconds_total{{{SEL}}}[$__rate_interval])", "{{instance}} {{device}}"),
        )
    )
    d = d.with_row(dashboard.Row("Network"))
    net = 'device!~"lo|veth.*|docker.*|br-.*"'
    d = d.with_panel(
        graph(
            "Network traffic",
            "bps",
            prom(f"rate(node_network_receive_bytes_total{{{SEL}, {net}}}[$__rate_interval]) * 8", "{{instance}} {{device}} in", "A"),
            prom(f"rate(node_network_transmit_bytes_total{{{SEL}, {net}}}[$__rate_interval]) * 8", "{{instance}} {{device}} out", "B"),
        )
    )
    d = d.with_panel(
        graph(
            "Network errors",
            "pps",
            prom(f"rate(node_network_receive_errs_total{{{SEL}}}[$__rate_interval])", "{{instance}} {{device}} receive", "A"),
            prom(f"rate(node_network_transmit_errs_total{{{SEL}}}[$__rate_interval])", "{{instance}} {{device}} transmit", "B"),
        )
    )
    return d


DASHBOARDS = {"infrastructure": [hosts]}
