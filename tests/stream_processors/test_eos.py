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


class _FakeKafkaConsumer:
    """Just the aiokafka state the watchdog reads."""

    def __init__(self, lso: dict[TP, int]) -> None:
        states = {tp: SimpleNamespace(lso=end, highwater=end, paused=False, _position=None)
                  for tp, end in lso.items()}
        assignment = SimpleNamespace(tps=set(lso), state_value=states.__getitem__)
        self._subscription = SimpleNamespace(
            subscription=SimpleNamespace(assignment=assignment))
        self._fetcher = SimpleNamespace(_records={})


class _FakeFaustConsumer:
    def __init__(self, lso: dict[TP, int], read: dict[TP, int], committed: dict[TP, int]):
        self._thread = SimpleNamespace(_consumer=_FakeKafkaConsumer(lso))
        self.ends = dict(lso)
        self.asked: list[set[TP]] = []
        self._read_offset = dict(read)
        self._committed_offset = dict(committed)
        self._acked: dict[TP, list[int]] = {}
        self._gap: dict[TP, Any] = {}
        self._active_partitions: set[TP] = set()
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()
        self.flow_active = True
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return set(self._thread._consumer._subscription.subscription.assignment.tps)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        self.asked.append(set(tps))
        return {tp: self.ends[tp] for tp in tps}

    def resume_partitions(self, tps: set[TP]) -> None:
        self._active_partitions |= tps

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset


def test_watchdog_reseeks_only_a_partition_that_has_records_but_delivers_none(
    monkeypatch: Any,
) -> None:
    from stream_processors import watchdog

    stuck, busy, idle = (TP("crm.financial-events", p) for p in (8, 9, 10))
    other = TP("elsewhere", 0)
    consumer = _FakeFaustConsumer(
        lso={stuck: 330, busy: 500, idle: 72, other: 99},
        read={stuck: 211, busy: 100, idle: 71, other: 5},
        committed={stuck: 212, busy: 90, idle: 72, other: 6})
    app = SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False,
                          started=True, should_stop=False)
    dog = watchdog.StallWatchdog(app, ["crm.financial-events"], stall_seconds=15)
    clock = [1000.0]
    monkeypatch.setattr(watchdog.time, "monotonic", lambda: clock[0])

    async def run() -> list[list[TP]]:
        found = []
        for _ in range(4):
            found.append(await dog.check())
            consumer._read_offset[busy] += 50  # this one keeps delivering
            clock[0] += 6
        return found

    found = asyncio.run(run())
    assert found == [[], [], [], [stuck]]  # first seen at t=0, flagged once 15 s passed
    assert consumer.seeks == [(stuck, 212)] and stuck in consumer._active_partitions
    assert consumer.asked == [{stuck, idle}]  # the broker is asked about quiet ones only

    app.rebalancing = True  # never during a rebalance or a recovery
    clock[0] += 60
    assert asyncio.run(dog.check()) == []


def test_watchdog_reseeks_a_partition_whose_committed_offset_was_never_acked(
    monkeypatch: Any,
) -> None:
    from stream_processors import watchdog

    holed, fine = TP("crm.financial-events", 4), TP("crm.financial-events", 5)
    consumer = _FakeFaustConsumer(lso={holed: 156, fine: 90}, read={holed: 100, fine: 80},
                                  committed={holed: 61, fine: 70})
    consumer._acked = {holed: [63, 64, 65], fine: [70, 71]}
    app = SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False,
                          started=True, should_stop=False)
    dog = watchdog.StallWatchdog(app, ["crm.financial-events"], stall_seconds=15)
    clock = [0.0]
    monkeypatch.setattr(watchdog.time, "monotonic", lambda: clock[0])

    async def run() -> list[list[TP]]:
        found = []
        for _ in range(4):
            found.append(await dog.check())
            consumer._read_offset[holed] += 5  # still delivering: only the commit is stuck
            consumer._read_offset[fine] += 5
            clock[0] += 6
        return found

    assert asyncio.run(run()) == [[], [], [], [holed]]
    assert consumer.seeks == [(holed, 61)]
