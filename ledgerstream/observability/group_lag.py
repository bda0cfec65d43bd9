"""Consumer-group lag measured from outside the consumer: committed offsets vs the
partitions' end offsets, read with the admin API.

Why not from the consumer itself: the stream processor's consumer is faust's aiokafka
consumer, which has no librdkafka statistics callback (the sinks use
:mod:`ledgerstream.observability.kafka`), and faust's own offsets bookkeeping is
internal. What the group has *committed* is also the honest figure for exactly-once
processing: records read but not yet committed by a transaction still count as lag.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import Gauge

__all__ = ["GroupLagMonitor", "group_lag"]

log = logging.getLogger(__name__)


def group_lag(admin: AdminClient, group: str, topics: Iterable[str],
              timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """``{(topic, partition): records not yet committed by group}`` for every partition
    of ``topics``; a partition the group never committed counts from its earliest
    retained offset."""
    partitions: list[TopicPartition] = []
    for name in topics:
        # one topic's metadata each: the whole cluster's (every topic of every
        # application) was most of a round's cost on a shared cluster
        meta = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
        if meta is not None and meta.error is None:
            partitions += [TopicPartition(name, p) for p in meta.partitions]
    if not partitions:
        return {}
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout_s)
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout_s)
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed: dict[tuple[str, int], int] = {}
    for future in admin.list_consumer_group_offsets(request).values():
        result = future.result(timeout=timeout_s)
        for tp in result.topic_partitions or []:
            if tp.error is None and tp.offset >= 0:
                committed[(tp.topic, tp.partition)] = tp.offset
    lags: dict[tuple[str, int], int] = {}
    for key, end in ends.items():
        position = committed.get(key, starts.get(key, 0))
        lags[key] = max(end - position, 0)
    return lags


def _offsets(admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec,
             timeout_s: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions},
                                 request_timeout=timeout_s)
    out: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        out[(tp.topic, tp.partition)] = int(future.result(timeout=timeout_s).offset)
    return out


class GroupLagMonitor:
    """Keeps ``gauge`` (labels ``topic``, ``partition``) at :func:`group_lag` every
    ``interval_s`` on a daemon thread; a failed round is logged and retried, never
    fatal to the service it watches."""

    def __init__(self, bootstrap: str, group: str, topics: Iterable[str], gauge: Gauge,
                 *, interval_s: float = 5.0, admin_conf: Mapping[str, str] | None = None
                 ) -> None:
        self.group = group
        self.topics = list(topics)
        self.gauge = gauge
        self.interval_s = interval_s
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **(admin_conf or {})})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag:{group}", daemon=True)
        self._seen: set[tuple[str, int]] = set()

    def start(self) -> GroupLagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 15)

    def update(self) -> dict[tuple[str, int], int]:
        """One measurement, published to the gauge; returns it."""
        lags = group_lag(self.admin, self.group, self.topics)
        for (topic, partition), lag in lags.items():
            self.gauge.labels(topic=topic, partition=str(partition)).set(lag)
        for topic, partition in self._seen - lags.keys():
            with contextlib.suppress(KeyError):
                self.gauge.remove(topic, str(partition))
        self._seen = set(lags)
        return lags

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.update()
            except Exception as exc:  # the broker restarting must not kill the service
                log.warning("consumer lag of %s not measured: %s", self.group, exc)
            self._stop.wait(self.interval_s)
