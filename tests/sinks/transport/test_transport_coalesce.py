"""Coalescing concurrent requests into platform batches (sinks.transport.coalesce)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import TransientError
from sinks.transport.coalesce import Coalescer


class Codec:
    max_items = 4

    def accepts(self, request: PlatformRequest) -> bool:
        return request.path == "/item"

    def pack(self, requests: Sequence[PlatformRequest]) -> PlatformRequest:
        return PlatformRequest("POST", "/batch", "batch",
                               json=[r.json for r in requests])

    def unpack(self, requests: Sequence[PlatformRequest], response: PlatformResponse
               ) -> list[PlatformResponse]:
        return [PlatformResponse.from_json(200, {"echo": v}) for v in response.json()]


class Api:
    def __init__(self, fail_batches: bool = False) -> None:
        self.sent: list[PlatformRequest] = []
        self.fail_batches = fail_batches
        self.lock = threading.Lock()

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        with self.lock:
            self.sent.append(request)
        time.sleep(0.03)
        if request.path == "/batch":
            if self.fail_batches:
                raise TransientError("502 from the batch endpoint", platform="t")
            return PlatformResponse.from_json(200, request.json)
        return PlatformResponse.from_json(200, {"echo": request.json})


def item(n: int) -> PlatformRequest:
    return PlatformRequest("POST", "/item", "write", json=n)


def test_concurrent_requests_share_batches_and_get_their_own_answers() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec())
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda n: coalescer(item(n)).json()["echo"], range(12)))
    assert answers == list(range(12))
    assert len(api.sent) < 12  # some travelled together
    assert all(len(r.json) <= Codec.max_items for r in api.sent if r.path == "/batch")
    assert coalescer.items == sum(len(r.json) for r in api.sent if r.path == "/batch")


def test_a_lone_request_and_an_unbatchable_one_go_as_themselves() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec())
    assert coalescer(item(7)).json() == {"echo": 7}
    other = PlatformRequest("GET", "/thing/1", "read")
    assert coalescer(other).json() == {"echo": None}
    assert [r.path for r in api.sent] == ["/item", "/thing/1"] and coalescer.batches == 0


def test_a_failed_batch_fails_every_request_in_it() -> None:
    api = Api(fail_batches=True)
    coalescer = Coalescer(api, Codec())
    outcomes: list[str] = []

    def call(n: int) -> None:
        try:
            coalescer(item(n))
            outcomes.append("ok")
        except TransientError:
            outcomes.append("failed")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(8)))
    batched = sum(len(r.json) for r in api.sent if r.path == "/batch")
    assert batched > 0 and outcomes.count("failed") == batched
    assert outcomes.count("ok") == 8 - batched  # those sent alone succeeded


@pytest.mark.parametrize("threads", [1, 3, 16])
def test_nothing_is_left_waiting(threads: int) -> None:
    api = Api()
    coalescer = Coalescer(api, Codec())
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda n: coalescer(item(n)).json()["echo"], range(40)))
    assert answers == list(range(40))
