"""QuickBooks Online (Intuit Accounting API v3, JSON).

``spec`` says what QBO is, ``mapping`` turns CRM documents into QBO bodies, ``flows``
orders the requests of each write, ``errors`` maps QBO fault codes onto the sink's
error taxonomy. Decisions (tips, fees, refunds, voids, closed periods) are documented
where they are made: :mod:`.mapping`, :mod:`.flows`, :mod:`.errors`.
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
from sinks.platforms.quickbooks import errors, flows
from sinks.platforms.quickbooks.batch import QboBatchCodec
from sinks.platforms.quickbooks.spec import NAME, SPEC, QuickBooksSettings
from sinks.platforms.registry import register

__all__ = ["NAME", "QuickBooksOnline", "QuickBooksSettings"]


@register
class QuickBooksOnline(Platform):
    """The QuickBooks Online platform module."""

    spec = SPEC

    def plan(self, entry: LedgerEntry, context: SinkContext) -> Flow[WriteResult]:
        return flows.plan(entry, context)

    def classify_error(self, response: PlatformResponse) -> SinkError | None:
        return errors.classify(response)

    def find_by_reference(self, reference: str, context: SinkContext
                          ) -> Flow[WriteResult | None] | None:
        return flows.find_invoice(reference, context)

    def batch_codec(self) -> QboBatchCodec:
        """How concurrent requests travel together through ``/batch`` (opt-in, see
        :mod:`sinks.transport.coalesce`)."""
        return QboBatchCodec()

    @staticmethod
    def base_url(settings: QuickBooksSettings) -> str:
        """Where the tenant's relative request paths point."""
        return settings.company_url()
