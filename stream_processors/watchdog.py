"""A watchdog for input partitions that have records but deliver none (see :mod:`.eos`).

faust 0.15.3 keeps its own per-partition bookkeeping next to aiokafka's (the last
offset handed to the streams, the set of "active" partitions passed to every fetch,
acked offsets); when the two disagree a partition can stop reaching the agent for
good while the worker looks healthy (issue #4: committed offset frozen, nothing
logged). The watchdog only looks, every ``interval`` seconds, outside rebalances and
recovery: when an input partition's last stable offset is past the last offset
faust delivered and that delivery has not moved for ``stall_seconds``, it logs the
whole state of that partition on both sides (so the cause can be read from the log)
and seeks it back to its committed offset. Replays are harmless: the state is
idempotent and every event's state and outputs share one transaction (:mod:`.eos`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


def partition_state(app: Any, tp: TP) -> dict[str, Any]:
    """What faust and aiokafka each believe about one assigned partition."""
    consumer = app.consumer
    acked = consumer._acked.get(tp) or []
    state: dict[str, Any] = {
        "read_offset": consumer._read_offset.get(tp),
        "committed": consumer._committed_offset.get(tp),
        "acked": (min(acked), max(acked), len(acked)) if acked else None,
        "gap": sorted((i.begin, i.end) for i in consumer._gap.get(tp, ())) or None,
        "active": tp in (consumer._active_partitions or ()),
        "paused_by_faust": tp in consumer._paused_partitions,
        "buffered": tp in consumer._buffered_partitions,
        "flow_active": consumer.flow_active,
    }
    kafka = consumer._thread._consumer
    if kafka is None:
        return state
    assignment = kafka._subscription.subscription
    assignment = assignment.assignment if assignment is not None else None
    if assignment is None or tp not in assignment.tps:
        state["assigned_in_aiokafka"] = False
        return state
    tp_state = assignment.state_value(tp)
    fetched = kafka._fetcher._records.get(tp)
    records = getattr(fetched, "_partition_records", None)
    state.update(
        position=getattr(tp_state, "_position", None),
        paused_by_aiokafka=tp_state.paused,
        lso=tp_state.lso,
        highwater=tp_state.highwater,
        buffered_fetch=(type(fetched).__name__ if fetched is not None else None),
        buffered_fetch_next=getattr(records, "next_fetch_offset", None),
    )
    return state


class StallWatchdog:
    """Detect (and log, and re-seek) input partitions that stopped being delivered."""

    def __init__(self, app: Any, topics: Iterable[str], *, stall_seconds: float = 15.0,
                 reseek: bool = True) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.stall_seconds = stall_seconds
        self.reseek = reseek
        self._seen: dict[TP, tuple[int | None, float]] = {}
        self._holes: dict[TP, tuple[int | None, float]] = {}
        self.stalls = 0

    async def check(self) -> list[TP]:
        """One pass; returns the partitions found stalled."""
        app = self.app
        if app.rebalancing or app.in_recovery or not app.started or app.should_stop:
            self._seen.clear()
            self._holes.clear()
            return []
        consumer = app.consumer
        now = time.monotonic()
        quiet: list[TP] = []
        stalled: list[TP] = []
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            read = consumer._read_offset.get(tp)
            last = self._seen.get(tp)
            if last is None or last[0] != read:
                self._seen[tp] = (read, now)
            elif now - last[1] >= self.stall_seconds:
                quiet.append(tp)
            # a partition is processed in order, so later offsets acked while the
            # committed one never is means that record was lost on the way: faust
            # will never commit past it
            committed = consumer._committed_offset.get(tp)
            acked = consumer._acked.get(tp)
            hole = committed if committed is not None and acked and min(acked) > committed \
                else None
            if hole is None or self._holes.get(tp, (None, 0.0))[0] != hole:
                self._holes[tp] = (hole, now)
            elif now - self._holes[tp][1] >= self.stall_seconds:
                self._holes[tp] = (hole, now)
                stalled.append(tp)
                await self._report(tp, f"offset {hole} was never acked while later ones "
                                       f"were, for {self.stall_seconds:.0f}s")
        if not quiet:
            return stalled
        # the broker's end (read_committed), not aiokafka's per-fetch cache: a partition
        # that is not fetched any more has no fresh cached end
        ends = await consumer.highwaters(*quiet)
        for tp in quiet:
            read = consumer._read_offset.get(tp)
            committed = consumer._committed_offset.get(tp)
            end = ends.get(tp)
            since = self._seen[tp][1]
            self._seen[tp] = (read, now)
            delivered_up_to = read if read is not None else (committed or 0) - 1
            if end is None or end - 1 <= delivered_up_to or tp in stalled:
                continue
            stalled.append(tp)
            await self._report(tp, f"has records up to {end - 1} but nothing was delivered "
                                   f"past {read} for {now - since:.0f}s")
        return stalled

    async def _report(self, tp: TP, what: str) -> None:
        self.stalls += 1
        consumer = self.app.consumer
        log.error("input partition %s[%s] %s: %s", tp.topic, tp.partition, what,
                  partition_state(self.app, tp))
        committed = consumer._committed_offset.get(tp)
        if self.reseek and committed is not None:
            log.warning("seeking %s[%s] back to its committed offset %s", tp.topic,
                        tp.partition, committed)
            consumer.resume_partitions({tp})
            await consumer.seek(tp, committed)
