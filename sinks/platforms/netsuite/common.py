"""What the NetSuite REST and SOAP sinks share: settings, spec facts, external ids,
line mapping, rounding and the vendor error table.

Sources: shared/research/platforms-A.md §8 and platforms-B.md §5; the error codes
below are all members of ``StatusDetailCodeType`` in the 2023.2 XSD
(``specs/netsuite-soap/xsd/platform.faultTypes.xsd``; a test checks this), and REST
reports the same codes as ``o:errorCode``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sinks.core.contract import RateLimitPolicy
from sinks.core.errors import (
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    SinkError,
    TransientError,
)
from sinks.core.mapping import LineKind as MappingLineKind
from sinks.core.mapping import TenantConfig, TenantMapping

__all__ = [
    "KNOWN_CODES",
    "NAME_LIMITS",
    "RATE_LIMIT",
    "NetSuiteLine",
    "NetSuiteSettings",
    "classify_code",
    "document_lines",
    "line_kind",
    "to_amount",
]

#: Account concurrency pool shared by SOAP, REST and RESTlets: 5 on the shared tier
#: without SuiteCloud Plus, +10 per licence. No per-minute window is documented; a
#: rejected request is retried after a short pause (none of the faults carries a hint).
RATE_LIMIT = RateLimitPolicy(windows=(), concurrency=5, default_retry_after=5.0)

#: Field lengths from a NetSuite CSV-import template (third-party copy, not Oracle's
#: records browser; unverified against a live account). Longer values are cut.
NAME_LIMITS: Mapping[str, int] = {
    "customer.companyName": 83,
    "customer.firstName": 25,
    "customer.lastName": 25,
    "customer.email": 64,
    "customer.phone": 21,
    "transaction.memo": 999,
    "transaction.otherRefNum": 45,
    "line.description": 4000,
}

#: ISO 4217 currencies with no minor unit (NetSuite uses the currency's precision).
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "HUF", "TWD", "VND"})


class NetSuiteSettings(BaseModel):
    """``settings:`` of a NetSuite tenant in the mapping file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Account id as NetSuite shows it, e.g. ``123456`` or ``123456_SB1`` (sandbox).
    account_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    #: Override of ``https://<account>.suitetalk.api.netsuite.com`` (tests, proxies).
    base_url: str | None = None
    #: ``rest`` (default) or ``soap`` (SuiteTalk, retired by Oracle in 2028.2).
    api: Literal["rest", "soap"] = "rest"
    soap_version: str = Field(default="2023_2", pattern=r"^\d{4}_\d$")
    #: Internal id of the subsidiary (required on customers in OneWorld accounts).
    subsidiary: str | None = None
    #: ISO currency → NetSuite currency internal id (multi-currency accounts). Empty:
    #: no currency is sent and the customer's currency applies.
    currencies: dict[str, str] = Field(default_factory=dict)
    #: Prefix of every externalId this sink writes (one NetSuite account per tenant).
    external_id_prefix: str = Field(default="ls-", max_length=20)
    #: Send the CRM document number as ``tranId`` (needs "Allow Override" on the
    #: transaction's auto-numbering); off: NetSuite numbers the document.
    use_crm_numbers: bool = True

    @property
    def realm(self) -> str:
        """OAuth/TBA realm: the account id in upper case (``123456_SB1``)."""
        return self.account_id.upper()

    @property
    def host_id(self) -> str:
        """Account id as it appears in host names (``123456-sb1``)."""
        return self.account_id.lower().replace("_", "-")

    def root_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"https://{self.host_id}.suitetalk.api.netsuite.com"

    def external_id(self, kind: str, crm_id: str) -> str:
        return f"{self.external_id_prefix}{kind}-{crm_id}"

    def currency_ref(self, code: str, tenant_id: str) -> str | None:
        if not self.currencies:
            return None
        try:
            return self.currencies[code]
        except KeyError:
            raise ConfigurationError(
                f"tenant {tenant_id!r} has no NetSuite currency id for {code!r} "
                f"(settings.currencies.{code})", platform="netsuite") from None


def settings_of(tenant: TenantConfig | None) -> NetSuiteSettings:
    if tenant is None:
        raise ConfigurationError("NetSuite sink called without a tenant configuration",
                                 platform="netsuite")
    return tenant.platform_settings(NetSuiteSettings)


# ------------------------------------------------------------------------- lines


def line_kind(kind: str) -> MappingLineKind:
    """CRM line kind → the mapping's line kind (which item and income account)."""
    value = str(kind).upper()
    if value == "LABOR":
        return MappingLineKind.LABOR
    if value == "PART":
        return MappingLineKind.PARTS
    if value == "DISCOUNT":
        return MappingLineKind.DISCOUNTS
    return MappingLineKind.FEES  # TRIP_FEE, DIAGNOSTIC_FEE, OTHER


def precision(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def to_amount(value: Decimal, currency: str, mapping: TenantMapping) -> Decimal:
    """NetSuite's rounding rule for amounts: the currency's precision (2, or 0 for
    zero-decimal currencies), half-up unless the tenant's mapping says half-even."""
    mode = ROUND_HALF_EVEN if mapping.rounding.mode.value == "half_even" else ROUND_HALF_UP
    return value.quantize(Decimal(1).scaleb(-precision(currency)), rounding=mode)


#: Item rates keep up to this many decimals (NetSuite rate fields accept more than the
#: currency's precision; the line amount is sent explicitly, already rounded).
RATE_PLACES = 6


def to_rate(value: Decimal) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-RATE_PLACES), rounding=ROUND_HALF_UP).normalize()


@dataclass(frozen=True)
class NetSuiteLine:
    """One item line, platform ids resolved, amounts rounded."""

    item: str
    description: str
    quantity: Decimal
    rate: Decimal
    amount: Decimal
    tax_code: str
    location: str | None = None
    class_ref: str | None = None


def document_lines(lines: Any, currency: str, mapping: TenantMapping, *,
                   exempt: bool, location: str | None) -> list[NetSuiteLine]:
    """CRM document lines → NetSuite item lines.

    Discounts are lines of the tenant's discount item with a negative amount (the CRM
    sends them negative). Non-taxable lines and tax-exempt customers get the mapped
    exempt tax code.
    """
    out = []
    for line in lines:
        kind = line_kind(line.kind)
        amount = to_amount(line.amount, currency, mapping)
        if kind is MappingLineKind.DISCOUNTS and amount > 0:
            amount = -amount
        rate = to_rate(line.unit_price)
        if kind is MappingLineKind.DISCOUNTS and rate > 0:
            rate = -rate
        out.append(NetSuiteLine(
            item=mapping.item(kind),
            description=line.description[:NAME_LIMITS["line.description"]],
            quantity=line.quantity,
            rate=rate,
            amount=amount,
            tax_code=mapping.tax_code(line.tax_code, exempt=exempt or line.tax_code is None),
            location=location,
            class_ref=mapping.class_ref,
        ))
    return out


def person_name(display_name: str) -> tuple[str, str]:
    """(firstName, lastName) of an individual: last word is the last name."""
    parts = display_name.strip().split()
    if len(parts) <= 1:
        return (display_name.strip(), display_name.strip())
    return (" ".join(parts[:-1]), parts[-1])


# ------------------------------------------------------------------------ errors

RATE_CODES = frozenset({"CONCURRENCY_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED",
                        "WS_CONCUR_SESSION_DISALLWD", "SSS_REQUEST_LIMIT_EXCEEDED",
                        "EXCEEDED_MAX_CONCUR_RQST"})
AUTH_CODES = frozenset({"INVALID_LOGIN", "INVALID_LOGIN_ATTEMPT", "INVALID_LOGIN_CREDENTIALS"})
CONFIG_CODES = frozenset({"INSUFFICIENT_PERMISSION", "INVALID_LOGIN_IP", "ACCT_TEMP_DISABLED",
                          "TRAN_PERIOD_CLOSED", "INVALID_PERIOD"})
TRANSIENT_CODES = frozenset({"RCRD_HAS_BEEN_CHANGED", "UNEXPECTED_ERROR",
                             "ACCT_TEMP_UNAVAILABLE"})
REFERENCE_CODES = frozenset({"RCRD_DSNT_EXIST", "INVALID_KEY_OR_REF", "INVALID_REF_KEY"})
REJECT_CODES = frozenset({"DUP_TRANS", "DUP_RCRD", "DUP_ENTITY", "UNIQUE_CUST_ID_REQD",
                          "CANT_DELETE_TRANS",
                          "MISSING_REQD_FLD", "INVALID_FLD_VALUE", "INVALID_FLD",
                          "EXCEEDED_MAX_FIELD_LENGTH", "USER_ERROR", "INVALID_TRANS_AMT",
                          "TRANS_APPLIED_AMTS_UNBALNCD", "INVALID_REFUND_AMT"})
KNOWN_CODES = RATE_CODES | AUTH_CODES | CONFIG_CODES | TRANSIENT_CODES | REFERENCE_CODES \
    | REJECT_CODES

#: Fields whose invalid reference means the *mapping* points at a missing record
#: (pause the tenant), not that the event refers to an unsynced document.
MAPPED_FIELDS = ("item", "taxcode", "account", "location", "class", "department",
                 "subsidiary", "currency", "paymentmethod")

def referenced_field(path: str | None) -> str:
    """The field an invalid reference is about: the leaf of an ``o:errorPath``
    (``item.items[0].taxCode`` → ``taxcode``) or the name in a SOAP message
    (``Invalid item reference key 999.`` → ``item``)."""
    text = (path or "").strip()
    named = re.search(r"invalid (\w+) reference", text, re.IGNORECASE)
    if named:
        return named.group(1).lower()
    leaf = text.rsplit(".", 1)[-1]
    return re.sub(r"\[\d*\]", "", leaf).lower()


_HINTS = {
    "TRAN_PERIOD_CLOSED": "the accounting period is closed; reopen it (or re-date the "
                          "document in the CRM), then resume the tenant",
    "DUP_TRANS": "another transaction already uses this document number",
    "CANT_DELETE_TRANS": "NetSuite refuses to delete a transaction with applied payments "
                         "or credits; remove them first",
    "RCRD_HAS_BEEN_CHANGED": "the record changed while NetSuite saved it; the upsert is "
                             "safe to repeat",
}


def classify_code(code: str | None, detail: str, *, status: int | None, path: str | None,
                  retry_after: float | None = None, platform: str = "netsuite"
                  ) -> SinkError | None:
    """The taxonomy member for a NetSuite error code, or ``None`` if unknown."""
    if code is None:
        return None
    hint = _HINTS.get(code)
    reason = f"{detail} ({hint})" if hint else detail
    kwargs: dict[str, Any] = {"platform": platform, "vendor_code": code, "status": status}
    if code in RATE_CODES:
        return RateLimitedError(f"account concurrency limit reached: {detail}",
                                retry_after=retry_after, **kwargs)
    if code in AUTH_CODES:
        return AuthExpiredError(f"login rejected: {detail}", **kwargs)
    if code in CONFIG_CODES:
        # A closed period blocks every event dated in it: pause the tenant and alert
        # (the bookkeeper reopens the period), do not dead-letter event after event.
        return ConfigurationError(f"integration role or account problem: {reason}", **kwargs)
    if code in TRANSIENT_CODES:
        return TransientError(reason, **kwargs)
    if code in REFERENCE_CODES:
        if referenced_field(path) in MAPPED_FIELDS:
            return ConfigurationError(
                f"mapped NetSuite id does not exist ({path}): {detail}", **kwargs)
        return ReferenceMissingError(reason, **kwargs)
    if code in REJECT_CODES:
        return PayloadRejectedError(reason, **kwargs)
    return None
