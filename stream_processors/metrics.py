"""Prometheus metrics of the processor (``ledgerstream_processor_<what>_<unit>``).

Why a registry per processor instead of the global one: tests build several apps in
one process, and the default registry refuses duplicate metric names.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_INDEX = re.compile(r"\[[^\]]*\]")


class ProcessorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter("ledgerstream_processor_events_in_total",
                                 "Records consumed", ["topic"], registry=r)
        self.events_out = Counter("ledgerstream_processor_events_out_total",
                                  "Records produced", ["topic"], registry=r)
        self.dead_letters = Counter("ledgerstream_processor_dead_letters_total",
                                    "Records sent to the DLQ", ["error_class"], registry=r)
        self.discrepancies = Counter("ledgerstream_processor_discrepancies_total",
                                     "CRM figures that differ from ours", ["field"], registry=r)
        self.ignored = Counter("ledgerstream_processor_ignored_events_total",
                               "Events that changed nothing", ["verdict"], registry=r)
        self.parked = Counter("ledgerstream_processor_parked_events_total",
                              "Events parked for a missing customer / tax code",
                              ["error_class"], registry=r)
        self.pending = Gauge("ledgerstream_processor_pending_events",
                             "Events currently parked", registry=r)
        self.table_writes = Counter(
            "ledgerstream_processor_table_writes_total",
            "Table rows written (once per key and batch, each with a changelog record)",
            registry=r)
        self.batch_size = Histogram(
            "ledgerstream_processor_batch_events", "Input records per processed batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000), registry=r)
        self.lag = Gauge("ledgerstream_processor_consumer_lag_records",
                         "Input records not yet committed by the processor's group",
                         ["topic", "partition"], registry=r)

    def discrepancy(self, field: str) -> None:
        """Count by field without per-line cardinality (``lines[l7].amount`` ->
        ``lines[].amount``)."""
        self.discrepancies.labels(_INDEX.sub("[]", field)).inc()

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
