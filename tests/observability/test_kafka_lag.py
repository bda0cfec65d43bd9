"""Sink consumer lag per partition from librdkafka statistics."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Gauge

from ledgerstream.observability.kafka import lag_stats_conf, partition_lags


def stats(partitions: dict[str, dict[str, object]], topic: str = "ledger.entries") -> str:
    return json.dumps({"name": "c#1", "type": "consumer",
                       "topics": {topic: {"topic": topic, "partitions": partitions}}})


def test_partition_lags_from_watermarks() -> None:
    raw = json.loads(stats({
        "0": {"fetch_state": "active", "hi_offset": 120, "committed_offset": 100,
              "consumer_lag": 20},
        "1": {"fetch_state": "active", "hi_offset": 50, "committed_offset": 10,
              "consumer_lag": -1},          # lag unknown to librdkafka: from the offsets
        "2": {"fetch_state": "none", "hi_offset": 9, "committed_offset": 0},  # not ours
        "-1": {"fetch_state": "none", "consumer_lag": -1},   # librdkafka's internal partition
        "3": {"fetch_state": "active", "hi_offset": -1, "committed_offset": -1,
              "consumer_lag": -1},          # nothing known yet
    }))
    assert partition_lags(raw, "ledger.entries") == {0: 20, 1: 40}
    assert partition_lags(raw, "other") == {}


def test_stats_callback_keeps_the_gauge_per_partition() -> None:
    gauge = Gauge("ledgerstream_sink_consumer_lag_records", "lag", ["platform", "partition"],
                  registry=(registry := CollectorRegistry()))
    conf = lag_stats_conf(gauge, "ledger.entries", {"platform": "xero"}, interval_ms=1000)
    assert conf["statistics.interval.ms"] == 1000
    callback = conf["stats_cb"]
    callback(stats({"0": {"fetch_state": "active", "consumer_lag": 5},
                    "1": {"fetch_state": "active", "consumer_lag": 7}}))

    def value(partition: str) -> float | None:
        return registry.get_sample_value("ledgerstream_sink_consumer_lag_records",
                                         {"platform": "xero", "partition": partition})

    assert (value("0"), value("1")) == (5, 7)
    callback(stats({"1": {"fetch_state": "active", "consumer_lag": 0}}))  # partition 0 revoked
    assert value("0") is None and value("1") == 0
    callback("not json")  # ignored
    assert value("1") == 0
