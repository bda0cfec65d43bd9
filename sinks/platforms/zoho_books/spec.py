"""Zoho Books: what the platform is (spec, limits, settings), nothing else.

Facts from ``shared/research/platforms-A.md`` §5 and Zoho's own per-module OpenAPI
files in ``shared/specs/zoho-books/``; items marked ⚠ there are hypotheses this module
adopts and ``docs/platforms/zoho-books.md`` lists as unverified.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol

__all__ = ["DATA_CENTRES", "SPEC", "ZohoBooksSettings"]

#: Zoho data centre → top-level domain of ``www.zohoapis.<dc>`` / ``accounts.zoho.<dc>``.
DATA_CENTRES = ("com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa")
DataCentre = Literal["com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa"]

_API_NAME = re.compile(r"cf_[a-z0-9_]{1,60}")


class ZohoBooksSettings(BaseModel):
    """A tenant's Zoho Books connection (``tenants.<id>.settings`` in the mapping file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``organization_id`` query parameter sent on every call (from ``GET /organizations``).
    organization_id: str = Field(pattern=r"^\d{1,20}$")
    #: The data centre the organisation lives in; the token response's ``api_domain``
    #: tells which. Selects both the API host and the accounts (token) host.
    data_centre: DataCentre = "com"
    #: API name of a custom field configured as *unique* ("do not accept duplicates")
    #: on contacts, invoices, credit notes and customer payments. Our idempotency key.
    unique_field: str = "cf_ledgerstream_id"
    #: Send the CRM's document numbers (else Zoho's auto-numbering assigns them).
    use_crm_numbers: bool = True
    #: The organisation's base currency, and Zoho ``currency_id`` of every other
    #: currency the CRM bills in (from ``GET /settings/currencies``).
    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    currency_ids: dict[str, str] = Field(default_factory=dict)
    #: The organisation's "tax rounding" preference (Settings → Preferences → General):
    #: ``item_level`` (Zoho's default: each line's tax rounded) or ``entity_level``
    #: (each tax summed over the document, rounded once). Invoices get a rounding
    #: ``adjustment`` when Zoho's total under this preference differs from the CRM's.
    tax_rounding: Literal["item_level", "entity_level"] = "item_level"
    #: Override the API base URL (sandbox, tests); derived from ``data_centre`` if unset.
    base_url: str | None = None

    @field_validator("unique_field")
    @classmethod
    def _api_name(cls, value: str) -> str:
        if not _API_NAME.fullmatch(value):
            raise ValueError("must be a custom field API name like 'cf_ledgerstream_id'")
        return value

    @property
    def api_base(self) -> str:
        return self.base_url or f"https://www.zohoapis.{self.data_centre}/books/v3"

    @property
    def token_url(self) -> str:
        return f"https://accounts.zoho.{self.data_centre}/oauth/v2/token"


SPEC = PlatformSpec(
    name="zoho-books",
    display_name="Zoho Books",
    protocol=WireProtocol.REST_JSON,
    supports_idempotency_key=False,
    # Upsert by a unique custom field: PUT /<module> + X-Unique-Identifier-* + X-Upsert.
    supports_upsert=True,
    supports_void=True,
    max_batch_size=1,
    multi_currency=True,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        # 100 requests/minute per organisation; the daily cap depends on the plan
        # (1,000 Free … 10,000 on higher plans); 1,000 is the safe floor.
        windows=(RateWindow(100, 60), RateWindow(1000, 86400)),
        concurrency=5,
        default_retry_after=60.0,
    ),
    max_name_lengths={
        "customer.display_name": 200,
        "address.line": 60,
        "address.city": 50,
        "address.state": 50,
        "address.country": 50,
        "address.zip": 30,
        "contact_person.email": 100,
        "invoice.reference_number": 100,
        "payment.reference_number": 100,
        "line.description": 2000,
    },
    settings_model=ZohoBooksSettings,
)
