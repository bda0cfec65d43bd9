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
   processor holds a lock while it handles an event (and drains the buffer before
   releasing it), and :func:`install_commit_flush` makes every transaction commit
   take the same lock and drain the buffer first: an event's state and outputs are
   always in one transaction; its input offset may follow in the next, which the
   event-id dedupe turns into a no-op on replay.
4. **Commits run one partition after another.** faust commits the transaction of each
   input partition in turn (send offsets, commit, begin: three round trips each), so
   with 12 partitions a commit held the processing lock for most of a second.
   :func:`_commit_concurrently` runs the per-partition commits together (each
   transactional producer has its own lock and connection), same offsets, same
   ProducerFenced handling.
5. Independently of all of the above, the state is idempotent by construction (documents by
   version, a bounded event-id window), so a replay that does slip through changes
   no balance; ``ledger.entries`` consumers dedupe by ``event.event_id``.
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
from faust.transport.consumer import TransactionManager
from faust.transport.producer import ProducerBuffer
from faust.types import TP

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
    """The lock the processor holds while it handles one event (see point 3)."""
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
    """Patch faust (process-wide, idempotent): see point 3."""
    ProducerBuffer._send_pending = _tracked_send_pending  # type: ignore[method-assign]
    TransactionManager.commit = _commit_after_flush  # type: ignore[method-assign]
