"""The canonical corpus through the Acumatica platform and sandbox, reconciled.

Every scenario of ``tests/sinks/corpus.py`` runs with the contract harness
(``tests/sinks/contract/harness_acumatica.py``), every request validated against
the exported OpenAPI; then the whole scenario is replayed with the external-id map lost, and
the books must still agree with zero duplicates.
"""

from __future__ import annotations

import pytest

from sinks.core.errors import SinkError
from sinks.platforms.acumatica import Acumatica
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.sandbox.acumatica import AcumaticaSandbox
from sinks.sandbox.core import ManualClock
from tests.sinks.contract.harness import open_books
from tests.sinks.contract.harness_acumatica import ACUMATICA
from tests.sinks.corpus import SCENARIOS
from tests.sinks.platforms.acumatica_support import SPEC

pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"vendor spec {SPEC} absent")

#: Scenarios Acumatica cannot express, with the reason; each must raise UnsupportedEventError.
GAPS: dict[str, str] = {
    "edit_after_sending": "a released AR invoice cannot be edited (reverse it with a memo)",
    "void_unpaid": "the contract endpoint cannot void a released AR invoice",
    "void_after_payment": "the contract endpoint cannot void a released AR invoice",
    "tip_and_fee": "an AR payment has no income line for the tip",
    "refund_payment": "a refund applies to credit memos or payments; re-opening the paid "
                      "invoice needs the payment's application reversed first",
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_corpus_scenario_reconciles(name: str) -> None:
    entries = SCENARIOS[name].entries()
    sandbox = AcumaticaSandbox(clock=ManualClock(), max_sessions=1000)
    books = open_books(ACUMATICA, Acumatica(), sandbox)
    company = str(books.tenant.settings["company"])
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
    diffs = reconcile(expected, sandbox.ledger_report(company), books.ids)
    assert not diffs, format_differences(diffs)
    books.ids.clear()
    books.versions.clear()
    for entry in entries:
        books.write(entry, retries=1)
    report = sandbox.ledger_report(company)
    assert report["duplicates"]["count"] == 0, report["duplicates"]
    diffs = reconcile(expected, report, books.ids)
    assert not diffs, "after replay: " + format_differences(diffs)
