"""What QuickBooks Online is, for ledgerstream: limits, names and tenant settings.

Sources: shared/research/platforms-A.md §1 and Intuit's v3 XSD
(shared/specs/quickbooks-online). Limits here are the documented ones; the sink's
contract suite checks the requests we build against the XSD.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol

__all__ = ["LIMITS", "NAME", "SPEC", "QuickBooksSettings"]

NAME = "quickbooks-online"

#: Field limits we meet by truncating (with a note) rather than being rejected.
LIMITS = {
    "customer.display_name": 500,
    "customer.company_name": 100,
    "customer.acct_num": 100,
    "invoice.doc_number": 21,
    "payment.ref_num": 21,
    "private_note": 4000,
    "line.description": 4000,
    "customer_memo": 1000,
}


class QuickBooksSettings(BaseModel):
    """A tenant's QuickBooks company: ``settings:`` in the mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    realm_id: str = Field(min_length=1)
    #: Intuit retired minor versions 1-74 on 2025-08-01.
    minor_version: int = Field(default=75, ge=75)
    base_url: str = "https://quickbooks.api.intuit.com"

    def company_url(self) -> str:
        """Base URL of the tenant's requests; platform paths are relative to it."""
        return f"{self.base_url.rstrip('/')}/v3/company/{self.realm_id}"


SPEC = PlatformSpec(
    name=NAME,
    display_name="QuickBooks Online",
    protocol=WireProtocol.REST_JSON,
    supports_idempotency_key=True,  # ?requestid=
    supports_upsert=False,
    supports_void=True,
    max_batch_size=1,  # /batch exists (30 items) but items are unordered; flows are ordered
    multi_currency=True,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        windows=(RateWindow(500, 60),), concurrency=10, default_retry_after=60.0
    ),
    max_name_lengths={
        "customer.display_name": LIMITS["customer.display_name"],
        "invoice.doc_number": LIMITS["invoice.doc_number"],
    },
    settings_model=QuickBooksSettings,
)
