"""Group lag from committed offsets vs end offsets, on the real broker (the processor's
lag gauge: faust's aiokafka consumer has no statistics callback)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, Gauge

from ledgerstream.observability.group_lag import GroupLagMonitor, group_lag

pytestmark = pytest.mark.integration


def test_lag_follows_produced_and_committed_offsets(kafka_bootstrap: str) -> None:
    topic = f"lag-test-{uuid.uuid4().hex[:8]}"
    group = f"lag-group-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(7):
        producer.produce(topic, value=b"x", partition=0)
    for _ in range(3):
        producer.produce(topic, value=b"y", partition=1)
    assert producer.flush(30) == 0
    try:
        # nothing committed yet: everything retained is lag
        assert group_lag(admin, group, [topic]) == {(topic, 0): 7, (topic, 1): 3}
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                             "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 3)],
                        asynchronous=False)
        consumer.close()
        registry = CollectorRegistry()
        gauge = Gauge("lag_records", "lag", ["topic", "partition"], registry=registry)
        monitor = GroupLagMonitor(kafka_bootstrap, group, [topic, "no-such-topic"], gauge,
                                  interval_s=0.2)
        assert monitor.update() == {(topic, 0): 2, (topic, 1): 0}
        assert registry.get_sample_value("lag_records",
                                         {"topic": topic, "partition": "0"}) == 2
        monitor.start()
        producer.produce(topic, value=b"z", partition=1)
        producer.flush(30)
        deadline = time.monotonic() + 20
        while registry.get_sample_value("lag_records",
                                        {"topic": topic, "partition": "1"}) != 1:
            assert time.monotonic() < deadline, "the monitor thread never measured again"
            time.sleep(0.1)
        monitor.stop()
    finally:
        admin.delete_topics([topic])
