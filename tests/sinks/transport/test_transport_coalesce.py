"""Coalescing concurrent requests into platform batches (sinks.transport.coalesce)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
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


def recording_caller(coalescer: Coalescer, error: type[Exception],
                     outcomes: list[str]) -> Callable[[int], None]:
    """A lane's call of item ``n`` that records "ok", or "failed" on ``error``."""
    def call(n: int) -> None:
        try:
            coalescer(item(n))
            outcomes.append("ok")
        except error:
            outcomes.append("failed")
    return call


def test_a_failed_batch_fails_every_request_in_it() -> None:
    api = Api(fail_batches=True)
    coalescer = Coalescer(api, Codec())
    outcomes: list[str] = []
    call = recording_caller(coalescer, TransientError, outcomes)

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


def _staggered(coalescer: Coalescer, gap_s: float, n: int = 2) -> list[int]:
    """``n`` requests, each started ``gap_s`` after the previous one."""
    answers: dict[int, int] = {}

    def call(k: int) -> None:
        answers[k] = coalescer(item(k)).json()["echo"]

    threads = []
    for k in range(n):
        threads.append(threading.Thread(target=call, args=(k,)))
        threads[-1].start()
        time.sleep(gap_s)
    for thread in threads:
        thread.join()
    return [answers[k] for k in range(n)]


def test_without_linger_a_request_just_after_another_travels_alone() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec())
    assert _staggered(coalescer, 0.01) == [0, 1]
    assert [r.path for r in api.sent] == ["/item", "/item"]


def test_linger_lets_a_request_that_arrives_shortly_after_join_the_batch() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec(), linger_s=0.2)
    assert _staggered(coalescer, 0.01) == [0, 1]
    assert [r.path for r in api.sent] == ["/batch"] and api.sent[0].json == [0, 1]


def test_a_full_batch_does_not_wait_for_the_linger() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec(), linger_s=30.0)
    started = time.monotonic()
    with ThreadPoolExecutor(Codec.max_items) as pool:
        answers = list(pool.map(lambda n: coalescer(item(n)).json()["echo"],
                                range(Codec.max_items)))
    assert answers == list(range(Codec.max_items))
    assert time.monotonic() - started < 5.0
    assert [len(r.json) for r in api.sent] == [Codec.max_items]


def test_a_lone_request_waits_no_longer_than_the_linger() -> None:
    api = Api()
    coalescer = Coalescer(api, Codec(), linger_s=0.2)
    started = time.monotonic()
    assert coalescer(item(3)).json() == {"echo": 3}
    assert 0.2 <= time.monotonic() - started < 2.0
    assert [r.path for r in api.sent] == ["/item"]


class ShortCodec(Codec):
    def unpack(self, requests: Sequence[PlatformRequest], response: PlatformResponse
               ) -> list[PlatformResponse]:
        return super().unpack(requests, response)[:-1]


def test_a_codec_that_loses_an_answer_fails_the_batch_instead_of_hanging_a_lane() -> None:
    api = Api()
    coalescer = Coalescer(api, ShortCodec(), linger_s=0.2)
    outcomes: list[str] = []
    call = recording_caller(coalescer, RuntimeError, outcomes)

    threads = [threading.Thread(target=call, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a lane was left waiting"
    batched = sum(len(r.json) for r in api.sent if r.path == "/batch")
    assert batched > 1 and outcomes.count("failed") == batched
