"""What faust's ``exactly_once`` does and does not cover, and what we add.

Observed with faust-streaming 0.15.3 + aiokafka 0.14 against Kafka 4.1 (see the
integration tests and the report in ``bench/RESULTS.md``):

1. **Output topics escape the transaction** (faust-streaming #177).
   ``TransactionManager.send`` looks the destination partition up in the *consumer's*
   metadata; a topic the app only produces to is not in it, so the record goes out on
   the plain idempotent producer with ``transactional_id=None``: visible at once to
   read_committed readers and never rolled back. Table changelogs are fine (their
   topics are subscribed). :meth:`.app.LedgerProcessor.emit` therefore sends
   ``ledger.*`` through the input partition's transactional producer itself.
2. **Local RocksDB keeps writes of aborted transactions.** Table writes hit RocksDB
   at once; after a crash the changelog transaction aborts, the input is re-read, but
   the local store still holds the aborted state (faust only replays the changelog
   *from* the persisted offset, it never undoes). Kafka Streams wipes local state
   after an unclean EOS shutdown; :func:`prepare_state_dir` does the same, so the
   tables are rebuilt from the committed changelog.
3. **Changelog writes can slip into the next transaction.** Table writes are queued
   in faust's ``ProducerBuffer`` (``send_soon``) and handed to the transactional
   producer by a background task; on the exactly_once path ``Consumer._commit_offsets``
   commits the transaction *without* draining that buffer (the at_least_once path
   does flush). Records still queued land in the next transaction; a crash before it
   commits aborts them while the input offsets are already committed — lost state.
   Seen in the SIGKILL test as a customer whose ledger restarted from nothing.
   Draining alone is not enough: a commit can also fall *between* an event's table
   write (buffered) and its ``ledger.*`` records (sent directly), splitting one event
   over two transactions — seen as events twice on ``ledger.entries``. So the
   processor holds a lock while it handles a batch of events (and drains the buffer
   before releasing it; see point 10), and :func:`install_commit_flush` makes every
   transaction commit take the same lock and drain the buffer first: an event's
   state and outputs are always in one transaction; its input offset may follow in
   the next, which the event-id dedupe turns into a no-op on replay.
4. **Commits run one partition after another.** faust commits the transaction of each
   input partition in turn (send offsets, commit, begin: three round trips each), so
   with 12 partitions a commit held the processing lock for most of a second.
   :func:`_commit_concurrently` runs the per-partition commits together (each
   transactional producer has its own lock and connection), same offsets, same
   ProducerFenced handling.
5. Independently of all of the above, the state is idempotent by construction (documents by
   version, a bounded event-id window), so a replay that does slip through changes
   no balance; ``ledger.entries`` consumers dedupe by ``event.event_id``.
6. **Records handed to the streams at the end of a recovery were thrown away** (issue
   #4, both failure modes). faust's ``Recovery.on_recovery_completed`` makes the input
   partitions fetchable, *then* awaits ``perform_seek()`` (one OffsetFetch per assigned
   partition, ~0.1 s) with the flow already active since the recovery, and only then
   calls ``app.flow_control.resume()`` — which in mode always clears every stream
   queue. Records fetched in between were queued, their offsets recorded as read
   (``Consumer._read_offset``, aiokafka's position) and then dropped unprocessed.
   What follows depends on the interleaving: if faust's next record is past the
   recorded read offset, its gap logic (meant for transaction markers) marks the
   missing offsets as done and the commit skips them — events lost for good, the
   "balance short" runs (seen: crm.financial-events[9] offsets 36-42, the first
   records of a chunk produced while the worker started, never applied, committed
   past in the first second of that incarnation; no aborted data for them in the
   changelog); otherwise faust is left believing it has delivered records it never
   will process — the "stall" runs fit this (seen: partition 8 frozen at 212 of 329
   while its ticks were still committed; offsets up to 211 were processed inside that
   same window, 212 and later never).
   :func:`_resume_clearing_only_after_suspend` makes ``resume()`` of a flow that was
   not suspended a no-op: only records queued before a suspension are stale.
7. **Changelog ends were read from a cache.** Under exactly_once faust takes the end
   of each changelog partition from ``AIOKafkaConsumer.last_stable_offset(tp)``, a
   value cached from the last *fetch* of that partition: ``-1`` ("empty, nothing to
   recover") for a partition not fetched yet since its assignment. Restarted workers
   logged ``-1`` for 24-27 of the 37 changelog partitions that all held data; the
   restore of those then only ran for as long as other partitions kept the recovery
   going. :func:`_committed_end_offsets` asks the broker (ListOffsets,
   read_committed: the last stable offset).
8. **A rebalance inside a running worker left every transaction open.** faust's
   ``Consumer.on_partitions_revoked`` drops its acked-offset bookkeeping for the
   revoked partitions *before* the app's handler waits for the streams and commits,
   so that commit found nothing to commit ('begin_transaction ... IN_TRANSACTION ->
   IN_TRANSACTION' on every producer at the next assignment, seen when a restarted
   worker joined the group twice), and the work of the open transactions met a
   recovery that can only replay committed changelog records.
   :func:`_revoke_after_commit` commits (and ends the transactions) first. The
   warning still shows for producers whose partitions had nothing new to commit
   (their transaction was begun empty after the last commit and simply continues).
   ``tests/stream_processors/test_integration.py::
   test_rebalances_inside_a_running_worker_lose_and_repeat_nothing`` drives two such
   rebalances; one of its first runs (before the watchdog looked for it) stalled one
   input partition after the second rebalance: its events were processed (the
   worker logged some of them) but its committed offset stayed where it was before
   the partition moved away and back — a commit stall, cause not pinned down.
9. Defence in depth, :mod:`.watchdog`: an input partition that has records but
   delivered none for 15 s, or whose committed offset was never acked while later
   offsets were, is logged with faust's and aiokafka's view of it and re-seeked to
   its committed offset (replays are no-ops, point 5).
10. **Batches keep all of the above.** The ledger agent iterates faust's
   ``take_events``, which acks a batch's events only after the loop body returns, so
   a commit (which takes the processing lock) can only fall between batches and
   never covers an event whose outputs are not yet sent. A revocation waits for the
   unacked events of the batch being filled (``_consumer_wait_empty``), so they are
   processed by the producers that own their partitions before those commit. Table
   rows and ``ledger.balances`` are held until the batch ends (:mod:`.staging`) and
   are sent inside the same lock; faust routes table rows by the *current event*,
   which :func:`.staging.use_event` sets for each event of the batch and each row.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from aiokafka.errors import ProducerFenced
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)
MARKER = "RUNNING"


def prepare_state_dir(datadir: Path, *, wipe_if_unclean: bool) -> bool:
    """Mark ``datadir`` as in use; wipe its tables first if the last run crashed.

    Returns True when state was wiped. The marker is removed by :func:`mark_clean`
    after a clean stop (faust commits everything processed before it stops).
    """
    datadir.mkdir(parents=True, exist_ok=True)
    marker = datadir / MARKER
    wiped = False
    if marker.exists() and wipe_if_unclean:
        for child in datadir.iterdir():
            if child.name == MARKER:
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        wiped = True
        log.warning("unclean shutdown detected: local table state in %s wiped, it will be "
                    "restored from the committed changelogs", datadir)
    marker.write_text(str(os.getpid()))
    return wiped


def mark_clean(datadir: Path) -> None:
    (datadir / MARKER).unlink(missing_ok=True)


_ORIGINAL_COMMIT = TransactionManager.commit
_ORIGINAL_SEND_PENDING = ProducerBuffer._send_pending
_IN_FLIGHT: dict[int, int] = {}


async def _tracked_send_pending(self: ProducerBuffer, fut: Any) -> None:
    # the buffer's drain task takes a record off the queue *before* handing it to the
    # transactional producer, so ``buffer.size == 0`` does not mean "all handed over"
    _IN_FLIGHT[id(self)] = _IN_FLIGHT.get(id(self), 0) + 1
    try:
        await _ORIGINAL_SEND_PENDING(self, fut)
    finally:
        _IN_FLIGHT[id(self)] -= 1


async def drain_buffer(buffer: ProducerBuffer) -> None:
    """Wait until every queued changelog record has reached the transactional producer."""
    while buffer.size or _IN_FLIGHT.get(id(buffer), 0):
        await buffer.flush()
        await asyncio.sleep(0)


_GUARD: list[asyncio.Lock] = []


def set_commit_guard(lock: asyncio.Lock) -> None:
    """The lock the processor holds while it handles a batch (see points 3 and 10)."""
    _GUARD[:] = [lock]


async def _commit_concurrently(
    self: TransactionManager, offsets: Mapping[TP, int], start_new_transaction: bool = True
) -> bool:
    """faust's ``TransactionManager.commit``, with the transactions committed together
    rather than one after another (point 4)."""
    group_id = self.app.conf.id
    by_transactional_id: dict[str, dict[TP, int]] = defaultdict(dict)
    for tp, offset in offsets.items():
        group = self.app.assignor.group_for_topic(tp.topic)
        by_transactional_id[f"{group_id}-{group}-{tp.partition}"][tp] = offset
    producer = self.producer
    results = await asyncio.gather(*(
        producer.commit_transactions({tid: tp_offsets}, group_id,
                                     start_new_transaction=start_new_transaction)
        for tid, tp_offsets in by_transactional_id.items()
    ), return_exceptions=True)
    for result in results:
        if isinstance(result, ProducerFenced):
            log.warning("ProducerFenced %s", result)
            await self.app.crash(result)
        elif isinstance(result, BaseException):
            raise result
    return True


async def _commit_after_flush(
    self: TransactionManager, offsets: Any, start_new_transaction: bool = True
) -> bool:
    # never between an event's table writes and its outputs, and with every changelog
    # record queued so far inside the transaction being committed
    buffer = cast(ProducerBuffer, self.app.producer.buffer)
    if not _GUARD:
        await drain_buffer(buffer)
        return await _commit_concurrently(self, offsets, start_new_transaction)
    async with _GUARD[0]:
        await drain_buffer(buffer)
        return await _commit_concurrently(self, offsets, start_new_transaction)


def install_commit_flush() -> None:
    """Patch faust (process-wide, idempotent): see points 3 and 6."""
    ProducerBuffer._send_pending = _tracked_send_pending  # type: ignore[method-assign]
    TransactionManager.commit = _commit_after_flush  # type: ignore[method-assign]
    AIOKafkaConsumerThread._highwaters = _committed_end_offsets  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = _revoke_after_commit  # type: ignore[method-assign]
    FlowControlEvent.resume = _resume_clearing_only_after_suspend  # type: ignore[method-assign]


_ORIGINAL_RESUME = FlowControlEvent.resume


def _resume_clearing_only_after_suspend(self: FlowControlEvent) -> None:
    """mode's ``FlowControlEvent.resume`` unless the flow is already active (point 6):
    resuming clears every managed queue (the stream queues and the changelog queue),
    which is right after a suspension and loses records when nothing was suspended."""
    if self.is_active():
        return
    _ORIGINAL_RESUME(self)


async def _revoke_after_commit(self: Consumer, revoked: set[TP]) -> None:
    """faust's ``Consumer.on_partitions_revoked`` with its two steps swapped (point 7).

    faust forgets the acked offsets of the revoked partitions and *then* runs the app's
    revocation handler, whose "wait for the streams, commit and end the transactions"
    therefore finds nothing to commit: every transaction stays open across the
    rebalance with the work done since the last commit, while the changelog recovery
    that follows can only replay what was committed."""
    if self._active_partitions is not None:
        self._active_partitions.difference_update(revoked)
    self._paused_partitions.difference_update(revoked)
    await self._on_partitions_revoked(revoked)
    for tp in revoked:
        self._gap.pop(tp, None)
        self._acked.pop(tp, None)
        self._acked_index.pop(tp, None)
        self._read_offset.pop(tp, None)
        self._committed_offset.pop(tp, None)


async def _committed_end_offsets(self: AIOKafkaConsumerThread,
                                 partitions: list[TP]) -> Mapping[TP, int]:
    """The end of each changelog partition as a read_committed consumer sees it (the
    last stable offset), asked of the broker (point 6). faust's own version returns
    ``AIOKafkaConsumer.last_stable_offset(tp)``, a value cached from the last *fetch*
    of that partition: ``None`` (so "nothing to recover") for a partition not fetched
    yet since it was assigned."""
    consumer = self._ensure_consumer()
    return cast(Mapping[TP, int], await consumer.end_offsets(partitions))
