"""Create the ledgerstream topics from the :class:`schemas.topics.Topics` specs.

Auto-creation is off on our brokers (a typo must not silently create a topic with the
wrong partition count or cleanup policy), so every runtime calls :func:`ensure_topics`
at start. Idempotent: existing topics are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import Topics, TopicSpec


def ensure_topics(bootstrap: str, topics: Topics | Iterable[TopicSpec],
                  timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics; return the names created now."""
    specs = topics.specs() if isinstance(topics, Topics) else list(topics)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
        for s in specs if s.name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
