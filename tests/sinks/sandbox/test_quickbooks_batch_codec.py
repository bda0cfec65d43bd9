"""QuickBooks /batch codec against the sandbox: every item comes back shaped as the
single endpoint answers it, so the flows cannot tell a batched request from a lone one."""

from __future__ import annotations

import httpx

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.platforms.quickbooks import errors as qerr
from sinks.platforms.quickbooks.batch import QboBatchCodec
from tests.sinks.sandbox.test_sandbox_quickbooks import BASE, customer, invoice_body

CODEC = QboBatchCodec()


def send(client: httpx.Client, request: PlatformRequest) -> PlatformResponse:
    raw = client.request(request.method, BASE + request.path, params=dict(request.query),
                         json=request.json)
    return PlatformResponse(raw.status_code, dict(raw.headers), raw.content)


def create(entity: str, body: dict, key: str) -> PlatformRequest:
    return PlatformRequest("POST", f"/{entity.lower()}", f"create {entity.lower()}",
                           query={"minorversion": "75", "requestid": key}, json=body,
                           idempotency_key=key)


def query(text: str) -> PlatformRequest:
    return PlatformRequest("GET", "/query", "find", query={"minorversion": "75",
                                                             "query": text})


def test_items_answer_like_the_single_endpoints(qclient: httpx.Client) -> None:
    taken = customer(qclient, "Taken Name")
    requests = [
        query("select * from Customer where DisplayName = 'Taken Name'"),
        create("Customer", {"DisplayName": "Fresh Name"}, "k-1"),
        create("Customer", {"DisplayName": "Taken Name"}, "k-2"),
        create("Invoice", invoice_body(taken["Id"], 25.0, doc="B-1"), "k-3"),
        query("select * from Invoice where DocNumber = 'NOPE'"),
    ]
    assert all(CODEC.accepts(r) for r in requests)
    batch = CODEC.pack(requests)
    assert batch.path == "/batch" and batch.idempotency_key == batch.query["requestid"]
    found, fresh, duplicate, invoice, nothing = CODEC.unpack(requests, send(qclient, batch))
    single = send(qclient, requests[0]).json()["QueryResponse"]
    assert found.status == 200
    assert found.json()["QueryResponse"].keys() == single.keys()
    assert [c["Id"] for c in found.json()["QueryResponse"]["Customer"]] == [taken["Id"]]
    assert fresh.status == 200 and fresh.json()["Customer"]["DisplayName"] == "Fresh Name"
    assert duplicate.status == 400
    (fault,) = qerr.faults_of(duplicate.body)
    assert fault.code == qerr.DUPLICATE_NAME and f"Id={taken['Id']}" in fault.detail
    assert invoice.json()["Invoice"]["Balance"] == 25.0
    assert nothing.json()["QueryResponse"] == {}


def test_same_items_same_key_so_a_retried_batch_is_replayed(qclient: httpx.Client) -> None:
    requests = [create("Customer", {"DisplayName": f"Replay {n}"}, f"r-{n}") for n in (1, 2)]
    first = CODEC.pack(requests)
    assert CODEC.pack(requests).idempotency_key == first.idempotency_key
    once = CODEC.unpack(requests, send(qclient, first))
    again = CODEC.unpack(requests, send(qclient, CODEC.pack(requests)))
    assert [r.json()["Customer"]["Id"] for r in once] == \
        [r.json()["Customer"]["Id"] for r in again]


def test_reads_by_id_voids_and_unkeyed_writes_go_alone() -> None:
    assert not CODEC.accepts(PlatformRequest("GET", "/invoice/12", "read invoice"))
    void = PlatformRequest("POST", "/invoice", "void invoice", json={"Id": "1"},
                           query={"operation": "void"}, idempotency_key="k")
    assert not CODEC.accepts(void)
    assert not CODEC.accepts(PlatformRequest("POST", "/invoice", "x", json={}))
