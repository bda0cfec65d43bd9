"""Sage Intacct: what the platform is (spec, limits, settings), nothing else.

Facts from ``shared/research/platforms-B.md`` §12 and the XML API 3.0 schema in
``shared/specs/sage-intacct/api.xsd``. Length limits are the UI's documented field
sizes as far as known; ⚠ they could not be checked against a live company.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol

__all__ = ["GATEWAY_PATH", "SPEC", "SageIntacctSettings"]

#: The XML gateway; every call is a POST of one ``<request>`` here.
GATEWAY_PATH = "/ia/xml/xmlgw.phtml"


class SageIntacctSettings(BaseModel):
    """A tenant's Sage Intacct connection (``tenants.<id>.settings``). Secrets (sender
    password, user password) live in the transport's credentials, not here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Web Services sender id (``control/senderid``), issued with the developer licence.
    sender_id: str = Field(min_length=1)
    #: Company id (``login/companyid``); also names the tenant in the sandbox.
    company_id: str = Field(min_length=1)
    base_url: str = "https://api.intacct.com"
    #: The company's base currency; other currencies are sent with ``exchratetype``.
    base_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    exchange_rate_type: str = "Intacct Daily Rate"


SPEC = PlatformSpec(
    name="sage-intacct",
    display_name="Sage Intacct",
    protocol=WireProtocol.REST_XML,
    # control/uniqueid=true: a re-sent controlid is rejected, never executed twice.
    supports_idempotency_key=True,
    supports_upsert=False,
    supports_void=True,
    max_batch_size=1,
    multi_currency=True,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        # Intacct limits *concurrent* requests per company by performance tier (2 on
        # the base tier); no per-minute quota is published. ⚠ unverified figures.
        windows=(RateWindow(100, 60),),
        concurrency=2,
        default_retry_after=30.0,
    ),
    max_name_lengths={
        "customer.id": 20,
        "customer.name": 100,
        "contact.name": 200,
        "address.line": 80,
        "address.city": 80,
        "address.state": 40,
        "address.zip": 30,
        "invoice.number": 45,
        "invoice.ponumber": 45,
        "invoice.description": 1000,
        "line.memo": 1000,
        "payment.refid": 45,
    },
    settings_model=SageIntacctSettings,
)
