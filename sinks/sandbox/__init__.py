"""Stateful local simulators of accounting platform APIs (tests and demo).

``QuickBooksSandbox`` and ``XeroSandbox`` are Starlette apps (``.app``) with
in-process clients (``.client()``/``.async_client()``), ``.serve(port)`` for
loopback, fault injection (``.faults``, ``.apply_fault``, ``POST
/__sandbox/faults``) and a ledger report (``.ledger_report(tenant)``, ``GET
/__sandbox/ledger/{tenant}``).
"""

from sinks.sandbox.core import ManualClock, Sandbox, ServerHandle, SystemClock, serve
from sinks.sandbox.quickbooks import QuickBooksSandbox
from sinks.sandbox.xero import XeroSandbox

__all__ = ["ManualClock", "QuickBooksSandbox", "Sandbox", "ServerHandle", "SystemClock",
           "XeroSandbox", "serve"]
