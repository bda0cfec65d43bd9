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
3. Independently of both, the state is idempotent by construction (documents by
   version, a bounded event-id window), so a replay that does slip through changes
   no balance; ``ledger.entries`` consumers dedupe by ``event.event_id``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

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
