"""The pipeline demo: a repair-shop day through the real pipeline, checked to the cent.

``run_demo(endpoints)`` runs :class:`ledgerstream.pipeline.Pipeline` (relay, processor
and one sink per platform as processes, sandboxes served on loopback), shows live
progress (events produced, entries processed, documents written per platform, lag)
and returns a :class:`DemoSummary`: ``ok`` is false if any sandbox holds a duplicate,
misses a document without a dead letter saying why, disagrees with the CRM, or if
anything was dead-lettered that is not a limitation its platform documents
(:mod:`sinks.platforms.limitations`: those are listed apart, and the books of their
tenants are expected to lack those records).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deploy.localstack.stack import Endpoints
from ledgerstream.pipeline import (
    Pipeline,
    PipelineConfig,
    PipelineError,
    PipelineResult,
    Progress,
)
from sinks.sandbox.profiles import PROFILES

__all__ = ["DEMO_PLATFORMS", "SHORT_DAYS", "DemoSummary", "progress_table", "run_demo"]

#: The demo connects a shop to every platform that has a sandbox.
DEMO_PLATFORMS: tuple[str, ...] = tuple(sorted(PROFILES))

#: Repair jobs at most per shop on platforms whose documented rate limit makes a full
#: day take many minutes: Odoo (60 requests a minute per database, ~8 requests per
#: record: 63 records took 6 minutes in a 12-job day) and Reckon One (60 a minute: 64
#: records took 3 minutes). The sinks keep those limits in the demo, as in production.
SHORT_DAYS: dict[str, int] = {"odoo": 4, "reckon-one": 8}


@dataclass
class DemoSummary:
    """What the demo found; ``print(summary)`` or ``console.print(summary.renderable())``."""

    ok: bool
    result: PipelineResult | None
    error: str | None = None

    def renderable(self) -> RenderableType:
        if self.result is None:
            return Text(f"demo failed: {self.error}", style="red")
        return summary_renderable(self.result, self.error)

    def text(self, width: int = 140) -> str:
        console = Console(record=True, width=width, file=open("/dev/null", "w"))  # noqa: SIM115
        try:
            console.print(self.renderable())
            return console.export_text()
        finally:
            console.file.close()

    def __str__(self) -> str:
        return self.text()


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value / 1000:,.1f} s"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def progress_table(p: Progress) -> Table:
    """The live view: one row per platform."""
    table = Table(title=f"ledgerstream demo — {p.phase} ({p.elapsed_s:.0f}s)",
                  title_justify="left")
    for column in ("platform", "entries for it", "written", "lag", "restarts"):
        table.add_column(column, justify="right" if column != "platform" else "left")
    for platform in sorted(p.expected or p.written):
        table.add_row(platform, str(p.expected.get(platform, 0)),
                      str(p.written.get(platform, 0)), str(p.lag(platform)),
                      str(p.restarts.get(platform, 0)))
    table.caption = (f"events produced {p.produced} · outbox pending {p.outbox_pending} · "
                     f"ledger entries {p.entries} · processor dead letters "
                     f"{p.processor_dead_letters}")
    return table


def summary_renderable(result: PipelineResult, error: str | None = None) -> RenderableType:
    limited = sorted(t.tenant_id for t in result.tenants.values()
                     if not t.ok and result.books_ok(t))
    verdict = Text(("OK: every sandbox agrees with the CRM" + (
        f" (except where a documented platform limitation dead-lettered a record: "
        f"{', '.join(limited)})" if limited else "")) if result.ok and not error
        else "NOT OK", style="bold green" if result.ok and not error else "bold red")
    head = Text(
        f"run {result.run_id}: {result.events_produced} CRM events → {result.ledger_entries} "
        f"ledger entries in {result.duration_s:.1f}s; end-to-end latency p50 "
        f"{_ms(result.latency_ms(0.5))}, p99 {_ms(result.latency_ms(0.99))} "
        f"(event occurred_at → the platform's answer; to ledger.entries: p50 "
        f"{_ms(result.latency_ms(0.5, processor_only=True))}, p99 "
        f"{_ms(result.latency_ms(0.99, processor_only=True))}); "
        f"duplicates {result.duplicates}, "
        f"missing {result.missing}")
    platforms = Table(title="documents per platform", title_justify="left")
    for column in ("platform", "tenants", "entries", "applied", "dead-lettered", "documents",
                   "payments", "duplicates", "missing", "sink restarts", "latency p50 / p99"):
        platforms.add_column(column, justify="left" if column == "platform" else "right")
    for p in result.platforms.values():
        applied = p.sync_log.get("applied", 0) + p.sync_log.get("already_applied", 0)
        latency = (f"{_seconds(result.latency_ms(0.5, platform=p.platform))} / "
                   f"{_seconds(result.latency_ms(0.99, platform=p.platform))}")
        platforms.add_row(p.platform, str(len(p.tenants)), str(p.entries), str(applied),
                          str(p.sync_log.get("dead_lettered", 0)), str(p.documents),
                          str(p.payments), str(p.duplicates), str(p.missing), str(p.restarts),
                          latency)
    tenants = Table(title="CRM vs sandbox, per tenant", title_justify="left")
    for column in ("tenant", "platform", "CRM invoices", "sandbox invoices",
                   "CRM outstanding", "sandbox outstanding", "books"):
        tenants.add_column(column, justify="right" if "invoices" in column
                           or "outstanding" in column else "left")
    for t in result.tenants.values():
        differences = ("; ".join(str(d) for d in t.differences[:3])
                       + (f" (+{len(t.differences) - 3} more)"
                          if len(t.differences) > 3 else ""))
        if t.ok:
            books = Text("equal", style="green")
        elif result.books_ok(t):
            # the dead letters table says what; the differences follow from it
            n = len(t.differences)
            books = Text(f"{n} difference{'' if n == 1 else 's'}, from documented limitations: "
                         f"{', '.join(result.limitations(t.tenant_id))}", style="yellow")
        else:
            books = Text(differences, style="red")
        tenants.add_row(t.tenant_id, t.platform,
                        f"{t.crm_invoices} / {_money(t.crm_invoice_total)}",
                        f"{t.platform_invoices} / {_money(t.platform_invoice_total)}",
                        _money(t.crm_outstanding), _money(t.platform_outstanding), books)
    parts: list[RenderableType] = [head, platforms, tenants]
    if result.dead_letters:
        letters = Table(title="dead letters", title_justify="left")
        letters.add_column("count", justify="right")
        letters.add_column("kind")
        letters.add_column("platform")
        letters.add_column("stage: reason")
        counted: Counter[tuple[str, str, str]] = Counter()
        for d in result.dead_letters:
            limitation = result.limitation_of(d)
            kind = ("unexpected" if limitation is None else "follows a dead letter"
                    if limitation == "cascade" else f"documented: {limitation}")
            counted[(kind, result.assignment.get(str(d.tenant_id), "—"),
                     f"{d.stage}: {d.reason[:160]}")] += 1
        for (kind, platform, reason), count in sorted(counted.items(),
                                                      key=lambda kv: (-kv[1], kv[0])):
            letters.add_row(str(count), Text(kind, style="red" if kind == "unexpected"
                                             else "yellow"), platform, reason)
        parts.append(letters)
    if result.unprocessed_events:
        parts.append(Text(f"{result.unprocessed_events} CRM events never reached "
                          f"ledger.entries or a DLQ", style="red"))
    for problem in [*result.errors, *([error] if error else [])]:
        parts.append(Text(problem, style="red"))
    parts.append(verdict)
    return Group(*parts)


def run_demo(
    endpoints: Endpoints,
    *,
    tenants: int | None = None,
    jobs: int = 12,
    customers: int = 6,
    platforms: Sequence[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    console: Console | None = None,
    live: bool = True,
    seed: int = 42,
    timeout_s: float = 420.0,
    workdir: Path | None = None,
    **pipeline_options: Any,
) -> DemoSummary:
    """Run the demo against ``endpoints``; returns the summary (never raises for a
    pipeline failure: ``ok`` is then false and ``error`` says why).

    ``tenants`` shops (``t001``…; default: one per platform) are spread round-robin over
    ``platforms`` (default: every platform with a sandbox profile), each with ``jobs``
    repair jobs (fewer on the platforms of :data:`SHORT_DAYS`) and ``customers``
    customers. ``progress`` receives a :class:`Progress` snapshot about
    twice a second; ``live`` shows a rich live table on ``console`` (stderr by default).
    Further keyword arguments go to :class:`PipelineConfig`.
    """
    chosen = tuple(platforms) if platforms else DEMO_PLATFORMS
    pipeline_options.setdefault("jobs_by_platform", {
        platform: min(jobs, cap) for platform, cap in SHORT_DAYS.items()
        if platform in chosen})
    config = PipelineConfig(
        endpoints=endpoints, tenants=tenants or len(chosen), jobs_per_tenant=jobs,
        customers_per_tenant=customers, seed=seed, platforms=chosen,
        timeout_s=timeout_s, workdir=workdir, **pipeline_options)
    screen = console or Console(stderr=True)
    view: Live | None = Live(Text("starting"), console=screen, refresh_per_second=4,
                             transient=False) if live else None

    def on_progress(p: Progress) -> None:
        if view is not None:
            view.update(progress_table(p))
        if progress is not None:
            progress(p)

    pipeline: Pipeline | None = None
    try:
        if view is not None:
            view.start()
        pipeline = Pipeline(config, on_progress)
        result = pipeline.run()
        return DemoSummary(ok=result.ok, result=result)
    except PipelineError as exc:
        return DemoSummary(ok=False, result=None, error=str(exc))
    finally:
        if view is not None:
            view.stop()
        if pipeline is not None:
            pipeline.close()
