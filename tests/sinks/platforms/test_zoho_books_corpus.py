"""The canonical corpus through the Zoho Books platform and sandbox, reconciled.

Runs every scenario of ``tests/sinks/corpus.py`` with the contract suite's harness
(``tests/sinks/contract/harness_zoho_books.py``), every request validated against
Zoho's OpenAPI files; then replays the whole scenario (with the external-id map lost)
and checks the books still agree, with zero duplicates.
"""

from __future__ import annotations

import pytest

from sinks.core.errors import SinkError
from sinks.platforms.common.reconcile import expected_ledger, format_differences, reconcile
from sinks.platforms.zoho_books import ZohoBooks
from sinks.sandbox.zoho_books import ZohoBooksSandbox
from tests.sinks.contract.harness import open_books
from tests.sinks.contract.harness_zoho_books import SPECS, ZOHO_BOOKS
from tests.sinks.corpus import SCENARIOS

pytestmark = [
    pytest.mark.skipif(not SPECS.exists(), reason="vendor specs shared/specs/zoho-books absent"),
    pytest.mark.filterwarnings("ignore:Unsupported scheme type"),
]

#: Scenarios Zoho Books cannot express, with the reason (strict: noticed when fixed).
GAPS: dict[str, str] = {}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_corpus_scenario_reconciles(name: str) -> None:
    if name in GAPS:
        pytest.xfail(GAPS[name])
    entries = SCENARIOS[name].entries()
    sandbox = ZohoBooksSandbox()
    books = open_books(ZOHO_BOOKS, ZohoBooks(), sandbox)
    for entry in entries:
        try:
            books.write(entry, retries=1)
        except SinkError as exc:
            pytest.fail(f"{entry.event.event_type} {entry.event.aggregate_id}: {exc!r}")
    org = str(books.tenant.settings["organization_id"])
    expected = expected_ledger(entries)
    diffs = reconcile(expected, sandbox.ledger_report(org), books.ids)
    assert not diffs, format_differences(diffs)
    books.ids.clear()
    books.versions.clear()
    for entry in entries:
        books.write(entry, retries=1)
    diffs = reconcile(expected, sandbox.ledger_report(org), books.ids)
    assert not diffs, "after replay: " + format_differences(diffs)
