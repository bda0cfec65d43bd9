"""Coalescing: concurrent single requests of one tenant sent as one platform batch.

The runner writes independent customers concurrently (one lane per Kafka key), so at
any moment several lanes of a tenant each wait for one request. Where a platform has a
batch endpoint (QuickBooks ``/batch``), those requests can travel together: the first
waiting lane becomes the sender, takes what has queued up (up to the platform's batch
size), sends it as one request through the tenant's executor (auth, rate budget,
retries) and hands every lane its own response; the lanes never notice. A lone request
is sent as itself. The sender may wait ``linger_s`` for more requests before sending
a batch that is not full (as a Kafka producer's ``linger.ms``): on a busy sink the
lanes answered by one batch come back a moment apart, and without the wait the first
of them would leave alone, one HTTP request each.

Why this keeps the runner's guarantees: each lane still has one request in flight and
sees its responses in order, so a flow's steps stay ordered; the items of one batch
come from different lanes and so have no dependencies between them (platforms do not
order a batch's items). Each flow still looks its document up by reference before
creating it, which is what makes a replay after a crash harmless; the batch itself
carries an idempotency key derived from its items' keys, so a transport retry of the
same batch is answered from the platform's replay store. A batch-level failure (401
after refresh, 429, 5xx after retries) is raised to every lane of the batch.

The codec (:class:`BatchCodec`) is the platform's: which requests may be batched, how
to pack them, how to unpack the answer into one :class:`PlatformResponse` per request,
shaped exactly as the single endpoint would have answered.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from sinks.core.contract import PlatformRequest, PlatformResponse, Transport

__all__ = ["BatchCodec", "Coalescer"]


class BatchCodec(Protocol):
    max_items: int

    def accepts(self, request: PlatformRequest) -> bool:
        """Whether ``request`` may travel inside a batch."""

    def pack(self, requests: Sequence[PlatformRequest]) -> PlatformRequest:
        """One batch request carrying ``requests`` (two or more)."""

    def unpack(self, requests: Sequence[PlatformRequest], response: PlatformResponse
               ) -> list[PlatformResponse]:
        """One response per request, in order, from the batch's successful answer."""


class _Waiting:
    """One lane's request and, once the sender set it, its answer. The lane blocks on
    a lock the sender releases: a bare hand-off, cheaper than an Event's condition."""

    __slots__ = ("_handoff", "answered", "error", "request", "response")

    def __init__(self, request: PlatformRequest) -> None:
        self.request = request
        self.response: PlatformResponse | None = None
        self.error: BaseException | None = None
        self.answered = False
        self._handoff = threading.Lock()
        self._handoff.acquire()

    def answer(self, response: PlatformResponse | None, error: BaseException | None
               ) -> None:
        self.response, self.error, self.answered = response, error, True
        self._handoff.release()

    def wait(self) -> None:
        self._handoff.acquire()


class Coalescer:
    """A :data:`Transport` over ``send`` that batches concurrent batchable requests.

    At most ``senders`` batches are in flight at once; requests arriving meanwhile queue
    up and leave together in the next batch, which leaves when it is full or when the
    sender has waited ``linger_s`` for it to fill.
    """

    def __init__(self, send: Transport, codec: BatchCodec, *, senders: int = 1,
                 linger_s: float = 0.0) -> None:
        self.send = send
        self.codec = codec
        self.senders = max(1, senders)
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._full = threading.Condition(self._lock)
        self._queue: list[_Waiting] = []
        self._active = 0
        self.batches = 0
        self.items = 0

    def close(self) -> None:
        """Close the wrapped transport (see ``HttpExecutor.close``)."""
        close = getattr(self.send, "close", None)
        if close is not None:
            close()

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        if not self.codec.accepts(request):
            return self.send(request)
        me = _Waiting(request)
        with self._lock:
            self._queue.append(me)
            if len(self._queue) >= self.codec.max_items:
                self._full.notify()
            lead = self._active < self.senders
            if lead:
                self._active += 1
        if lead:
            self._lead(me)
        me.wait()
        if me.error is not None:
            raise me.error
        assert me.response is not None
        return me.response

    def _lead(self, me: _Waiting) -> None:
        """Send batches until the queue is empty (or this lane's own request is
        answered and another sender can take over)."""
        while True:
            with self._lock:
                if not self._queue or (me.answered and self._active > 1):
                    self._active -= 1
                    return
                if self.linger_s > 0:
                    self._full.wait_for(lambda: len(self._queue) >= self.codec.max_items,
                                        self.linger_s)
                taken = self._queue[:self.codec.max_items]
                del self._queue[:len(taken)]
            self._send(taken)

    def _send(self, taken: list[_Waiting]) -> None:
        requests = [w.request for w in taken]
        try:
            if len(requests) == 1:
                responses = [self.send(requests[0])]
            else:
                batch = self.codec.pack(requests)
                responses = self.codec.unpack(requests, self.send(batch))
                if len(responses) != len(requests):  # else a lane would wait forever
                    raise RuntimeError(f"batch codec gave {len(responses)} answers for "
                                       f"{len(requests)} requests")
                with self._lock:
                    self.batches += 1
                    self.items += len(requests)
        except BaseException as exc:  # every lane of the batch sees the batch's failure
            for waiting in taken:
                waiting.answer(None, exc)
            return
        for waiting, response in zip(taken, responses, strict=True):
            waiting.answer(response, None)
