"""Reckon One through the production transport: HttpExecutor with the composite
OAuth2 + subscription-key authenticator against the sandbox, a whole flow driven by
FlowRunner (token expiry → refresh at /connect/token → retry; a lost POST is not
re-sent by the transport; the re-run flow finds what it created)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas.examples import sample_customer, sample_invoice
from schemas.models import LedgerEntry
from sinks.core.contract import FlowRunner, SinkContext
from sinks.core.errors import ConfigurationError, TransientError
from sinks.platforms.reckon_one import ReckonOne
from sinks.sandbox.core import ManualClock, SyncASGITransport
from sinks.sandbox.reckon_one import SUBSCRIPTION_KEY, ReckonOneSandbox
from sinks.transport.auth import InMemoryTokenStore, OAuth2Auth, TokenSet
from sinks.transport.composite_auth import CompositeAuth, oauth2_with_subscription_key
from sinks.transport.http import HttpExecutor, SinkMetrics, make_client
from sinks.transport.retry import RetryPolicy
from tests.sinks.contract.harness_reckon_one import RECKON_ONE
from tests.sinks.corpus import Story

BASE = "http://sandbox.local"


def executor(sandbox: ReckonOneSandbox, key: str = SUBSCRIPTION_KEY,
             tenant: str = "t1") -> tuple[HttpExecutor, str]:
    config = RECKON_ONE.setup_tenant(sandbox, tenant)
    book = str(config.settings["book_id"])
    pair = sandbox.issue_tokens(book)
    store = InMemoryTokenStore()
    store.save("reckon-one", tenant, TokenSet(
        access_token=SecretStr(pair.access_token), refresh_token=SecretStr(pair.refresh_token),
        expires_at=datetime.now(UTC) + timedelta(hours=3)))
    oauth = OAuth2Auth(platform="reckon-one", tenant_id=tenant, token_url=f"{BASE}/connect/token",
                       client_id="app", client_secret=SecretStr("rk-test-client-secret-5d1e"),
                       store=store, client_auth="body")
    platform = ReckonOne()
    ex = HttpExecutor(
        platform="reckon-one", tenant_id=tenant,
        client=make_client(base_url=BASE, transport=SyncASGITransport(sandbox.app)),
        auth=oauth2_with_subscription_key(oauth, SecretStr(key)),
        classify=platform.classify_error, metrics=SinkMetrics(CollectorRegistry()),
        retry=RetryPolicy(max_attempts=3), sleep=lambda _: None, rng=random.Random(1))
    return ex, book


def story_entries() -> list[LedgerEntry]:
    story = Story()
    story.customer(sample_customer("c1"))
    story.invoice(sample_invoice("inv1", "c1"))
    return story.entries


def test_expired_bearer_is_refreshed_and_the_key_sent_every_time() -> None:
    sandbox = ReckonOneSandbox(clock=ManualClock())
    ex, book = executor(sandbox)
    assert isinstance(ex.auth, CompositeAuth)
    before = ex.auth.generation
    assert isinstance(sandbox.clock, ManualClock)
    sandbox.clock.advance(4 * 3600)  # the sandbox no longer honours the token
    platform = ReckonOne()
    context = SinkContext(tenant_id="t1", event_id="e1",
                          tenant=RECKON_ONE.setup_tenant(sandbox, "t1"))
    results = []
    ids: dict[str, str] = {}
    for entry in story_entries():
        context = SinkContext(tenant_id="t1", event_id=str(entry.event.event_id),
                              tenant=context.tenant, external_ids=dict(ids))
        result = FlowRunner(platform, ex).write(entry, context)
        ids.update(result.related)
        ids[f"{entry.event.aggregate_type.value.lower()}:{entry.event.aggregate_id}"] = \
            result.external_id
        results.append(result)
    assert results[1].document_number == "INV-000001"
    assert ex.auth.generation != before  # refreshed once, through /connect/token
    report = sandbox.ledger_report(book)
    assert report["duplicates"]["count"] == 0 and len(report["documents"]) == 1


def test_wrong_subscription_key_pauses_the_tenant() -> None:
    sandbox = ReckonOneSandbox(clock=ManualClock())
    ex, _ = executor(sandbox, key="not-the-key")
    context = SinkContext(tenant_id="t1", event_id="e1",
                          tenant=RECKON_ONE.setup_tenant(sandbox, "t1"))
    with pytest.raises(ConfigurationError, match="subscription key"):
        FlowRunner(ReckonOne(), ex).write(story_entries()[0], context)


def test_lost_post_is_not_resent_by_the_transport_and_the_rerun_finds_it() -> None:
    sandbox = ReckonOneSandbox(clock=ManualClock())
    ex, book = executor(sandbox)
    entry = story_entries()[0]
    context = SinkContext(tenant_id="t1", event_id=str(entry.event.event_id),
                          tenant=RECKON_ONE.setup_tenant(sandbox, "t1"))
    sandbox.faults.arm("drop_after_write", 1, book)
    with pytest.raises(TransientError):
        FlowRunner(ReckonOne(), ex).write(entry, context)
    assert len(sandbox.book(book).customers) == 1  # committed, response lost, not re-sent
    rerun = FlowRunner(ReckonOne(), ex).write(entry, context)
    assert rerun.external_id in sandbox.book(book).customers
    assert len(sandbox.book(book).customers) == 1
