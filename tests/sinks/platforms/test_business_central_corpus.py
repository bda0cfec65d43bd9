"""The canonical corpus through the Business Central platform and sandbox, reconciled.

Runs every scenario of ``tests/sinks/corpus.py`` with the contract suite's harness
(``tests/sinks/contract/harness_business_central.py``), every request validated
against the v2.0 OpenAPI subset; after each payment the payment journal is posted,
as the tenant's BC job queue (or bookkeeper) does, because the v2.0 API cannot post
it. Then the whole scenario is replayed with the external-id map lost, and the books
must still agree with zero duplicates.
"""

from __future__ import annotations

import pytest

from schemas.models import AggregateType
from sinks.core.errors import SinkError
from sinks.platforms.business_central import BusinessCentral
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.sandbox.business_central import BusinessCentralSandbox
from tests.sinks.contract.harness import open_books
from tests.sinks.contract.harness_business_central import BUSINESS_CENTRAL, SPEC
from tests.sinks.corpus import SCENARIOS

pytestmark = [
    pytest.mark.skipif(not SPEC.exists(), reason=f"vendor spec {SPEC} absent"),
    pytest.mark.filterwarnings("ignore:Unsupported scheme type"),
]

#: Scenarios Business Central's API v2.0 cannot express, with the reason. Each raises
#: UnsupportedEventError (dead letter with that reason), checked below.
GAPS: dict[str, str] = {
    "tip_and_fee": "a customer payment line cannot carry the tip (needs a G/L line)",
    "refund_payment": "customerPayments has no Refund document type",
    "credit_note_refunded": "no customer refund in the v2.0 API",
    "void_after_payment": "BC cancels only unpaid posted invoices",
    "multi_currency": "customerPayments has no currency field",
}


def run(name: str) -> tuple[BusinessCentralSandbox, object, list[object]]:
    entries = SCENARIOS[name].entries()
    sandbox = BusinessCentralSandbox()
    books = open_books(BUSINESS_CENTRAL, BusinessCentral(), sandbox)
    company = str(books.tenant.settings["company_id"])
    for entry in entries:
        books.write(entry, retries=1)
        if entry.event.aggregate_type is AggregateType.PAYMENT:
            sandbox.post_payment_journal(company)
    return sandbox, books, list(entries)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_corpus_scenario_reconciles(name: str) -> None:
    if name in GAPS:
        with pytest.raises(SinkError) as info:
            run(name)
        assert info.value.action.value == "dead_letter", info.value
        assert type(info.value).__name__ == "UnsupportedEventError", repr(info.value)
        return
    entries = SCENARIOS[name].entries()
    sandbox = BusinessCentralSandbox()
    books = open_books(BUSINESS_CENTRAL, BusinessCentral(), sandbox)
    company = str(books.tenant.settings["company_id"])
    for entry in entries:
        try:
            books.write(entry, retries=1)
        except SinkError as exc:
            pytest.fail(f"{entry.event.event_type} {entry.event.aggregate_id}: {exc!r}")
        if entry.event.aggregate_type is AggregateType.PAYMENT:
            sandbox.post_payment_journal(company)
    expected = expected_ledger(entries)
    diffs = reconcile(expected, sandbox.ledger_report(company), books.ids)
    assert not diffs, format_differences(diffs)
    books.ids.clear()
    books.versions.clear()
    for entry in entries:
        books.write(entry, retries=1)
    diffs = reconcile(expected, sandbox.ledger_report(company), books.ids)
    assert not diffs, "after replay: " + format_differences(diffs)
