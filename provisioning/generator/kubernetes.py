"""kubernetes/: nodes and pods, from kube-state-metrics and cAdvisor (the kubelet's
/metrics/cadvisor), with the metric names the alert rules in rules/kubernetes/ use."""

from grafana_foundation_sdk.builders import dashboard

from common import graph, label_variable, new_dashboard, prom, single


def cluster() -> dashboard.Dashboard:
    d = new_dashboard(
        "quiver-kubernetes",
        "Kubernetes / Nodes and pods",
        ["kubernetes"],
        "Node readiness and allocation, pod phases and restarts, and container CPU and memory.",
    )
    d = d.with_variable(label_variable("namespace", "Namespace", "label_values(kube_pod_info, namespace)"))
    ns = 'namespace=~"$namespace"'
    d = d.with_row(dashboard.Row("Nodes"))
    d = d.with_panel(single("Nodes", "short", prom("count(kube_node_info)")))
    d = d.with_panel(
        single("Nodes not ready", "short", prom('sum(kube_node_status_condition{condition="Ready", status!="true"})'))
    )
    d = d.with_panel(single("Unschedulable nodes", "short", prom("sum(kube_node_spec_unschedulable)")))
    d = d.with_panel(
        graph(
            "CPU requested of allocatable",
            "percentunit",
            prom(
                'sum by (node) (kube_pod_container_resource_requests{resource="cpu"}) / sum by (node) (kube_node_status_allocatable{resource="cpu"})',
                "{{node}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Memory requested of allocatable",
            "percentunit",
            prom(
                'sum by (node) (kube_pod_container_resource_requests{resource="memory"}) / sum by (node) (kube_node_status_allocatable{resource="memory"})',
                "{{node}}",
            ),
        )
    )
    d = d.with_row(dashboard.Row("Pods"))
    d = d.with_panel(
        graph("Pods by phase", "short", prom(f"sum by (phase) (kube_pod_status_phase{{{ns}}})", "{{phase}}"))
    )
    d = d.with_panel(
        graph(
            "Container restarts per hour",
            "short",
            prom(
                f"topk(10, sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{{ns}}}[1h])))",
                "{{namespace}}/{{pod}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Containers waiting, by reason",
            "short",
            prom(f"sum by (reason) (kube_pod_container_status_waiting_reason{{{ns}}})", "{{reason}}"),
        )
    )
    d = d.with_panel(
        graph(
            "Deployments missing replicas",
            "short",
            prom(
                f"kube_deployment_spec_replicas{{{ns}}} - kube_deployment_status_replicas_available{{{ns}}}",
                "{{namespace}}/{{deployment}}",
            ),
        )
    )
    d = d.with_row(dashboard.Row("Containers"))
    d = d.with_panel(
        graph(
            "CPU by pod",
            "short",
            prom(
                f'topk(10, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{{ns}, container!=""}}[$__rate_interval])))',
                "{{namespace}}/{{pod}}",
            ),
        )
    )
    d = d.with_panel(
        graph(
            "Memory working set by pod",
            "bytes",
            prom(
                f'topk(10, sum by (namespace, pod) (container_memory_working_set_bytes{{{ns}, container!=""}}))',
                "{{namespace}}/{{pod}}",
            ),
        )
    )
    return d


DASHBOARDS = {"kubernetes": [cluster]}
