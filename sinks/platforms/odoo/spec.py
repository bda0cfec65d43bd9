"""Odoo: what the platform is (spec, limits, settings), nothing else.

Facts from ``shared/research/platforms-B.md`` §7 (Odoo), itself summarised from
odoo/odoo ``addons/account/models/account_move.py`` and the external API docs. There
is no machine-readable Odoo spec in ``shared/specs``; :mod:`sinks.platforms.odoo.fields`
holds the field table requests are validated against.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sinks.core.contract import PlatformSpec, RateLimitPolicy, RateWindow, WireProtocol
from sinks.transport.rpc import RpcProtocol, RpcTarget

__all__ = ["SPEC", "OdooSettings"]


class OdooSettings(BaseModel):
    """A tenant's Odoo database (``tenants.<id>.settings`` in the mapping file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``https://<db>.odoo.com`` or the self-hosted server.
    base_url: str = Field(pattern=r"^https?://")
    #: Database name: the ``X-Odoo-Database`` header (JSON-2), ``execute_kw``'s db.
    database: str = Field(min_length=1)
    #: Odoo major version: decides the API (JSON-2 needs 19) and field names
    #: (``account.payment.memo`` since 18, ``ref`` before).
    version: Literal[17, 18, 19] = 19
    #: JSON-2 (default, 19+) or ``execute_kw`` over JSON-RPC / XML-RPC (17, 18).
    protocol: RpcProtocol = RpcProtocol.JSON2
    #: The API user's numeric id (``common.authenticate``); only for ``execute_kw``.
    uid: int | None = None
    #: Company the documents belong to (multi-company databases); ``None``: the user's.
    company_id: int | None = None
    #: Sales journal for invoices and credit notes; ``None``: Odoo's default sale journal.
    sale_journal_id: int | None = None
    #: The company currency, and the ``res.currency`` id of every other CRM currency.
    company_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    currency_ids: dict[str, int] = Field(default_factory=dict)
    #: ``res.country`` ids by ISO code, for partner addresses (unmapped: left empty).
    country_ids: dict[str, int] = Field(default_factory=dict)
    #: Decimal accuracy of "Product Price" and "Product Unit of Measure" (Odoo default 2).
    price_digits: int = Field(default=2, ge=0, le=6)
    quantity_digits: int = Field(default=2, ge=0, le=6)

    @model_validator(mode="after")
    def _protocol_fits_version(self) -> OdooSettings:
        if self.protocol is RpcProtocol.JSON2 and self.version < 19:
            raise ValueError("the JSON-2 API exists from Odoo 19; use protocol 'jsonrpc' or "
                             "'xmlrpc' for Odoo 17/18")
        if self.protocol is not RpcProtocol.JSON2 and self.uid is None:
            raise ValueError(f"protocol {self.protocol.value!r} (execute_kw) needs 'uid'")
        return self

    @property
    def target(self) -> RpcTarget:
        return RpcTarget(self.protocol, self.database, self.uid)

    @property
    def memo_field(self) -> str:
        """``account.payment``'s free-text reference: ``memo`` (18+) or ``ref``."""
        return "memo" if self.version >= 18 else "ref"


SPEC = PlatformSpec(
    name="odoo",
    display_name="Odoo (17-19)",
    protocol=WireProtocol.JSON_RPC,
    supports_idempotency_key=False,
    supports_upsert=False,
    supports_void=True,
    # ``create`` takes a list of vals, but one document per call keeps lookups exact.
    max_batch_size=1,
    multi_currency=True,
    partial_payments=True,
    rate_limit=RateLimitPolicy(
        # Odoo documents no request limit (self-hosted: none; Odoo Online: "fair use").
        # A self-imposed ceiling, so one tenant's backlog cannot monopolise the worker
        # pool of a shared Odoo Online instance.
        windows=(RateWindow(60, 60),),
        concurrency=2,
        default_retry_after=30.0,
    ),
    # Odoo ``Char`` fields are unbounded PostgreSQL varchars: nothing to truncate.
    max_name_lengths={},
    settings_model=OdooSettings,
)
