"""The sans-I/O contract: flows as generators, driven by FlowRunner against a fake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sinks.core.contract import (
    Flow,
    FlowRunner,
    Platform,
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    RateLimitPolicy,
    RateWindow,
    SinkContext,
    WireProtocol,
    WriteResult,
    idempotency_key,
    single_request,
    steps_of,
)
from sinks.core.errors import (
    AlreadyAppliedError,
    PayloadRejectedError,
    SinkError,
    TransientError,
    UnsupportedEventError,
)


class ToyBooks(Platform):
    """A platform with QuickBooks-like habits: find-or-create customer, SyncToken."""

    spec = PlatformSpec(
        name="toybooks",
        display_name="ToyBooks",
        protocol=WireProtocol.REST_JSON,
        supports_idempotency_key=True,
        rate_limit=RateLimitPolicy((RateWindow(500, 60),), concurrency=10),
        max_name_lengths={"customer.name": 5},
    )

    def plan(self, entry: Any, context: SinkContext) -> Flow[WriteResult]:
        if entry["type"] == "unsupported":
            raise UnsupportedEventError("toybooks cannot void", platform=self.spec.name)
        customer_id = context.external_ids.get(f"customer:{entry['customer']}")
        if customer_id is None:
            found = yield PlatformRequest(
                "GET",
                f"/customers/{entry['customer']}",
                purpose="find customer",
                accept_statuses=frozenset({404}),
            )
            if found.status == 404:
                created = yield PlatformRequest(
                    "POST",
                    "/customers",
                    purpose="create customer",
                    json={"name": self.spec.truncate("customer.name", entry["customer"])},
                    idempotency_key=context.key_for(self.spec.name, "customer"),
                )
                customer_id = created.json()["id"]
            else:
                customer_id = found.json()["id"]
        if "invoice_id" in entry:
            current = yield PlatformRequest(
                "GET", f"/invoices/{entry['invoice_id']}", purpose="read invoice"
            )
            body = {"id": entry["invoice_id"], "sync": current.json()["sync"], "c": customer_id}
        else:
            body = {"c": customer_id, "amount": entry["amount"]}
        posted = yield PlatformRequest(
            "POST",
            "/invoices",
            purpose="post invoice",
            json=body,
            idempotency_key=context.key_for(self.spec.name),
        )
        doc = posted.json()
        return WriteResult(doc["id"], version=doc["sync"], document_number=doc.get("no"), raw=doc)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        if response.status == 400 and b"Duplicate" in response.body:
            return AlreadyAppliedError(
                "duplicate document",
                external_id=response.json()["existing"],
                platform=self.spec.name,
                vendor_code="6140",
            )
        if response.status == 200 and b'"fault"' in response.body:  # error inside a 200
            return TransientError("fault in 200", platform=self.spec.name)
        return super().classify_error(response)


def fake(routes: dict[str, Callable[[PlatformRequest], PlatformResponse]]):
    def transport(request: PlatformRequest) -> PlatformResponse:
        return routes[f"{request.method} {request.path}"](request)

    return transport


def ctx(**ids: str) -> SinkContext:
    return SinkContext(tenant_id="acme", event_id="evt-1", external_ids=ids)


def test_find_or_create_then_post() -> None:
    posted: list[Any] = []

    def post_invoice(r: PlatformRequest) -> PlatformResponse:
        posted.append(r)
        return PlatformResponse.from_json(200, {"id": "inv-9", "sync": "0", "no": "1001"})

    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "GET /customers/bob-the-builder": lambda r: PlatformResponse.from_json(404, {}),
                "POST /customers": lambda r: PlatformResponse.from_json(200, {"id": "c-7"}),
                "POST /invoices": post_invoice,
            }
        ),
    )
    result = runner.write({"type": "invoice", "customer": "bob-the-builder", "amount": 5}, ctx())
    assert result == WriteResult(
        "inv-9", "0", "1001", raw={"id": "inv-9", "sync": "0", "no": "1001"}
    )
    assert steps_of(runner.sent) == [
        "GET /customers/bob-the-builder",
        "POST /customers",
        "POST /invoices",
    ]
    assert runner.sent[1].json == {"name": "bob-t"}  # truncated to the spec's limit
    assert posted[0].json == {"c": "c-7", "amount": 5}
    assert runner.sent[2].idempotency_key == idempotency_key("toybooks", "acme", "evt-1")
    assert runner.sent[1].idempotency_key != runner.sent[2].idempotency_key


def test_known_customer_and_synctoken_update() -> None:
    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "GET /invoices/inv-9": lambda r: PlatformResponse.from_json(200, {"sync": "3"}),
                "POST /invoices": lambda r: PlatformResponse.from_json(
                    200, {"id": "inv-9", "sync": str(int(r.json["sync"]) + 1)}
                ),
            }
        ),
    )
    result = runner.write(
        {"type": "invoice", "customer": "bob", "invoice_id": "inv-9"},
        ctx(**{"customer:bob": "c-1"}),
    )
    assert result.version == "4"
    assert steps_of(runner.sent) == ["GET /invoices/inv-9", "POST /invoices"]


def test_error_response_raises_and_closes_flow() -> None:
    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "POST /invoices": lambda r: PlatformResponse.from_json(
                    400, {"error": "Amount invalid"}
                ),
            }
        ),
    )
    with pytest.raises(PayloadRejectedError, match="Amount invalid"):
        runner.write(
            {"type": "invoice", "customer": "bob", "amount": -1}, ctx(**{"customer:bob": "c"})
        )


def test_404_not_accepted_outside_lookup() -> None:
    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "GET /invoices/gone": lambda r: PlatformResponse.from_json(404, {}),
            }
        ),
    )
    with pytest.raises(PayloadRejectedError):
        runner.write(
            {"type": "invoice", "customer": "b", "invoice_id": "gone"}, ctx(**{"customer:b": "c"})
        )


def test_vendor_classification_duplicate_is_success() -> None:
    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "POST /invoices": lambda r: PlatformResponse.from_json(
                    400, {"Duplicate": 1, "existing": "inv-1"}
                ),
            }
        ),
    )
    result = runner.write(
        {"type": "invoice", "customer": "b", "amount": 1}, ctx(**{"customer:b": "c"})
    )
    assert result.external_id == "inv-1" and result.already_applied


def test_vendor_error_inside_200() -> None:
    runner = FlowRunner(
        ToyBooks(),
        fake(
            {
                "POST /invoices": lambda r: PlatformResponse.from_json(200, {"fault": "busy"}),
            }
        ),
    )
    with pytest.raises(TransientError):
        runner.write({"type": "invoice", "customer": "b", "amount": 1}, ctx(**{"customer:b": "c"}))


def test_unsupported_event_raised_from_plan() -> None:
    runner = FlowRunner(ToyBooks(), fake({}))
    with pytest.raises(UnsupportedEventError):
        runner.write({"type": "unsupported"}, ctx())
    assert runner.sent == []


def test_runaway_flow_is_stopped() -> None:
    def forever() -> Flow[WriteResult]:
        while True:
            yield PlatformRequest("GET", "/ping", purpose="ping")

    runner = FlowRunner(ToyBooks(), lambda r: PlatformResponse(200))
    with pytest.raises(RuntimeError, match="exceeded"):
        runner.run(forever())
    assert len(runner.sent) == FlowRunner.max_steps


def test_single_request_flow_and_find_default() -> None:
    flow = single_request(
        PlatformRequest("POST", "/x", purpose="create"), lambda r: WriteResult(r.json()["id"])
    )
    runner = FlowRunner(ToyBooks(), lambda r: PlatformResponse.from_json(201, {"id": "42"}))
    assert runner.run(flow).external_id == "42"
    assert runner.find("REF-1", ctx()) is None


def test_request_and_response_values() -> None:
    with pytest.raises(ValueError, match="json or content"):
        PlatformRequest("POST", "/x", purpose="p", json={}, content=b"x")
    req = PlatformRequest("post", "/x", purpose="p", headers={"A": "1"})
    assert req.method == "POST"
    assert req.with_headers({"B": "2"}).headers == {"A": "1", "B": "2"}
    with pytest.raises(TypeError):
        req.headers["C"] = "3"  # type: ignore[index]
    resp = PlatformResponse(200, {"Retry-After": "3"}, b'{"a": 1}')
    assert resp.headers["retry-after"] == "3" and resp.ok and resp.json() == {"a": 1}
    assert PlatformResponse(204).json() is None


def test_idempotency_key_is_deterministic_and_short() -> None:
    a = idempotency_key("xero", "acme", "e1")
    assert a == idempotency_key("xero", "acme", "e1")
    assert len(a) == 36
    assert (
        len(
            {
                a,
                idempotency_key("qbo", "acme", "e1"),
                idempotency_key("xero", "acme2", "e1"),
                idempotency_key("xero", "acme", "e2"),
                idempotency_key("xero", "acme", "e1", "c"),
            }
        )
        == 5
    )


def test_idempotency_keys_never_change() -> None:
    """The keys are uuid5 (RFC 4122) of the same name as ever: a changed derivation
    would make every replay after an upgrade a new document."""
    import uuid

    from sinks.core.contract import IDEMPOTENCY_NAMESPACE, uuid5_text

    name = "\x1f".join(("xero", "acme", "e1", ""))
    assert idempotency_key("xero", "acme", "e1") == str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, name))
    for text in ("", "a", "caf\u00e9\x1fstep", "x" * 5000):
        assert uuid5_text(IDEMPOTENCY_NAMESPACE, text) == str(
            uuid.uuid5(IDEMPOTENCY_NAMESPACE, text))


def test_json_bodies_parse_as_the_standard_library_parses_them() -> None:
    import json

    for body in (b'{"a": 1.5, "b": [1, "x", null, true]}', b'{"n": 123456789012345678901234}',
                 b'{"x": NaN}', b'"caf\xc3\xa9"'):
        parsed, expected = PlatformResponse(200, {}, body).json(), json.loads(body)
        assert repr(parsed) == repr(expected)
    with pytest.raises(json.JSONDecodeError):
        PlatformResponse(200, {}, b"{not json").json()
    assert PlatformResponse.from_json(200, {"a": [1, 2.5]}).json() == {"a": [1, 2.5]}


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        RateWindow(0, 60)
    with pytest.raises(ValueError):
        PlatformSpec(name="x", display_name="X", protocol=WireProtocol.SOAP, max_batch_size=0)
    assert RateWindow(5000, 86400).key == "5000/86400"
