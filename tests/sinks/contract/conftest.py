"""Fixtures of the contract suite: one registered platform at a time, with its
sandbox and books (see :mod:`tests.sinks.contract.harness`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.core.contract import Platform
from sinks.platforms import get_platform
from sinks.sandbox import Sandbox
from tests.sinks.contract.harness import HARNESSES, Books, PlatformHarness, open_books


def harness_for(name: str) -> PlatformHarness:
    harness = HARNESSES.get(name)
    if harness is None:
        pytest.fail(f"platform {name!r} is registered but has no contract harness; add a "
                    f"PlatformHarness to tests/sinks/contract/harness.py:HARNESSES")
    missing = [f for f in harness.spec_files if not Path(f).exists()]
    if missing:
        pytest.skip(f"vendor spec for {name} not present ({', '.join(missing)}); the contract "
                    f"suite validates every request against it — check out ../shared/specs")
    return harness


@pytest.fixture
def platform_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(platform_name: str) -> PlatformHarness:
    return harness_for(platform_name)


@pytest.fixture
def platform(platform_name: str) -> Platform:
    return get_platform(platform_name)


@pytest.fixture
def sandbox(harness: PlatformHarness) -> Sandbox:
    return harness.make_sandbox()


@pytest.fixture
def books(harness: PlatformHarness, platform: Platform, sandbox: Sandbox) -> Books:
    return open_books(harness, platform, sandbox)
