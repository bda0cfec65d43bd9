"""A POST without an idempotency key is never re-sent by the transport after a
transient failure: the response may have been lost after the write was applied."""

from __future__ import annotations

import httpx
import pytest

from sinks.core.contract import PlatformRequest
from sinks.core.errors import TransientError
from sinks.transport.http import HttpExecutor, SinkMetrics
from sinks.transport.retry import RetryPolicy


def executor(calls: list[str]) -> HttpExecutor:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, json={"message": "busy"})

    from prometheus_client import CollectorRegistry

    return HttpExecutor(
        platform="p", tenant_id="t",
        client=httpx.Client(transport=httpx.MockTransport(handler), base_url="http://x"),
        retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, max_elapsed=5),
        metrics=SinkMetrics(CollectorRegistry()), sleep=lambda _s: None,
    )


@pytest.mark.parametrize(
    ("request_", "expected_calls"),
    [
        (PlatformRequest("POST", "/docs", "create"), 1),
        (PlatformRequest("POST", "/docs", "create", idempotency_key="k1"), 3),
        (PlatformRequest("PUT", "/docs/1", "upsert"), 3),
        (PlatformRequest("GET", "/docs", "lookup"), 3),
    ],
)
def test_only_repeatable_requests_are_retried(request_: PlatformRequest, expected_calls: int
                                               ) -> None:
    calls: list[str] = []
    with pytest.raises(TransientError):
        executor(calls).send(request_)
    assert len(calls) == expected_calls
