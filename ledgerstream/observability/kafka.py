"""Consumer lag per partition from librdkafka's statistics (``stats_cb``).

The callback runs inside ``poll``/``consume`` on the consumer's own thread, so no
other thread touches the consumer. librdkafka reports, per assigned partition, the
high watermark and the committed offset; their difference is the lag."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge

__all__ = ["lag_stats_conf", "partition_lags"]

log = logging.getLogger(__name__)


def partition_lags(stats: dict[str, Any], topic: str) -> dict[int, int]:
    """``{partition: lag}`` of the partitions this consumer fetches (internal partition
    -1 and partitions without a known offset are left out)."""
    lags: dict[int, int] = {}
    partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
    for key, p in partitions.items():
        partition = int(key)
        if partition < 0 or p.get("fetch_state") in ("none", "stopped"):
            continue
        lag = p.get("consumer_lag", -1)
        if lag is None or lag < 0:
            high, committed = p.get("hi_offset", -1), p.get("committed_offset", -1)
            if high < 0 or committed < 0:
                continue
            lag = max(high - committed, 0)
        lags[partition] = int(lag)
    return lags


def lag_stats_conf(gauge: Gauge, topic: str, labels: dict[str, str], *,
                   interval_ms: int = 5000) -> dict[str, Any]:
    """Consumer settings that keep ``gauge`` (labels ``labels`` + ``partition``) at the
    lag of every assigned partition of ``topic``; partitions no longer assigned are
    removed from the gauge."""
    seen: set[int] = set()

    def on_stats(raw: str) -> None:
        try:
            lags = partition_lags(json.loads(raw), topic)
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("unreadable consumer statistics: %s", exc)
            return
        for partition, lag in lags.items():
            gauge.labels(**labels, partition=str(partition)).set(lag)
        for gone in seen - lags.keys():
            with contextlib.suppress(KeyError):
                gauge.remove(*[str(gone) if name == "partition" else labels[name]
                               for name in gauge._labelnames])
        seen.clear()
        seen.update(lags)

    callback: Callable[[str], None] = on_stats
    return {"statistics.interval.ms": interval_ms, "stats_cb": callback}
