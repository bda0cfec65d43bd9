"""Stream processors: enrichment, taxes and balances, exactly once (faust-streaming).

Public API:

* :func:`run_processor` and :class:`ProcessorSettings` — what ``ledgerstream process``
  calls;
* :mod:`stream_processors.tax`, :mod:`stream_processors.balances`,
  :mod:`stream_processors.checks`, :mod:`stream_processors.engine` — the pure logic
  (no faust import), reusable by reconciliation and replay tools.

Importing this package does not import faust; ``run_processor`` does, lazily.
"""

from __future__ import annotations

from stream_processors.settings import ProcessorSettings


def run_processor(settings: ProcessorSettings) -> int:
    """Run a processor worker until stopped; returns the exit code (0 = clean stop)."""
    from stream_processors.runner import run_processor as run

    return run(settings)


__all__ = ["ProcessorSettings", "run_processor"]
