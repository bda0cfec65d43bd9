"""Fixtures: each sandbox driven in-process over HTTP with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sinks.sandbox.core import ManualClock
from sinks.sandbox.quickbooks import QuickBooksSandbox
from sinks.sandbox.xero import XeroSandbox

REALM = "9130350000000001"
TENANT = "b7a3c1e2-0000-4000-8000-000000000001"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def qbo(clock: ManualClock) -> QuickBooksSandbox:
    return QuickBooksSandbox(clock=clock)


@pytest.fixture
def qclient(qbo: QuickBooksSandbox) -> Iterator[httpx.Client]:
    tokens = qbo.issue_tokens(REALM)
    with qbo.client(tokens.access_token) as client:
        yield client


@pytest.fixture
def xero(clock: ManualClock) -> XeroSandbox:
    return XeroSandbox(clock=clock)


@pytest.fixture
def xclient(xero: XeroSandbox) -> Iterator[httpx.Client]:
    tokens = xero.issue_tokens(TENANT)
    with xero.client(tokens.access_token, headers={"xero-tenant-id": TENANT}) as client:
        yield client
