#!/usr/bin/env python3
"""Sends OpenTelemetry metrics to Quiver with the official Python SDK and its OTLP/HTTP
(protobuf) exporter, as an instrumented application would. tests/it/otlp.rs checks what
Quiver stored.

    otlp_sender.py ENDPOINT cumulative|delta

cumulative: a counter, an up-down counter, a gauge, an observable gauge, an explicit-bucket
histogram (one value recorded inside a sampled span, so it carries an exemplar) and an
exponential histogram, gzip-compressed. Prints the exemplar's trace id.
delta: a counter with delta temporality.
"""

import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def main():
    endpoint, mode = sys.argv[1], sys.argv[2]
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": "pod-1",
            "host.name": "node-7",
        }
    )
    temporality = {Counter: AggregationTemporality.DELTA} if mode == "delta" else {}
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        compression=Compression.Gzip if mode == "cumulative" else Compression.NoCompression,
        preferred_temporality=temporality,
    )
    # Exported only at shutdown below.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    views = [
        View(instrument_name="http.server.duration", aggregation=ExplicitBucketHistogramAggregation([0.1, 1, 10])),
        View(instrument_name="rpc.latency", aggregation=ExponentialBucketHistogramAggregation()),
    ]
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
    meter = provider.get_meter("shop.meter", "1.2")

    orders = meter.create_counter("orders.placed", unit="{orders}", description="Orders placed")
    if mode == "delta":
        orders.add(2, {"region": "eu"})
        provider.shutdown()
        return

    orders.add(5, {"region": "eu"})
    orders.add(3, {"region": "us"})
    queue = meter.create_up_down_counter("queue.items", unit="{items}")
    queue.add(10)
    queue.add(-4)
    meter.create_gauge("room.temperature", unit="Cel").set(21.5, {"room": "lab"})
    meter.create_observable_gauge("cpu.utilization", callbacks=[lambda _: [Observation(0.25)]], unit="1")
    duration = meter.create_histogram("http.server.duration", unit="s")
    duration.record(0.05, {"route": "/pay"})
    duration.record(5, {"route": "/pay"})
    tracer = TracerProvider(resource=resource).get_tracer("shop.tracer")
    with tracer.start_as_current_span("pay") as span:
        duration.record(0.5, {"route": "/pay"})
        print(f"trace_id={span.get_span_context().trace_id:032x}")
    meter.create_histogram("rpc.latency", unit="ms").record(12)
    # Shutting down exports once, as an application's exit does.
    provider.shutdown()


if __name__ == "__main__":
    main()
