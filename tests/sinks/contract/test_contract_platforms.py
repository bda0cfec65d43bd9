"""The contract suite: every registered platform, every corpus scenario.

For each pair: every request the platform builds validates against the vendor's
spec, the sandbox accepts it, the response parses into a WriteResult, and the
sandbox's ledger then agrees with the CRM (:func:`reconcile` finds no difference).
Replays (same entries again, with and without the id map, inside and after the
vendor's idempotency window) and responses lost after a committed write create no
duplicate. A platform joins by registering itself and adding a harness.
"""

from __future__ import annotations

from datetime import date

import pytest

from schemas.examples import sample_customer, sample_invoice
from sinks.core.contract import Platform
from sinks.core.errors import ConfigurationError
from sinks.platforms import all_platforms
from sinks.platforms.common.reconcile import (
    expected_ledger,
    format_differences,
    reconcile,
)
from sinks.sandbox import ManualClock, Sandbox
from tests.sinks.contract.harness import HARNESSES, Books, PlatformHarness, connect
from tests.sinks.corpus import SCENARIOS, Story

PLATFORMS = [p.spec.name for p in all_platforms(builtin_only=True)]
#: openapi-core warns about Xero's OAuth2 security scheme, which it does not check.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


def cases(*, replay: bool = False) -> list[object]:
    """Every (platform, scenario); a harness's ``sandbox_gaps`` (and, for the replay
    test, its ``replay_gaps``) become strict xfails with their reasons."""
    out: list[object] = []
    for name in PLATFORMS:
        harness = HARNESSES.get(name)
        gaps = dict(harness.sandbox_gaps) if harness else {}
        if replay and harness:
            gaps = {**harness.replay_gaps, **gaps}
        for scenario in SCENARIOS:
            marks = [pytest.mark.xfail(strict=True, reason=gaps[scenario])] \
                if scenario in gaps else []
            out.append(pytest.param(name, scenario, id=f"{name}-{scenario}", marks=marks))
    return out


def report(harness: PlatformHarness, sandbox: Sandbox, books: Books) -> dict[str, object]:
    return sandbox.ledger_report(harness.sandbox_tenant(books.tenant))


def assert_books_agree(harness: PlatformHarness, sandbox: Sandbox, books: Books,
                       scenario: str) -> None:
    entries = SCENARIOS[scenario].entries()
    diffs = reconcile(expected_ledger(entries), report(harness, sandbox, books), books.ids)
    assert not diffs, format_differences(diffs)


def test_every_registered_platform_has_a_harness() -> None:
    assert PLATFORMS, "no platform registered"
    assert set(PLATFORMS) <= set(HARNESSES), set(PLATFORMS) - set(HARNESSES)


@pytest.mark.parametrize(("platform_name", "scenario"), cases(), indirect=["platform_name"])
def test_scenario_writes_and_books_agree(harness: PlatformHarness, sandbox: Sandbox,
                                         books: Books, scenario: str) -> None:
    for entry in SCENARIOS[scenario].entries():
        result = books.write(entry)
        skipped = isinstance(result.raw, dict) and "skipped" in result.raw
        assert result.external_id or skipped, result
        assert not result.already_applied, f"{entry.event.event_type}: nothing was written"
    assert books.transport.sent, "no request was made"
    assert_books_agree(harness, sandbox, books, scenario)


@pytest.mark.parametrize(("platform_name", "scenario"), cases(replay=True),
                         indirect=["platform_name"])
def test_replay_creates_no_duplicates(harness: PlatformHarness, sandbox: Sandbox,
                                      books: Books, platform: Platform, scenario: str) -> None:
    entries = SCENARIOS[scenario].entries()
    for entry in entries:
        books.write(entry)
    # 1. runner-style replay: the id map knows every document.
    for entry in entries:
        books.write(entry)
    # 2. the id map was lost, inside the vendor's idempotency window.
    fresh = Books(platform, books.transport, books.tenant)
    for entry in entries:
        fresh.write(entry)
    # 3. the id map was lost and the idempotency window is over: lookups must find them.
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(3 * 86400)
    late = Books(platform, connect(harness, sandbox, books.tenant), books.tenant)
    for entry in entries:
        late.write(entry)
    ledger = report(harness, sandbox, books)
    assert ledger["duplicates"] == {"count": 0, "groups": []}
    for replayed in (fresh, late):
        assert {k: v for k, v in replayed.ids.items()} == books.ids
    assert_books_agree(harness, sandbox, books, scenario)


@pytest.mark.parametrize(("platform_name", "scenario"), cases(), indirect=["platform_name"])
def test_lost_responses_are_retried_without_duplicates(
        harness: PlatformHarness, sandbox: Sandbox, books: Books, scenario: str) -> None:
    """Every write's first response is lost after the platform committed it; the
    retry (same event, same idempotency keys) must not write it again."""
    tenant = harness.sandbox_tenant(books.tenant)
    for entry in SCENARIOS[scenario].entries():
        sandbox.faults.arm("drop_after_write", 1, tenant)
        books.write(entry, retries=3)
        sandbox.faults.clear()
    assert report(harness, sandbox, books)["duplicates"] == {"count": 0, "groups": []}
    assert_books_agree(harness, sandbox, books, scenario)


@pytest.mark.parametrize("platform_name", PLATFORMS, indirect=True)
def test_locked_period_pauses_the_tenant(harness: PlatformHarness, sandbox: Sandbox,
                                         books: Books) -> None:
    entries = SCENARIOS["labor_parts_invoice"].entries()
    sandbox.lock_period(harness.sandbox_tenant(books.tenant), date(2025, 12, 31))
    with pytest.raises(ConfigurationError) as caught:
        for entry in entries:
            books.write(entry)
    assert caught.value.action.value == "pause_tenant"
    sandbox.lock_period(harness.sandbox_tenant(books.tenant), None)
    for entry in entries:
        books.write(entry)
    assert_books_agree(harness, sandbox, books, "labor_parts_invoice")


@pytest.mark.parametrize("platform_name", PLATFORMS, indirect=True)
def test_customer_deactivated_behind_our_back_is_restored(
        harness: PlatformHarness, sandbox: Sandbox, books: Books,
        request: pytest.FixtureRequest) -> None:
    """Someone archives the customer in the platform; the CRM still bills them, so the
    next invoice reactivates the customer instead of failing."""
    if harness.reactivation_gap:
        request.applymarker(pytest.mark.xfail(reason=harness.reactivation_gap, strict=True))
    story = Story()
    customer = story.customer(sample_customer("c1"))
    story.invoice(sample_invoice("inv1", customer.id))
    story.invoice(sample_invoice("inv2", customer.id))
    entries = story.entries
    for entry in entries[:2]:
        books.write(entry)
    with sandbox.lock:
        sandbox.deactivate_customer(harness.sandbox_tenant(books.tenant), books.ids["customer:c1"])
    result = books.write(entries[2])
    assert any("reactivated" in n or "restored" in n for n in result.raw.get("notes", []))
    diffs = reconcile(expected_ledger(entries), report(harness, sandbox, books), books.ids)
    assert not diffs, format_differences(diffs)
