"""What ``ledgerstream sink`` sets up for its process besides the runner: the garbage
collector's thresholds, and how many of a tenant's lanes may run at once."""

from __future__ import annotations

import gc

from sinks.app import lanes_per_tenant, tune_gc
from sinks.core.contract import RateLimitPolicy
from sinks.core.settings import SinkSettings
from sinks.platforms.registry import get_platform


def test_tune_gc_raises_the_young_threshold_and_freezes_the_start_up_heap() -> None:
    before = gc.get_threshold()
    try:
        tune_gc(SinkSettings(platform="xero", gc_gen0_threshold=12_345))
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
        gc.set_threshold(*before)
        tune_gc(SinkSettings(platform="xero", gc_gen0_threshold=0))  # 0 keeps Python's
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_lanes_per_tenant_follow_the_rate_limit_and_a_full_batch() -> None:
    xero, qbo = get_platform("xero"), get_platform("quickbooks-online")
    assert lanes_per_tenant(xero, xero.spec.rate_limit, coalesce=False) == 5
    assert lanes_per_tenant(qbo, qbo.spec.rate_limit, coalesce=False) == 10
    codec = qbo.batch_codec()
    assert codec is not None
    assert lanes_per_tenant(qbo, qbo.spec.rate_limit, coalesce=True) == codec.max_items
    assert lanes_per_tenant(qbo, RateLimitPolicy(concurrency=100), coalesce=True) == 100
    assert lanes_per_tenant(qbo, RateLimitPolicy(), coalesce=True) is None
