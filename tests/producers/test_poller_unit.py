"""Watermark and snapshot logic, and the HTTP listing source (httpx MockTransport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from producers.events import derived_event_id
from producers.outbox.store import Stored
from producers.poller.diff import content_hash, plan
from producers.poller.source import HttpPollSource, Invalid, Position, position
from producers.poller.state import EPOCH, Snapshot
from schemas import examples
from schemas.models import AggregateType, InvoiceStatus, Op

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def stored_invoice(version: int, status: InvoiceStatus, at: datetime, *,
                   deleted: bool = False, inv_id: str = "inv1") -> Stored:
    inv = examples.sample_invoice(inv_id, status=status)
    return Stored("t1", AggregateType.INVOICE, inv_id, "c1", version, at, deleted,
                  None if deleted else inv, status.value)


def snap_of(item: Stored) -> Snapshot:
    return Snapshot(item.tenant_id, item.aggregate_type, item.aggregate_id, item.version,
                    content_hash(item), item.status, item.customer_id, item.deleted,
                    item.updated_at)


def test_positions_order_by_time_then_id() -> None:
    assert Position(T0, "t1:b") > Position(T0, "t1:a")
    assert Position(T0 + timedelta(microseconds=1), "t1:a") > Position(T0, "t1:z")
    assert Position(T0, "") > EPOCH


def test_new_aggregate_is_created_then_status_transitions_name_the_event() -> None:
    known: dict[Any, Snapshot] = {}
    first = stored_invoice(1, InvoiceStatus.DRAFT, T0)
    out = plan([first], known, "sql")
    assert [o.event.event_type for o in out.outgoing] == ["invoice.created"]
    assert out.outgoing[0].event.op is Op.CREATE
    sent = stored_invoice(2, InvoiceStatus.SENT, T0 + timedelta(seconds=1))
    paid = stored_invoice(3, InvoiceStatus.PAID, T0 + timedelta(seconds=2))
    out = plan([sent, paid], known, "sql")
    assert [o.event.event_type for o in out.outgoing] == ["invoice.sent", "invoice.paid"]
    assert [s.version for s in out.snapshots] == [2, 3]


def test_re_reading_the_same_rows_emits_nothing() -> None:
    item = stored_invoice(4, InvoiceStatus.SENT, T0)
    known = {("t1", AggregateType.INVOICE, "inv1"): snap_of(item)}
    assert plan([item, item], known, "sql").outgoing == []


def test_an_edit_without_status_change_is_an_update_and_ids_are_deterministic() -> None:
    before = stored_invoice(2, InvoiceStatus.SENT, T0)
    known = {("t1", AggregateType.INVOICE, "inv1"): snap_of(before)}
    edited_inv = examples.sample_invoice(status=InvoiceStatus.SENT, po_number="PO-9")
    edited = Stored("t1", AggregateType.INVOICE, "inv1", "c1", 3, T0, False, edited_inv,
                    "SENT")
    out = plan([edited], dict(known), "sql")
    assert [o.event.event_type for o in out.outgoing] == ["invoice.updated"]
    again = plan([edited], dict(known), "sql")
    assert out.outgoing[0].event.event_id == again.outgoing[0].event.event_id == (
        derived_event_id("sql", "t1", AggregateType.INVOICE, "inv1", 3, "invoice.updated"))


def test_delete_keeps_the_customer_for_the_key_and_unseen_deletes_are_silent() -> None:
    live = stored_invoice(2, InvoiceStatus.SENT, T0)
    gone = Stored("t1", AggregateType.INVOICE, "inv1", None, 3, T0, True, None)
    known = {("t1", AggregateType.INVOICE, "inv1"): snap_of(live)}
    out = plan([gone], known, "sql")
    assert [(o.event.event_type, o.event.payload, o.customer_id) for o in out.outgoing] == [
        ("invoice.deleted", None, "c1")]
    assert plan([gone], known, "sql").outgoing == []  # already told
    assert plan([stored_invoice(1, InvoiceStatus.DRAFT, T0, deleted=True, inv_id="x")],
                {}, "sql").outgoing == []


def test_versionless_sources_get_increasing_versions() -> None:
    a = stored_invoice(0, InvoiceStatus.DRAFT, T0)
    known: dict[Any, Snapshot] = {}
    plan([a], known, "http")
    b = Stored("t1", AggregateType.INVOICE, "inv1", "c1", 0, T0, False,
               examples.sample_invoice(status=InvoiceStatus.SENT), "SENT")
    out = plan([b], known, "http")
    assert out.outgoing[0].event.aggregate_version == 1


def test_invalid_content_is_dead_lettered_once() -> None:
    bad = Invalid("t1", AggregateType.INVOICE, "inv9", T0, "bad total", b'{"total": "x"}')
    known: dict[Any, Snapshot] = {}
    assert plan([bad], known, "http").invalid == [bad]
    assert plan([bad], known, "http").invalid == []
    fixed = stored_invoice(1, InvoiceStatus.SENT, T0, inv_id="inv9")
    assert [o.event.event_type for o in plan([fixed], known, "http").outgoing] == [
        "invoice.created"]


class FakeCrmApi:
    """A SaaS CRM listing endpoint: ``updated_since`` inclusive, page/per_page."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {"invoices": []}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != "Bearer s3cret":
            return httpx.Response(401)
        resource = request.url.path.rsplit("/", 1)[-1]
        since = datetime.fromisoformat(request.url.params["updated_since"])
        page, per = int(request.url.params["page"]), int(request.url.params["per_page"])
        rows = sorted((i for i in self.items.get(resource, [])
                       if datetime.fromisoformat(i["updated_at"]) >= since),
                      key=lambda i: (i["updated_at"], i["id"]))
        chunk = rows[(page - 1) * per: page * per]
        more = page * per < len(rows)
        return httpx.Response(200, json={"data": chunk, "next_page": page + 1 if more else None})

    def put_invoice(self, inv_id: str, at: datetime, **changes: Any) -> None:
        body = json.loads(examples.sample_invoice(inv_id).model_dump_json())
        body.update(changes, updated_at=at.isoformat())
        self.items["invoices"] = [i for i in self.items["invoices"] if i["id"] != inv_id]
        self.items["invoices"].append(body)


def make_source(api: FakeCrmApi) -> HttpPollSource:
    client = httpx.Client(transport=httpx.MockTransport(api), base_url="https://crm.test/api",
                          headers={"Authorization": "Bearer s3cret"})
    return HttpPollSource(client, "t1")


def test_http_source_pages_and_applies_the_same_timestamp_tie_breaker() -> None:
    api = FakeCrmApi()
    for n in range(5):  # five invoices with the SAME updated_at
        api.put_invoice(f"inv{n}", T0)
    api.put_invoice("inv9", T0 + timedelta(seconds=1))
    source = make_source(api)
    first = source.fetch(AggregateType.INVOICE, EPOCH, limit=2)
    assert [i.aggregate_id for i in first] == ["inv0", "inv1"]
    rest = source.fetch(AggregateType.INVOICE, position(first[-1]), limit=10)
    assert [i.aggregate_id for i in rest] == ["inv2", "inv3", "inv4", "inv9"]
    assert len({r.url.params["page"] for r in api.requests}) > 1  # it followed pages
    assert source.fetch(AggregateType.INVOICE, position(rest[-1]), limit=10) == []


def test_http_source_reports_items_that_break_the_contract() -> None:
    api = FakeCrmApi()
    api.put_invoice("ok", T0)
    api.put_invoice("bad", T0, total="lots")
    api.put_invoice("gone", T0 + timedelta(seconds=1), deleted=True, version=4)
    items = make_source(api).fetch(AggregateType.INVOICE, EPOCH, limit=10)
    by_id = {i.aggregate_id: i for i in items}
    assert isinstance(by_id["bad"], Invalid) and "total" in by_id["bad"].reason
    assert isinstance(by_id["ok"], Stored) and by_id["ok"].payload is not None
    gone = by_id["gone"]
    assert isinstance(gone, Stored) and gone.deleted and gone.version == 4
