"""Names, keys and topic configs from the one module of names."""

from __future__ import annotations

import pytest

from schemas import avsc
from schemas.topics import (
    TOPICS,
    Topics,
    balance_key,
    message_key,
    parse_message_key,
    tax_rate_key,
    value_subject,
)


def test_production_names() -> None:
    assert TOPICS.crm_customers == "crm.customers"
    assert TOPICS.crm_tax_rates == "crm.tax-rates"
    assert TOPICS.crm_financial_events == "crm.financial-events"
    assert TOPICS.ledger_entries == "ledger.entries"
    assert TOPICS.ledger_balances == "ledger.balances"
    assert TOPICS.ledger_dlq == "ledger.dlq"
    assert TOPICS.crm_dlq == "crm.dlq"
    assert TOPICS.sink_group("xero") == "ledgerstream.sink.xero"
    assert TOPICS.sink_dlq("quickbooks_online") == "ledgerstream.sink.quickbooks_online.dlq"
    assert TOPICS.processor_app_id == "ledgerstream.processor"
    assert value_subject("crm.financial-events") == "crm.financial-events-value"


def test_suffix_and_prefix_decorate_everything_consistently() -> None:
    t = Topics(prefix="ci-", suffix="abc123")
    assert t.crm_financial_events == "ci-crm.financial-events.abc123"
    assert t.sink_group("xero") == "ci-ledgerstream.sink.xero.abc123"
    assert t.subject(t.ledger_entries) == "ci-ledger.entries.abc123-value"
    assert all(s.name.startswith("ci-") and s.name.endswith(".abc123") for s in t.specs(("xero",)))


def test_matches_the_unique_topic_fixture_convention(unique_topic) -> None:
    name = unique_topic("crm.financial-events")
    suffix = name.rpartition(".")[2]
    assert Topics(suffix=suffix).crm_financial_events == name


def test_specs_are_data_for_topic_creation() -> None:
    specs = {s.name: s for s in TOPICS.specs(("xero",))}
    assert specs["crm.customers"].compacted and specs["crm.tax-rates"].compacted
    assert specs["ledger.balances"].compacted
    assert not specs["crm.financial-events"].compacted
    assert specs["crm.financial-events"].config["cleanup.policy"] == "delete"
    # co-partitioned: same key, same partition count
    assert (
        specs["crm.customers"].partitions
        == specs["crm.financial-events"].partitions
        == specs["ledger.entries"].partitions
    )
    assert specs["ledgerstream.sink.xero.dlq"].value_record.endswith("DeadLetter")
    for spec in specs.values():
        avsc.resolve_name(spec.value_record)  # every value record exists
        assert spec.subject == f"{spec.name}-value"
    assert TOPICS.spec("ledgerstream.sink.myob.dlq").partitions == 1
    with pytest.raises(KeyError):
        TOPICS.spec("nope")


def test_message_key() -> None:
    assert message_key("t1", "c1") == "t1:c1"
    assert message_key("t1", "c:with:colons") == "t1:c:with:colons"
    assert parse_message_key(b"t1:c:with:colons") == ("t1", "c:with:colons")
    assert tax_rate_key("t1", "TX") == "t1:TX"
    assert balance_key("t1", "c1", "USD") == "t1:c1:USD"
    with pytest.raises(ValueError, match="must not contain"):
        message_key("t:1", "c1")
    with pytest.raises(ValueError):
        message_key("t1", "")
    with pytest.raises(ValueError):
        parse_message_key("no-separator")


@pytest.mark.parametrize("bad", ["Xero", "a b", "", "x/y"])
def test_platform_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        TOPICS.sink_group(bad)
