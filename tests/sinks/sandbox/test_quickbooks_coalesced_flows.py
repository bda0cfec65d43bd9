"""QuickBooks flows of several customers written concurrently through the coalescer
(requests batched into /batch), then replayed with an empty id map: the books hold
each document exactly once, as they do without coalescing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

from schemas.examples import sample_customer, sample_invoice, sample_payment
from schemas.models import LedgerEntry
from sinks.core.contract import FlowRunner, SinkContext, WriteResult
from sinks.platforms import get_platform
from sinks.platforms.quickbooks.batch import QboBatchCodec
from sinks.sandbox import QuickBooksSandbox
from sinks.transport.coalesce import Coalescer
from tests.sinks.contract.harness import QUICKBOOKS, open_books
from tests.sinks.corpus import Story

PLATFORM = get_platform("quickbooks-online")


def lanes(customers: int) -> list[list[LedgerEntry]]:
    """Per customer: two invoices and a payment of the first, in order."""
    out = []
    for n in range(customers):
        story, cid = Story(), f"c{n}"
        story.customer(sample_customer(cid, display_name=f"Customer {n}",
                                       email=f"c{n}@example.com"), announce=False)
        for i in (1, 2):
            story.invoice(sample_invoice(f"inv{n}-{i}", cid))
        story.payment(sample_payment(f"pay{n}", cid, invoice_id=f"inv{n}-1",
                                     amount=D("50.00")))
        out.append(story.entries)
    return out


def write_all(transport: Coalescer, books, all_lanes, *, remember: bool
              ) -> list[WriteResult]:
    ids: dict[str, str] = {}
    lock = threading.Lock()
    results: list[WriteResult] = []

    def run(lane: list[LedgerEntry]) -> None:
        for entry in lane:
            with lock:
                known = dict(ids) if remember else {}
            context = SinkContext(tenant_id=books.tenant.tenant_id,
                                  event_id=str(entry.event.event_id), tenant=books.tenant,
                                  external_ids=known)
            result = FlowRunner(PLATFORM, transport).write(entry, context)
            with lock:
                results.append(result)
                if remember:
                    kind = entry.event.aggregate_type.value.lower()
                    ids[f"{kind}:{entry.event.aggregate_id}"] = result.external_id
                    ids.update(result.related)

    with ThreadPoolExecutor(len(all_lanes)) as pool:
        list(pool.map(run, all_lanes))
    return results


def test_coalesced_concurrent_writes_and_their_replay_leave_each_document_once() -> None:
    sandbox = QuickBooksSandbox(per_minute=100_000, max_concurrent=100)
    books = open_books(QUICKBOOKS, PLATFORM, sandbox, validate=False)
    transport = Coalescer(books.transport, QboBatchCodec())
    all_lanes = lanes(8)
    first = write_all(transport, books, all_lanes, remember=True)
    assert transport.batches > 0  # requests really travelled together
    assert not any(r.already_applied for r in first)
    realm = sandbox.realm(str(books.tenant.settings["realm_id"]))
    counts = {e: len(realm.entities[e]) for e in ("Customer", "Invoice", "Payment")}
    assert counts == {"Customer": 8, "Invoice": 16, "Payment": 8}
    paid = [inv for inv in realm.entities["Invoice"].values()
            if inv["DocNumber"].endswith("-1")]
    assert all(D(str(inv["Balance"])) == D(str(inv["TotalAmt"])) - D("50") for inv in paid)

    # A replay after losing the id map (as after a crash before the bookkeeping commit):
    # found by reference, nothing written twice.
    again = write_all(transport, books, all_lanes, remember=False)
    assert all(r.already_applied for r in again)
    assert {e: len(realm.entities[e]) for e in counts} == counts
