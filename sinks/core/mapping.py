"""Per-tenant mapping: which account, item and tax code each CRM concept lands on.

A bookkeeper writes it once per tenant, as YAML::

    tenants:
      acme:
        platform: quickbooks-online
        settings: {realm_id: "9130..."}
        mapping:
          income_accounts: {labor: "79", parts: "80"}
          ...

pydantic validates the file up front (unknown keys are typos and are rejected), and
every lookup that finds no entry raises :class:`ConfigurationError` naming the tenant,
the missing key and where in the file it belongs, because an unmapped value is the
tenant's problem (pause and alert), never the event's (dead letter).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from sinks.core.errors import ConfigurationError

__all__ = [
    "CustomerMatchRule",
    "CustomerMatching",
    "LineKind",
    "MappingFile",
    "Rounding",
    "RoundingMode",
    "RoundingScope",
    "TenantConfig",
    "TenantMapping",
    "load_mapping_file",
    "parse_mapping",
]

M = TypeVar("M", bound=BaseModel)


class LineKind(enum.StrEnum):
    """The kinds of invoice line a repair-shop CRM produces."""

    LABOR = "labor"
    PARTS = "parts"
    FEES = "fees"
    DISCOUNTS = "discounts"


class RoundingScope(enum.StrEnum):
    PER_LINE = "per_line"
    PER_DOCUMENT = "per_document"


class RoundingMode(enum.StrEnum):
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


class CustomerMatchRule(enum.StrEnum):
    """How to find a CRM customer among the platform's existing customers."""

    EXTERNAL_REF = "external_ref"
    EMAIL = "email"
    DISPLAY_NAME = "display_name"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rounding(_Strict):
    """Where and how tax and amounts are rounded; must match the tenant's platform
    setting, or totals drift by a cent."""

    scope: RoundingScope = RoundingScope.PER_LINE
    mode: RoundingMode = RoundingMode.HALF_UP
    places: int = Field(default=2, ge=0, le=6)

    def quantize(self, amount: Decimal) -> Decimal:
        rounding = ROUND_HALF_UP if self.mode is RoundingMode.HALF_UP else ROUND_HALF_EVEN
        return amount.quantize(Decimal(1).scaleb(-self.places), rounding=rounding)

    def total(self, amounts: Iterable[Decimal]) -> Decimal:
        """Sum of ``amounts`` rounded per line or once for the document."""
        values = list(amounts)
        if self.scope is RoundingScope.PER_LINE:
            return sum((self.quantize(a) for a in values), Decimal(0))
        return self.quantize(sum(values, Decimal(0)))


class CustomerMatching(_Strict):
    """Rules tried in order; the first that finds exactly one customer wins.
    ``create_missing`` creates a customer when none matches."""

    rules: tuple[CustomerMatchRule, ...] = (CustomerMatchRule.EXTERNAL_REF, CustomerMatchRule.EMAIL)
    create_missing: bool = True

    @model_validator(mode="after")
    def _non_empty(self) -> CustomerMatching:
        if not self.rules:
            raise ValueError("customer_matching.rules needs at least one rule")
        if len(set(self.rules)) != len(self.rules):
            raise ValueError("customer_matching.rules lists a rule twice")
        return self


class TenantMapping(_Strict):
    """The platform ids one tenant's CRM values map to. Values are the platform's own
    ids or codes (QuickBooks account Id, Xero AccountCode, ...)."""

    income_accounts: dict[LineKind, str] = Field(default_factory=dict)
    items: dict[LineKind, str] = Field(default_factory=dict)
    #: CRM tax code → platform tax code.
    tax_codes: dict[str, str] = Field(default_factory=dict)
    #: Jurisdiction → platform tax code, used when the CRM code itself is unmapped.
    tax_jurisdictions: dict[str, str] = Field(default_factory=dict)
    #: Platform tax code for tax-exempt customers and non-taxable lines.
    exempt_tax_code: str | None = None
    #: Payment method (case-insensitive) → deposit account.
    deposit_accounts: dict[str, str] = Field(default_factory=dict)
    processor_fee_account: str | None = None
    tip_account: str | None = None
    class_ref: str | None = None
    #: CRM location/shop id → platform location (department, tracking option).
    locations: dict[str, str] = Field(default_factory=dict)
    customer_matching: CustomerMatching = Field(default_factory=CustomerMatching)
    rounding: Rounding = Field(default_factory=Rounding)

    _tenant_id: str = PrivateAttr(default="?")
    _platform: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _normalise(self) -> TenantMapping:
        lowered = {k.strip().lower(): v for k, v in self.deposit_accounts.items()}
        if len(lowered) != len(self.deposit_accounts):
            raise ValueError("deposit_accounts lists a payment method twice (case-insensitive)")
        object.__setattr__(self, "deposit_accounts", lowered)
        return self

    def _missing(self, what: str, key: str | None, where: str) -> ConfigurationError:
        subject = f"{what} {key!r}" if key is not None else what
        return ConfigurationError(
            f"tenant {self._tenant_id!r} has no {subject} (mapping.{where})",
            platform=self._platform,
        )

    def income_account(self, kind: LineKind | str) -> str:
        kind = LineKind(kind)
        try:
            return self.income_accounts[kind]
        except KeyError:
            raise self._missing(
                "income account for line kind", kind.value, "income_accounts"
            ) from None

    def item(self, kind: LineKind | str) -> str:
        kind = LineKind(kind)
        try:
            return self.items[kind]
        except KeyError:
            raise self._missing("item for line kind", kind.value, "items") from None

    def tax_code(
        self, crm_code: str | None, jurisdiction: str | None = None, *, exempt: bool = False
    ) -> str:
        """Platform tax code for a CRM tax code, falling back to its jurisdiction;
        ``exempt`` (or no code at all) selects :attr:`exempt_tax_code`."""
        if exempt or crm_code is None:
            if self.exempt_tax_code is None:
                raise self._missing("tax code for exempt lines", None, "exempt_tax_code")
            return self.exempt_tax_code
        if crm_code in self.tax_codes:
            return self.tax_codes[crm_code]
        if jurisdiction is not None and jurisdiction in self.tax_jurisdictions:
            return self.tax_jurisdictions[jurisdiction]
        raise self._missing("tax code mapping for CRM code", crm_code, "tax_codes")

    def deposit_account(self, payment_method: str) -> str:
        key = payment_method.strip().lower()
        if key in self.deposit_accounts:
            return self.deposit_accounts[key]
        if "default" in self.deposit_accounts:
            return self.deposit_accounts["default"]
        raise self._missing(
            "deposit account for payment method", payment_method, "deposit_accounts"
        )

    def fee_account(self) -> str:
        if self.processor_fee_account is None:
            raise self._missing("processor-fee account", None, "processor_fee_account")
        return self.processor_fee_account

    def tips_account(self) -> str:
        if self.tip_account is None:
            raise self._missing("tip account", None, "tip_account")
        return self.tip_account

    def location(self, crm_location: str | None) -> str | None:
        """Platform location for a CRM location; ``None`` when the tenant does not
        track locations at all, an error when it does and this one is unmapped."""
        if not self.locations:
            return None
        if crm_location is not None and crm_location in self.locations:
            return self.locations[crm_location]
        if "default" in self.locations:
            return self.locations["default"]
        raise self._missing("location mapping for CRM location", crm_location or "", "locations")


class TenantConfig(_Strict):
    """One tenant's connection: which platform, its settings, its mapping."""

    tenant_id: str = ""
    platform: str
    enabled: bool = True
    #: Platform settings (realm id, organisation id, base URL...), validated by the
    #: platform's ``spec.settings_model`` through :meth:`platform_settings`.
    settings: dict[str, Any] = Field(default_factory=dict)
    #: How to reach the platform for this tenant (base URL, auth scheme, secrets),
    #: validated by ``sinks.transport.connection.ConnectionConfig``; kept apart from
    #: ``settings`` so platform modules never see credentials.
    connection: dict[str, Any] = Field(default_factory=dict)
    mapping: TenantMapping = Field(default_factory=TenantMapping)

    def model_post_init(self, context: Any, /) -> None:
        self.mapping._tenant_id = self.tenant_id
        self.mapping._platform = self.platform

    def platform_settings(self, model: type[M]) -> M:
        """``settings`` validated by ``model``; a bad value is a ConfigurationError
        naming the field."""
        try:
            return model.model_validate(self.settings)
        except ValidationError as exc:
            raise ConfigurationError(
                f"tenant {self.tenant_id!r} has invalid settings for {self.platform}: "
                + _describe(exc, prefix="settings"),
                platform=self.platform,
            ) from None


class MappingFile(_Strict):
    """The whole file: ``tenants: {tenant_id: TenantConfig}``."""

    tenants: dict[str, TenantConfig]

    @model_validator(mode="before")
    @classmethod
    def _tenant_ids_from_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("tenants"), Mapping):
            tenants = {}
            for tenant_id, body in data["tenants"].items():
                if isinstance(body, Mapping):
                    declared = body.get("tenant_id", tenant_id)
                    if declared != tenant_id:
                        raise ValueError(f"tenant {tenant_id!r} declares tenant_id {declared!r}")
                    body = {**body, "tenant_id": tenant_id}
                tenants[tenant_id] = body
            data = {**data, "tenants": tenants}
        return data

    def tenant(self, tenant_id: str) -> TenantConfig:
        try:
            return self.tenants[tenant_id]
        except KeyError:
            raise ConfigurationError(f"tenant {tenant_id!r} is not configured (tenants)") from None

    def for_platform(self, platform: str) -> dict[str, TenantConfig]:
        """The enabled tenants of one sink deployment."""
        return {k: t for k, t in self.tenants.items() if t.platform == platform and t.enabled}


def _describe(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_mapping(data: Any, *, source: str = "<mapping>") -> MappingFile:
    """Validate already-loaded YAML/JSON data; errors become ConfigurationError."""
    try:
        return MappingFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid mapping file {source}: " + _describe(exc, prefix="")
        ) from None


def load_mapping_file(path: str | Path) -> MappingFile:
    """Read and validate a mapping YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"mapping file {p} is not valid YAML: {exc}") from None
    return parse_mapping(data, source=str(p))
