"""The faust patches of :mod:`stream_processors.eos` that can be checked without a broker
(the SIGKILL integration test covers them end to end)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from stream_processors.eos import _revoke_after_commit, install_commit_flush


def test_resume_keeps_what_was_queued_while_the_flow_was_active() -> None:
    install_commit_flush()

    async def scenario() -> tuple[int, int, int]:
        flow = FlowControlEvent()
        queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                        clear_on_resume=True)
        flow.resume()  # starts suspended: the first resume clears (nothing)
        queue.put_nowait("delivered during perform_seek")
        flow.resume()  # recovery's "resume" of a flow that was never suspended
        kept = queue.qsize()
        flow.suspend()
        queue.put_nowait("queued before a rebalance")
        flow.resume()  # after a real suspension the queue is stale: cleared
        return kept, queue.qsize(), int(flow.is_active())

    assert asyncio.run(scenario()) == (1, 0, 1)


def test_revocation_commits_while_faust_still_knows_the_acked_offsets() -> None:
    tp, other = TP("crm.financial-events", 3), TP("crm.financial-events", 4)
    seen: dict[str, Any] = {}

    async def app_handler(revoked: set[TP]) -> None:
        # what faust's app handler (wait_empty + commit) gets to work with
        seen["acked"] = {t: list(v) for t, v in consumer._acked.items()}
        seen["active"] = set(consumer._active_partitions)

    consumer = SimpleNamespace(
        _active_partitions={tp, other}, _paused_partitions={tp},
        _acked=defaultdict(list, {tp: [10, 11, 12], other: [7]}),
        _acked_index=defaultdict(set, {tp: {10, 11, 12}, other: {7}}),
        _gap=defaultdict(list), _read_offset={tp: 12, other: 7},
        _committed_offset={tp: 10, other: 7}, _on_partitions_revoked=app_handler,
    )
    asyncio.run(_revoke_after_commit(consumer, {tp}))  # type: ignore[arg-type]

    assert seen["acked"][tp] == [10, 11, 12]
    assert seen["active"] == {other}  # no more fetching from the revoked partition
    assert tp not in consumer._acked and tp not in consumer._read_offset
    assert tp not in consumer._committed_offset and tp not in consumer._paused_partitions
    assert consumer._acked[other] == [7] and consumer._read_offset[other] == 7
