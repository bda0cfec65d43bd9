"""The canonical corpus through the Sage Accounting platform and sandbox, reconciled.

Every scenario of ``tests/sinks/corpus.py`` runs with the contract harness
(``tests/sinks/contract/harness_sage_accounting.py``), every request validated against
the swagger; then the whole scenario is replayed with the external-id map lost, and
the books must still agree with zero duplicates.
"""

from __future__ import annotations

import pytest

from sinks.core.errors import SinkError
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.platforms.sage_accounting import SageAccounting
from sinks.sandbox.core import ManualClock
from sinks.sandbox.sage_accounting import SageSandbox
from tests.sinks.contract.harness import open_books
from tests.sinks.contract.harness_sage_accounting import SAGE_ACCOUNTING
from tests.sinks.corpus import SCENARIOS
from tests.sinks.platforms.sage_accounting_support import SPEC

pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"vendor spec {SPEC} absent")

#: Scenarios Sage cannot express, with the reason; each must raise UnsupportedEventError.
GAPS: dict[str, str] = {
    "refund_payment": "a customer refund is allocated only to credit notes or money on "
                      "account; re-opening the paid invoice needs the receipt edited first",
    "void_after_payment": "Sage voids only documents without allocations",
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_corpus_scenario_reconciles(name: str) -> None:
    entries = SCENARIOS[name].entries()
    sandbox = SageSandbox(clock=ManualClock())
    books = open_books(SAGE_ACCOUNTING, SageAccounting(), sandbox)
    business = str(books.tenant.settings["business_id"])
    if name in GAPS:
        with pytest.raises(SinkError) as info:
            for entry in entries:
                books.write(entry, retries=1)
        assert type(info.value).__name__ == "UnsupportedEventError", repr(info.value)
        return
    for entry in entries:
        try:
            books.write(entry, retries=1)
        except SinkError as exc:
            pytest.fail(f"{entry.event.event_type} {entry.event.aggregate_id}: {exc!r}")
    expected = expected_ledger(entries)
    diffs = reconcile(expected, sandbox.ledger_report(business), books.ids)
    assert not diffs, format_differences(diffs)
    books.ids.clear()
    books.versions.clear()
    for entry in entries:
        books.write(entry, retries=1)
    report = sandbox.ledger_report(business)
    assert report["duplicates"]["count"] == 0, report["duplicates"]
    diffs = reconcile(expected, report, books.ids)
    assert not diffs, "after replay: " + format_differences(diffs)
