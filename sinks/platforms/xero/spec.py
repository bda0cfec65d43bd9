"""What Xero is, for ledgerstream: limits, names and tenant settings.

Sources: shared/research/platforms-A.md §2 and Xero's OpenAPI file
(shared/specs/xero/xero_accounting.yaml), which the contract suite validates every
request against.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol

__all__ = ["LIMITS", "NAME", "SPEC", "XeroSettings"]

NAME = "xero"

LIMITS = {
    "contact.name": 255,
    "contact.number": 50,
    "invoice.number": 255,
    "reference": 255,
    "line.description": 4000,
}


class XeroSettings(BaseModel):
    """A tenant's Xero organisation: ``settings:`` in the mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The organisation's id from ``GET /connections``; sent as ``xero-tenant-id``.
    xero_tenant_id: str = Field(min_length=1)
    base_url: str = "https://api.xero.com/api.xro/2.0"


SPEC = PlatformSpec(
    name=NAME,
    display_name="Xero",
    protocol=WireProtocol.REST_JSON,
    supports_idempotency_key=True,  # Idempotency-Key header, ≤ 128 chars
    supports_upsert=True,  # POST /Invoices creates or updates
    supports_void=True,
    max_batch_size=50,
    multi_currency=True,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        windows=(RateWindow(60, 60), RateWindow(5000, 86400)), concurrency=5,
        default_retry_after=60.0,
    ),
    max_name_lengths={"customer.display_name": LIMITS["contact.name"],
                      "invoice.doc_number": LIMITS["invoice.number"]},
    settings_model=XeroSettings,
)
