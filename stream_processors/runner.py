"""``run_processor(settings)``: check the topics, prepare state, run the faust worker.

Why checks before faust starts: faust silently processes whatever partitions exist,
so a ``crm.customers`` with a different partition count than
``crm.financial-events`` would join events with the wrong customers. We refuse to
start instead, naming the topic.
"""

from __future__ import annotations

import logging
import sys
import time

import faust
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import REGISTRY

from ledgerstream.observability import Readiness, serve_observability
from ledgerstream.observability.group_lag import GroupLagMonitor
from stream_processors.app import GLOBAL_TABLE, TABLES, LedgerProcessor, ticks_topic
from stream_processors.eos import mark_clean, prepare_state_dir
from stream_processors.settings import ProcessorSettings

log = logging.getLogger(__name__)


class TopicLayoutError(RuntimeError):
    """A topic the processor needs is missing or not co-partitioned."""


def prepare_topics(settings: ProcessorSettings, timeout: float = 30.0) -> int:
    """Verify the input/output topics and create the internal ticks topic.

    Returns the partition count shared by the co-partitioned inputs.
    """
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    names = settings.topics
    meta = admin.list_topics(timeout=timeout)
    needed = [names.crm_financial_events, names.crm_customers, names.crm_tax_rates,
              names.ledger_entries, names.ledger_balances, names.ledger_dlq]
    missing = [t for t in needed if t not in meta.topics]
    if missing:
        raise TopicLayoutError(f"missing topics (create them first): {', '.join(missing)}")
    counts = {t: len(meta.topics[t].partitions) for t in needed}
    partitions = counts[names.crm_financial_events]
    if counts[names.crm_customers] != partitions:
        raise TopicLayoutError(
            f"{names.crm_customers} has {counts[names.crm_customers]} partitions, "
            f"{names.crm_financial_events} has {partitions}: they must be co-partitioned"
        )
    internal = internal_topics(settings.resolved_app_id, partitions)
    new = [NewTopic(name, count, 1, config=config)
           for name, (count, config) in internal.items() if name not in meta.topics]
    if new:
        for future in admin.create_topics(new).values():
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # a concurrent worker may have created it
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        _wait_for_metadata(admin, [t.topic for t in new], timeout)
    for name, (count, _) in internal.items():
        if name in meta.topics and len(meta.topics[name].partitions) != count:
            raise TopicLayoutError(f"{name} must have {count} partitions")
    return partitions


def internal_topics(app_id: str, partitions: int) -> dict[str, tuple[int, dict[str, str]]]:
    """The ticks topic and the table changelogs, created before faust starts: a
    changelog that faust creates itself can be missing from the metadata of the first
    group join, and faust 0.15.3 then "ignores" it and never assigns it (the worker
    hangs without consuming anything)."""
    compact = {"cleanup.policy": "compact"}
    topics = {ticks_topic(app_id): (partitions, {"cleanup.policy": "delete",
                                                 "retention.ms": str(3600 * 1000)})}
    for table in TABLES:
        topics[f"{app_id}-{table}-changelog"] = (partitions, compact)
    topics[f"{app_id}-{GLOBAL_TABLE}-changelog"] = (1, compact)
    return topics


def _wait_for_metadata(admin: AdminClient, topics: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        known = admin.list_topics(timeout=timeout).topics
        if all(t in known and known[t].partitions for t in topics):
            return
        time.sleep(0.2)
    raise TopicLayoutError(f"topics {topics} not visible in metadata after {timeout}s")


def processor_readiness(app: faust.App) -> Readiness:
    """Ready: the faust app started, has not crashed and is not rebalancing."""
    def running() -> bool | str:
        if app.crash_reason is not None:
            return f"crashed: {app.crash_reason!r}"
        if not app.started:
            return "starting"
        return "rebalancing" if app.rebalancing else True

    return Readiness({"faust": running})


def run_processor(settings: ProcessorSettings) -> int:
    """Run the processor until SIGTERM/SIGINT; returns the process exit code."""
    logging.basicConfig(level=settings.log_level.upper().replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    partitions = prepare_topics(settings)
    processor = LedgerProcessor(settings, partitions=partitions)
    datadir = settings.data_dir / settings.resolved_app_id
    prepare_state_dir(datadir, wipe_if_unclean=(
        processor.eos and settings.wipe_state_on_unclean_start))
    serve_observability("processor", settings.metrics_port, host="0.0.0.0",
                        registries=(processor.metrics.registry, REGISTRY),
                        readiness=processor_readiness(processor.app))
    names = settings.topics
    lag = GroupLagMonitor(
        settings.kafka_bootstrap_servers, settings.resolved_app_id,
        [names.crm_financial_events, names.crm_customers, names.crm_tax_rates],
        processor.metrics.lag, interval_s=settings.lag_interval_seconds).start()
    worker = faust.Worker(processor.app, loglevel=settings.log_level, quiet=True,
                          override_logging=False)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        lag.stop()
    crashed = processor.app.crash_reason
    if crashed is None and code == 0:
        mark_clean(datadir)
    else:
        log.error("processor stopped after a crash: %r", crashed)
        code = code or 1
    return code


def main(argv: list[str] | None = None) -> None:
    """``python -m stream_processors [--key value ...]``: settings from env + flags."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stream_processors")
    for name, field in ProcessorSettings.model_fields.items():
        if name in ("tenant_tax_rounding",):
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                            help=field.description)
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    settings = ProcessorSettings(**args)
    sys.exit(run_processor(settings))
