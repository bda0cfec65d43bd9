"""Xero (Accounting API 2.0).

``spec`` says what Xero is, ``mapping`` turns CRM documents into Xero bodies,
``flows`` orders the requests of each write, ``errors`` reads Xero's validation
errors (including HTTP 200 with ``summarizeErrors=false``).
"""

from __future__ import annotations

from sinks.core.contract import (
    Flow,
    LedgerEntry,
    Platform,
    PlatformResponse,
    SinkContext,
    WriteResult,
)
from sinks.core.errors import SinkError
from sinks.platforms.registry import register
from sinks.platforms.xero import errors, flows
from sinks.platforms.xero.spec import NAME, SPEC, XeroSettings

__all__ = ["NAME", "Xero", "XeroSettings"]


@register
class Xero(Platform):
    """The Xero platform module."""

    spec = SPEC

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        return flows.plan(entry, context)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return errors.classify(response)

    def find_by_reference(self, reference: str, context: SinkContext
                          ) -> Flow[WriteResult | None] | None:
        return flows.find_invoice(reference, context)

    @staticmethod
    def base_url(settings: XeroSettings) -> str:
        """Where the tenant's relative request paths point; requests carry the
        ``xero-tenant-id`` header themselves."""
        return settings.base_url
