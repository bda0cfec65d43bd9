"""Prometheus metrics of the sink runtime (transport metrics live in sinks.transport.http)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_DEFAULT: SinkRuntimeMetrics | None = None


@dataclass
class SinkRuntimeMetrics:
    records: Counter
    write_latency: Histogram
    paused_tenants: Gauge
    retries_exhausted: Counter
    lag: Gauge
    batch_stage: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SinkRuntimeMetrics:
        return cls(
            records=Counter("ledgerstream_sink_records_total",
                            "Ledger entries handled, by outcome", ["platform", "outcome"],
                            registry=registry),
            write_latency=Histogram("ledgerstream_sink_write_seconds",
                                    "Time to write one document (all its requests)",
                                    ["platform"], registry=registry),
            paused_tenants=Gauge("ledgerstream_sink_paused_tenants",
                                 "Tenants paused for a configuration problem", ["platform"],
                                 registry=registry),
            retries_exhausted=Counter("ledgerstream_sink_deferred_total",
                                      "Records rewound after the transport gave up retrying",
                                      ["platform"], registry=registry),
            lag=Gauge("ledgerstream_sink_consumer_lag_records",
                      "Records between the committed offset and the high watermark",
                      ["platform", "partition"], registry=registry),
            batch_stage=Histogram(
                "ledgerstream_sink_batch_stage_seconds",
                "Time of one polled batch per stage: plan (paused tenants, decode, "
                "replay check, id prefetch), lanes (every record's platform writes; "
                "the slowest lane sets it), commit (dead letters, bookkeeping)",
                ["platform", "stage"], registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)),
        )

    @classmethod
    def default(cls) -> SinkRuntimeMetrics:
        global _DEFAULT
        if _DEFAULT is None:
            _DEFAULT = cls.create(REGISTRY)
        return _DEFAULT
