"""The ONE module of names: topics, subjects, consumer groups, keys, topic configs.

Everything that names a Kafka resource comes from :class:`Topics`, so a test can use
``Topics(suffix=uuid)`` and get an isolated, consistent set (topics, subjects and
groups all carry the suffix, joined with ``.`` as ``tests/conftest.py``'s
``unique_topic`` does). Production uses ``Topics()`` or the module-level ``TOPICS``.

Keys are plain UTF-8 strings (``StringSerializer``), never Avro: ``tenant:customer``
keeps one customer's invoices, payments and credit notes on one partition, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KEY_SEPARATOR = ":"
_PLATFORM = re.compile(r"[a-z0-9][a-z0-9_-]*")

# base names
CRM_CUSTOMERS = "crm.customers"
CRM_TAX_RATES = "crm.tax-rates"
CRM_FINANCIAL_EVENTS = "crm.financial-events"
CRM_DLQ = "crm.dlq"
LEDGER_ENTRIES = "ledger.entries"
LEDGER_BALANCES = "ledger.balances"
LEDGER_DLQ = "ledger.dlq"

PROCESSOR_APP_ID = "ledgerstream.processor"
SINK_GROUP_PREFIX = "ledgerstream.sink"

FINANCIAL_EVENT = "io.ledgerstream.crm.FinancialEvent"
LEDGER_ENTRY = "io.ledgerstream.ledger.LedgerEntry"
CUSTOMER_BALANCE = "io.ledgerstream.ledger.CustomerBalance"
DEAD_LETTER = "io.ledgerstream.ledger.DeadLetter"

EVENT_PARTITIONS = 12
"""crm.financial-events, crm.customers and ledger.entries share this count (and the
``tenant:customer`` key) so they are co-partitioned: a processor task joins a
customer's events with that customer's row locally."""

_WEEK_MS = 7 * 24 * 3600 * 1000
_DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """What the stack/CLI needs to create one topic, and which record its values hold."""

    name: str
    partitions: int
    value_record: str
    config: MappingProxyType[str, str]
    replication_factor: int = 1

    @property
    def subject(self) -> str:
        return value_subject(self.name)

    @property
    def compacted(self) -> bool:
        return "compact" in self.config.get("cleanup.policy", "")


def _cfg(**items: Any) -> MappingProxyType[str, str]:
    return MappingProxyType({k.replace("_", "."): str(v) for k, v in items.items()})


_COMPACTED = _cfg(cleanup_policy="compact", min_compaction_lag_ms=60_000,
                  min_cleanable_dirty_ratio="0.1")
_EVENTS = _cfg(cleanup_policy="delete", retention_ms=_WEEK_MS)
_DLQ = _cfg(cleanup_policy="delete", retention_ms=_DLQ_RETENTION_MS)

# base name -> (partitions, value record, config)
_LAYOUT: dict[str, tuple[int, str, MappingProxyType[str, str]]] = {
    CRM_CUSTOMERS: (EVENT_PARTITIONS, FINANCIAL_EVENT, _COMPACTED),
    CRM_TAX_RATES: (1, FINANCIAL_EVENT, _COMPACTED),
    CRM_FINANCIAL_EVENTS: (EVENT_PARTITIONS, FINANCIAL_EVENT, _EVENTS),
    CRM_DLQ: (1, DEAD_LETTER, _DLQ),
    LEDGER_ENTRIES: (EVENT_PARTITIONS, LEDGER_ENTRY, _EVENTS),
    LEDGER_BALANCES: (6, CUSTOMER_BALANCE, _COMPACTED),
    LEDGER_DLQ: (1, DEAD_LETTER, _DLQ),
}
"""Every crm.* topic carries the FinancialEvent envelope (crm.customers with CUSTOMER
payloads keyed ``tenant:customer``; crm.tax-rates with TAX_RATE payloads keyed
``tenant:code``), so one serializer serves all producers."""


def value_subject(topic: str) -> str:
    """TopicNameStrategy: the registry subject of ``topic``'s values."""
    return f"{topic}-value"


def _check_part(name: str, value: str) -> str:
    if not value:
        raise ValueError(f"{name} must not be empty")
    if KEY_SEPARATOR in value:
        raise ValueError(f"{name} {value!r} must not contain {KEY_SEPARATOR!r}")
    return value


def message_key(tenant_id: str, customer_id: str) -> str:
    """``tenant:customer``, the key of crm.financial-events, crm.customers, ledger.entries.

    The tenant may not contain ``:``; the customer id may (split once from the left).
    """
    _check_part("tenant_id", tenant_id)
    if not customer_id:
        raise ValueError("customer_id must not be empty")
    return f"{tenant_id}{KEY_SEPARATOR}{customer_id}"


def parse_message_key(key: str | bytes) -> tuple[str, str]:
    """Inverse of :func:`message_key` (also accepts raw key bytes)."""
    text = key.decode("utf-8") if isinstance(key, bytes) else key
    tenant, sep, customer = text.partition(KEY_SEPARATOR)
    if not sep or not tenant or not customer:
        raise ValueError(f"{text!r} is not a 'tenant:customer' key")
    return tenant, customer


def tax_rate_key(tenant_id: str, code: str) -> str:
    """``tenant:code``, the key of crm.tax-rates."""
    return message_key(tenant_id, code)


def balance_key(tenant_id: str, customer_id: str, currency: str) -> str:
    """``tenant:customer:CUR``, the key of ledger.balances (one balance per currency)."""
    return f"{message_key(tenant_id, customer_id)}{KEY_SEPARATOR}{currency}"


@dataclass(frozen=True)
class Topics:
    """Resolved names. ``prefix`` is prepended verbatim; ``suffix`` is appended after a
    dot. Consumer groups and the processor app id get the same decoration, so two test
    runs never share offsets."""

    prefix: str = ""
    suffix: str = ""
    replication_factor: int = field(default=1)

    def name(self, base: str) -> str:
        """Decorate any base name."""
        return f"{self.prefix}{base}{'.' + self.suffix if self.suffix else ''}"

    @property
    def crm_customers(self) -> str:
        return self.name(CRM_CUSTOMERS)

    @property
    def crm_tax_rates(self) -> str:
        return self.name(CRM_TAX_RATES)

    @property
    def crm_financial_events(self) -> str:
        return self.name(CRM_FINANCIAL_EVENTS)

    @property
    def crm_dlq(self) -> str:
        return self.name(CRM_DLQ)

    @property
    def ledger_entries(self) -> str:
        return self.name(LEDGER_ENTRIES)

    @property
    def ledger_balances(self) -> str:
        return self.name(LEDGER_BALANCES)

    @property
    def ledger_dlq(self) -> str:
        return self.name(LEDGER_DLQ)

    @property
    def processor_app_id(self) -> str:
        return self.name(PROCESSOR_APP_ID)

    def sink_group(self, platform: str) -> str:
        """Consumer group of one platform's sink: ``ledgerstream.sink.<platform>``."""
        return self.name(f"{SINK_GROUP_PREFIX}.{_platform(platform)}")

    def sink_dlq(self, platform: str) -> str:
        """Dead-letter topic of one platform's sink: ``ledgerstream.sink.<platform>.dlq``."""
        return self.name(f"{SINK_GROUP_PREFIX}.{_platform(platform)}.dlq")

    def subject(self, topic: str) -> str:
        """Value subject of an already-decorated topic name."""
        return value_subject(topic)

    def specs(self, platforms: tuple[str, ...] = ()) -> list[TopicSpec]:
        """Every topic to create, with partitions and configs; plus one DLQ per platform."""
        out = [
            TopicSpec(self.name(base), parts, record, cfg, self.replication_factor)
            for base, (parts, record, cfg) in _LAYOUT.items()
        ]
        out += [
            TopicSpec(self.sink_dlq(p), 1, DEAD_LETTER, _DLQ, self.replication_factor)
            for p in platforms
        ]
        return out

    def spec(self, topic: str) -> TopicSpec:
        """The spec of one decorated topic name (sink DLQs included)."""
        for candidate in self.specs():
            if candidate.name == topic:
                return candidate
        base = topic.removeprefix(self.prefix)
        if self.suffix:
            base = base.removesuffix(f".{self.suffix}")
        if base.startswith(f"{SINK_GROUP_PREFIX}.") and base.endswith(".dlq"):
            return TopicSpec(topic, 1, DEAD_LETTER, _DLQ, self.replication_factor)
        raise KeyError(f"{topic!r} is not a ledgerstream topic")


def _platform(platform: str) -> str:
    if not _PLATFORM.fullmatch(platform):
        raise ValueError(f"platform {platform!r} must match {_PLATFORM.pattern}")
    return platform


TOPICS = Topics()
"""The production names."""
