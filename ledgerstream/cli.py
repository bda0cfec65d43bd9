"""The one command, ``ledgerstream``: every runtime is a subcommand of it.

This module is the composition root: it wires settings into the packages and
owns no logic of its own beyond presenting results.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from deploy.localstack.errors import StackError
from deploy.localstack.stack import LocalStack

console = Console(stderr=True)
out = Console()

_LOG_FORMAT = click.option("--log-format", type=click.Choice(["json", "text"]), default="json",
                           show_default=True, help="Log lines as JSON objects or plain text.")


def _logging(component: str, log_format: str, level: str = "INFO") -> None:
    """Structured logs for a long-running runtime, credentials masked."""
    from ledgerstream.observability.logging import setup_logging

    setup_logging(component, level=level, json_format=log_format == "json")


@click.group()
@click.version_option(package_name="ledgerstream")
def main() -> None:
    """ledgerstream: CRM financial events into accounting platforms, exactly once."""


@main.command()
def up() -> None:
    """Start the local Kafka, schema registry and PostgreSQL (what is not running)."""
    stack = LocalStack()
    try:
        with console.status("bringing the local stack up") as spinner:
            report = stack.up(progress=lambda msg: spinner.update(msg))
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    table = Table("service", "endpoint", "state")
    for s in report.services:
        state = "already running" if s.started_in_s is None else f"started in {s.started_in_s:.1f}s"
        table.add_row(s.name, s.endpoint, state)
    out.print(table)
    out.print(f"ready in {report.total_s:.1f}s; for clients:")
    for key, value in report.endpoints.as_env().items():
        out.print(f"  export {key}={value}", highlight=False, soft_wrap=True)


@main.command()
def status() -> None:
    """Show each part of the local stack and whether it answers."""
    statuses = LocalStack().status()
    table = Table("service", "endpoint", "running", "healthy")
    for s in statuses:
        table.add_row(s.name, s.endpoint, _yes(s.running), _yes(s.healthy))
    out.print(table)
    if not all(s.healthy for s in statuses):
        sys.exit(3)


@main.command()
def down() -> None:
    """Stop the local stack (data is kept for the next `up`)."""
    stopped = LocalStack().down()
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@main.command()
@click.option("--timeout", default=5.0, show_default=True, help="Seconds per service.")
def check(timeout: float) -> None:
    """Probe the configured endpoints (env vars or the local stack) within a time bound."""
    from deploy.localstack.probes import check_database, check_kafka, check_registry
    from ledgerstream.endpoints import configured_endpoints

    endpoints = configured_endpoints()
    failures = 0
    for name, probe, target in (
        ("kafka", check_kafka, endpoints.kafka_bootstrap),
        ("registry", check_registry, endpoints.schema_registry_url),
        ("postgres", check_database, endpoints.database_url),
    ):
        try:
            probe(target, timeout)
            out.print(f"{name}: ok")
        except StackError as exc:
            failures += 1
            out.print(f"{name}: [red]{exc}[/red]")
    sys.exit(1 if failures else 0)


@main.command()
def resolve() -> None:
    """Download Kafka and Apicurio Registry from Maven Central into the cache."""
    from deploy.localstack import artifacts
    from deploy.localstack.settings import StackSettings

    try:
        found = artifacts.resolve(StackSettings())
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    out.print(f"kafka classpath: {found.kafka_libs}\nregistry: {found.registry_jar}")


@main.command()
@click.option("--tenants", type=int, default=None,
              help="Repair shops to simulate, spread over the platforms [default: one "
                   "per platform].")
@click.option("--jobs", default=12, show_default=True,
              help="Repair jobs per shop (Odoo and Reckon One shops get fewer: their "
                   "60 requests/min would stretch the demo over many minutes).")
@click.option("--customers", default=6, show_default=True, help="Customers per shop.")
@click.option("--platform", "platforms", multiple=True,
              help="Platforms to include (default: every platform with a sandbox).")
@click.option("--smoke", is_flag=True, help="Only the stack smoke round trip.")
def demo(tenants: int | None, jobs: int, customers: int, platforms: tuple[str, ...],
         smoke: bool) -> None:
    """Start the local stack and run the whole pipeline on a simulated day of repair jobs.

    CRM database → outbox relay → Kafka → stream processor → one sink per platform →
    local platform sandboxes; ends with a summary comparing the CRM with every
    sandbox. Exits non-zero on a duplicate, a lost record, a disagreement, or a dead
    letter that is not a limitation its platform documents.
    """
    from ledgerstream.demo import run_demo
    from ledgerstream.smoke import run_smoke

    stack = LocalStack()
    try:
        with console.status("bringing the local stack up") as spinner:
            report = stack.up(progress=lambda msg: spinner.update(msg))
        with console.status("smoke round trip: registry, Kafka, PostgreSQL"):
            result = run_smoke(report.endpoints)
    except (StackError, RuntimeError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        sys.exit(1)
    out.print(f"stack ready in {report.total_s:.1f}s at {report.endpoints.kafka_bootstrap}; "
              f"smoke round trip {result.round_trip_ms:.0f} ms")
    if smoke:
        sys.exit(0 if result.database_ok else 1)
    summary = run_demo(report.endpoints, tenants=tenants, jobs=jobs, customers=customers,
                       platforms=list(platforms) or None, console=console)
    out.print(summary.renderable())
    sys.exit(0 if summary.ok else 1)


@main.command()
@click.option("--platform", "platform_name", required=True, help="e.g. quickbooks, xero")
@click.option("--tenants", "tenants_file", type=click.Path(exists=True, dir_okay=False),
              help="Per-tenant mapping YAML (or LEDGERSTREAM_SINK_TENANTS_FILE).")
@click.option("--metrics-port", type=int,
              help="Serve /metrics, /healthz and /readyz on this port.")
@click.option("--batch-size", type=int, help="Records per bookkeeping transaction.")
@_LOG_FORMAT
def sink(platform_name: str, tenants_file: str | None, metrics_port: int | None,
         batch_size: int | None, log_format: str) -> None:
    """Write ledger entries to one accounting platform, exactly once."""
    from sinks.app import run_sink
    from sinks.core.errors import ConfigurationError
    from sinks.core.settings import SinkSettings

    given: dict[str, Any] = {"tenants_file": tenants_file, "metrics_port": metrics_port,
                             "batch_size": batch_size}
    overrides = {k: v for k, v in given.items() if v is not None}
    _endpoint_env()
    _logging(f"sink-{platform_name}", log_format)
    try:
        run_sink(SinkSettings(platform=platform_name, **overrides))
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)


@main.command()
@click.option("--platform", "platform_name", required=True)
@click.option("--since", help="ISO timestamp; default: the beginning of the topic.")
@click.option("--tenant", help="Only this tenant's sync-log rows (with --resend).")
@click.option("--resend", is_flag=True, help="Send already-applied events again (idempotently).")
def replay(platform_name: str, since: str | None, tenant: str | None, resend: bool) -> None:
    """Rewind a platform sink's stored offsets (run while that sink is stopped)."""
    from datetime import datetime

    from schemas.topics import Topics
    from sinks.core.replay import replay as do_replay
    from sinks.core.settings import SinkSettings

    _endpoint_env()
    settings = SinkSettings(platform=platform_name)
    topics = Topics(prefix=settings.topic_prefix, suffix=settings.topic_suffix)
    since_ms = int(datetime.fromisoformat(since).timestamp() * 1000) if since else 0
    plan = do_replay(bootstrap=settings.kafka_bootstrap_servers,
                     database_url=settings.database_url, topic=topics.ledger_entries,
                     group=topics.sink_group(platform_name), platform=platform_name,
                     since_ms=since_ms, tenant_id=tenant, resend=resend)
    out.print(f"offsets set to {plan.partitions}; events to resend: {plan.resent_events}")


@main.command()
@click.option("--platform", "platform_name", required=True)
@click.option("--tenant", required=True)
@click.option("--tenants", "tenants_file", type=click.Path(exists=True, dir_okay=False))
def resume(platform_name: str, tenant: str, tenants_file: str | None) -> None:
    """Un-pause a tenant after fixing its connection or mapping; replays its parked records."""
    from sinks.app import build_runner, close_transports
    from sinks.core.settings import SinkSettings

    _endpoint_env()
    overrides: dict[str, Any] = {"tenants_file": tenants_file} if tenants_file else {}
    runner = build_runner(SinkSettings(platform=platform_name, **overrides))
    try:
        replayed = runner.resume_tenant(tenant)
    finally:
        close_transports(runner)
    out.print(f"tenant {tenant} resumed; {replayed} parked records written")


@main.command()
def platforms() -> None:
    """List the supported accounting platforms and what each can do."""
    from sinks.platforms.registry import support_table

    out.print(support_table(), markup=False, highlight=False)


def _common(fn: Any) -> Any:
    """Options every producer/processor runtime shares."""
    for option in (
        click.option("--topic-prefix", help="Prefix of every topic, group and app id."),
        click.option("--topic-suffix", help="Suffix (after a dot): isolated test/demo runs."),
        click.option("--metrics-port", type=int,
                     help="Serve /metrics, /healthz and /readyz on this port."),
        _LOG_FORMAT,
    ):
        fn = option(fn)
    return fn


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@main.command()
@_common
@click.option("--database-url", help="The CRM database holding the outbox table.")
@click.option("--batch-size", type=int, help="Outbox rows per transaction.")
@click.option("--validation", type=click.Choice(["schema", "contract"]))
def relay(**opts: Any) -> None:
    """Move outbox rows to Kafka in commit order (several relays may run at once)."""
    from producers.relay.relay import RelaySettings, run_relay

    _endpoint_env()
    _logging("relay", opts.pop("log_format"))
    run_relay(RelaySettings(**_given(**opts)))


@main.command()
@_common
@click.option("--source", type=click.Choice(["sql", "http"]))
@click.option("--source-database-url")
@click.option("--http-base-url")
@click.option("--interval-s", type=float, help="Seconds between polls.")
def poll(**opts: Any) -> None:
    """Poll a CRM without an outbox for status changes and edits (watermarked)."""
    from producers.poller.poller import PollerSettings, run_poller

    _endpoint_env()
    _logging("poller", opts.pop("log_format"))
    run_poller(PollerSettings(**_given(**opts)))


@main.command()
@_common
@click.option("--host")
@click.option("--port", type=int)
def webhooks(**opts: Any) -> None:
    """Receive HMAC-signed CRM webhooks; 2xx only after Kafka acknowledged."""
    from producers.webhooks.server import WebhookSettings, run_webhooks

    _endpoint_env()
    _logging("webhooks", opts.pop("log_format"))
    run_webhooks(WebhookSettings(**_given(**opts)))


@main.command()
@_common
@click.option("--processing-guarantee", type=click.Choice(["exactly_once", "at_least_once"]))
@click.option("--data-dir", type=click.Path(file_okay=False))
def process(**opts: Any) -> None:
    """Run one stream-processor worker: enrichment, taxes, balances."""
    from stream_processors.runner import run_processor
    from stream_processors.settings import ProcessorSettings

    _endpoint_env()
    log_format = opts.pop("log_format")
    settings = ProcessorSettings(**_given(**opts))
    _logging("processor", log_format, level=settings.log_level)
    run_processor(settings)


@main.command()
@click.option("--database-url", help="The CRM database (default: DATABASE_URL / the stack).")
@click.option("--tenants", default=2, show_default=True, help="Repair shops.")
@click.option("--customers", default=12, show_default=True, help="Customers per shop.")
@click.option("--jobs", default=30, show_default=True, help="Repair jobs per shop.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same activity.")
@click.option("--rate", type=float, help="CRM events per second (default: as fast as possible).")
@click.option("--apply-schema", is_flag=True, help="Create the reference CRM tables first.")
@click.option("--avro", is_flag=True,
              help="Also write each event as Confluent-framed Avro (outbox payload_avro), "
                   "encoded in the business transaction; needs the schema registry.")
@click.option("--topic-prefix", default="", help="Topics the relay publishes to (--avro).")
@click.option("--topic-suffix", default="", help="Topics the relay publishes to (--avro).")
def simulate(database_url: str | None, tenants: int, customers: int, jobs: int, seed: int,
             rate: float | None, apply_schema: bool, avro: bool, topic_prefix: str,
             topic_suffix: str) -> None:
    """Write a simulated day of repair-shop activity into the reference CRM database."""
    import os
    import time

    from producers.simulator import SimulationConfig, simulate_day
    from producers.sql import apply_crm_schema

    _endpoint_env()
    dsn = database_url or os.environ["DATABASE_URL"]
    if apply_schema:
        apply_crm_schema(dsn)
    started = time.monotonic()
    last = [started]

    def show(count: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0:
            last[0] = now
            out.print(f"  {count} events written, {count / (now - started):.0f}/s")

    encoder = None
    if avro:
        from producers.outbox import AvroEncoder
        from schemas.topics import Topics

        encoder = AvroEncoder(os.environ["SCHEMA_REGISTRY_URL"],
                              Topics(prefix=topic_prefix, suffix=topic_suffix))
    result = simulate_day(dsn, SimulationConfig(tenants, customers, jobs, seed, rate=rate),
                          progress=show, avro_encoder=encoder)
    elapsed = time.monotonic() - started
    table = Table("event type", "count")
    for kind, n in sorted(result.by_type.items()):
        table.add_row(kind, str(n))
    table.add_row("total", str(len(result.events)))
    out.print(table)
    out.print(f"{len(result.events)} events in {elapsed:.1f}s "
              f"({len(result.events) / max(elapsed, 1e-9):.0f}/s)")


def _endpoint_env() -> None:
    """Let runtimes default to the local stack's endpoints when no env var is set."""
    import os

    from ledgerstream.endpoints import configured_endpoints

    for key, value in configured_endpoints().as_env().items():
        os.environ.setdefault(key, value)


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


if __name__ == "__main__":
    main()
