"""Reckon One (API v2): what the platform is (spec, limits, settings), nothing else.

Facts from ``shared/research/platforms-B.md`` §2 and the v2 OpenAPI file in
``shared/specs/reckon-one/openapi.yaml``. Lengths marked ⚠ are not in the spec and
are this module's conservative assumptions (``docs/platforms/reckon-one.md``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol

__all__ = ["SPEC", "ReckonOneSettings"]

GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ReckonOneSettings(BaseModel):
    """A tenant's Reckon One connection (``tenants.<id>.settings`` in the mapping file).

    The subscription key and OAuth2 client secret are credentials, not settings: they
    live in the token store / secrets, never in the mapping file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The book every path starts with (``GET /books``; also in the app's URL).
    book_id: str = Field(pattern=GUID)
    #: API host: the spec's server, or the APIM gateway ``https://api.reckon.com/r1/v2``
    #: depending on which one the subscription key was issued for.
    base_url: str = "https://api-v2.reckonone.com"
    token_url: str = "https://identity.reckon.com/connect/token"
    #: A Reckon One book keeps one currency (AUD for Australian books); a document in
    #: any other currency cannot be represented.
    book_currency: str = Field(default="AUD", pattern=r"^[A-Z]{3}$")
    #: Page size of the lookups that match ``reference`` client-side.
    page_size: int = Field(default=100, ge=1, le=500)
    #: Receipts need a payment method id per CRM method (``GET /{book}/paymentMethods``);
    #: unmapped methods are sent without one.
    payment_methods: dict[str, str] = Field(default_factory=dict)


SPEC = PlatformSpec(
    name="reckon-one",
    display_name="Reckon One",
    protocol=WireProtocol.REST_JSON,
    # No idempotency header, no upsert: lookup by ``reference`` before every create.
    supports_idempotency_key=False,
    supports_upsert=False,
    # "Void" is DELETE (hard delete), see docs/platforms/reckon-one.md.
    supports_void=True,
    max_batch_size=1,
    multi_currency=False,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        # Not published. Azure API Management fronts the API and answers 429 with a
        # Retry-After; 60/min is a conservative client-side budget (⚠ unverified).
        windows=(RateWindow(60, 60),),
        concurrency=2,
        default_retry_after=60.0,
    ),
    max_name_lengths={
        "customer.name": 100,  # CustomerInput.name maxLength
        "customer.organisation": 100,  # CustomerInput.organisationName maxLength
        "customer.notes": 1000,  # CustomerInput.notes maxLength
        "address.line": 80,  # AddressInput.line1..3/town/state maxLength
        "address.postcode": 30,
        "address.country": 30,
        "email": 100,  # ElectronicAddressInput.address maxLength
        "phone": 30,  # PhoneNumberInput.number maxLength
        "invoice.reference": 50,  # ⚠ not in the spec
        "credit_note.reference": 50,  # ⚠ not in the spec
        "receipt.reference": 200,  # ReceiptInput.reference maxLength
        "receipt.notes": 255,  # ReceiptInput.notes maxLength
        "line.description": 1000,  # ReceiptLineItemInput.description maxLength (⚠ others)
    },
    settings_model=ReckonOneSettings,
)
