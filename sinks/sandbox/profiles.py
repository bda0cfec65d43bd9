"""How to run each platform's sandbox for a demo or an end-to-end run.

A :class:`SandboxProfile` knows, for one registered platform (its registry name, e.g.
``quickbooks-online``), how to build the sandbox, how to prepare a company /
organisation in it for a CRM tenant (seeding what a real company would already hold,
such as items), and what the tenant's :class:`~sinks.core.mapping.TenantConfig` looks
like — including the ``connection:`` block pointing at the *served* sandbox and the
OAuth2 grant seeded into a :class:`~sinks.transport.auth.TokenStore`, exactly as
``ledgerstream connect`` would leave it for a real platform.

The mappings cover the simulator's tax codes (``TX-AUSTIN``, ``TX-SVC``) and payment
methods. Sandboxes run on the system clock (tokens expire and refresh for real) with
the platform's documented rate limits unless ``relaxed_limits`` is asked for.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from sinks.core.mapping import TenantConfig
from sinks.sandbox.core import Sandbox, ServerHandle, SystemClock
from sinks.sandbox.quickbooks import QuickBooksSandbox
from sinks.sandbox.xero import XeroSandbox
from sinks.transport.auth import TokenSet, TokenStore

__all__ = [
    "PROFILES",
    "ProvisionedTenant",
    "SandboxProfile",
    "ServedSandbox",
    "profile_for",
    "seed_grant",
    "start_sandbox",
]


@dataclass(frozen=True)
class SandboxProfile:
    """One platform's recipe: sandbox factory and tenant provisioning."""

    #: The registry name (``sinks.platforms.registry``), also the sink's ``--platform``.
    platform: str
    #: Build the sandbox; ``relaxed`` lifts the per-tenant rate limits (load runs).
    make_sandbox: Callable[[bool], Sandbox]
    #: The sandbox's own key for a CRM tenant (QBO realm id, Xero organisation id).
    sandbox_tenant: Callable[[str], str]
    #: Prepare the company for the tenant; returns the ``settings`` and ``mapping`` blocks.
    provision: Callable[[Sandbox, str, str], tuple[dict[str, Any], dict[str, Any]]]
    #: Path under the served URL that the platform's request paths are relative to.
    api_prefix: Callable[[str], str]
    #: ``Authorization`` scheme the platform expects for OAuth2 access tokens.
    auth_scheme: str = "Bearer"


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant_id: str
    platform: str
    sandbox_tenant: str
    config: TenantConfig

    def yaml_entry(self) -> dict[str, Any]:
        """The tenant's block of a mapping file (``tenants: {id: <this>}``)."""
        return self.config.model_dump(mode="json", exclude={"tenant_id"}, exclude_none=True)


@dataclass
class ServedSandbox:
    """A sandbox served on loopback, with the tenants provisioned in it."""

    profile: SandboxProfile
    sandbox: Sandbox
    handle: ServerHandle
    tenants: dict[str, ProvisionedTenant] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def platform(self) -> str:
        return self.profile.platform

    def add_tenant(self, tenant_id: str, tokens: TokenStore | None = None) -> ProvisionedTenant:
        """Provision ``tenant_id`` and, when ``tokens`` is given, seed its OAuth2 grant."""
        key = self.profile.sandbox_tenant(tenant_id)
        settings, mapping = self.profile.provision(self.sandbox, tenant_id, key)
        connection = {
            "base_url": self.url + self.profile.api_prefix(key),
            "auth": {
                "kind": "oauth2",
                "token_url": self.url + self.sandbox.token_path,
                "client_id": f"demo-{self.platform}",
                "client_secret": "demo-secret",
                "scheme": self.profile.auth_scheme,
            },
        }
        config = TenantConfig.model_validate({
            "tenant_id": tenant_id, "platform": self.platform, "settings": settings,
            "mapping": mapping, "connection": connection,
        })
        tenant = ProvisionedTenant(tenant_id, self.platform, key, config)
        self.tenants[tenant_id] = tenant
        if tokens is not None:
            seed_grant(self.sandbox, tokens, self.platform, tenant_id, key)
        return tenant

    def ledger_report(self, tenant_id: str) -> dict[str, Any]:
        """The sandbox's ledger for a CRM tenant (neutral terms, see ``build_report``)."""
        key = self.tenants[tenant_id].sandbox_tenant if tenant_id in self.tenants else (
            self.profile.sandbox_tenant(tenant_id))
        with self.sandbox.lock:
            return self.sandbox.ledger_report(key)

    def arm_fault(self, spec: Mapping[str, Any]) -> None:
        """Arm a fault (``Sandbox.apply_fault``); a ``tenant`` given as the CRM tenant id
        is translated to the sandbox's key."""
        body = dict(spec)
        if body.get("tenant") in self.tenants:
            body["tenant"] = self.tenants[str(body["tenant"])].sandbox_tenant
        self.sandbox.apply_fault(body)

    def stop(self) -> None:
        self.handle.stop()


def seed_grant(sandbox: Sandbox, tokens: TokenStore, platform: str, tenant_id: str,
               sandbox_tenant: str) -> TokenSet:
    """Issue a grant for the company and store it as ``ledgerstream connect`` would."""
    pair = sandbox.issue_tokens(sandbox_tenant)
    token = TokenSet(
        access_token=SecretStr(pair.access_token),
        refresh_token=SecretStr(pair.refresh_token),
        expires_at=datetime.now(UTC) + timedelta(seconds=pair.expires_in),
    )
    tokens.save(platform, tenant_id, token)
    return token


def start_sandbox(platform: str, *, relaxed_limits: bool = False, port: int = 0
                  ) -> ServedSandbox:
    """Build and serve the sandbox of ``platform`` on loopback."""
    profile = profile_for(platform)
    sandbox = profile.make_sandbox(relaxed_limits)
    return ServedSandbox(profile, sandbox, sandbox.serve(port))


def profile_for(platform: str) -> SandboxProfile:
    try:
        return PROFILES[platform]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise KeyError(f"no sandbox profile for platform {platform!r} (have: {known})") from None


def _stable_number(text: str, digits: int) -> int:
    return zlib.crc32(text.encode()) % 10**digits


# --------------------------------------------------------------------------- QuickBooks

QBO_ITEMS = {"labor": "Labor", "parts": "Parts", "fees": "Shop fees"}


def _qbo_sandbox(relaxed: bool) -> Sandbox:
    if relaxed:
        return QuickBooksSandbox(clock=SystemClock(), per_minute=100_000, max_concurrent=100)
    return QuickBooksSandbox(clock=SystemClock())


def _qbo_provision(sandbox: Sandbox, tenant_id: str, realm: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    assert isinstance(sandbox, QuickBooksSandbox)
    items: dict[str, str] = {}
    with sandbox.lock:
        sandbox.realm(realm)
        for kind, name in QBO_ITEMS.items():
            record = sandbox.operate(realm, "Item", None, {"Name": name, "Type": "Service"})
            items[kind] = str(record["Id"])
    mapping = {
        "income_accounts": {"labor": "79", "parts": "80", "fees": "81", "discounts": "86"},
        "items": items,
        "tax_codes": {"TX-AUSTIN": "TAX", "TX-SVC": "TAX", "TX-STATE": "TAX"},
        "exempt_tax_code": "NON",
        "deposit_accounts": {"cash": "35", "card": "36", "check": "35", "default": "35"},
        "processor_fee_account": "62", "tip_account": "63",
        "customer_matching": {"rules": ["external_ref", "email", "display_name"]},
    }
    return {"realm_id": realm}, mapping


QUICKBOOKS = SandboxProfile(
    platform="quickbooks-online",
    make_sandbox=_qbo_sandbox,
    sandbox_tenant=lambda tenant_id: f"9130{_stable_number(tenant_id, 12):012d}",
    provision=_qbo_provision,
    api_prefix=lambda realm: f"/v3/company/{realm}",
)


# --------------------------------------------------------------------------- Xero


def _xero_sandbox(relaxed: bool) -> Sandbox:
    if relaxed:
        return XeroSandbox(clock=SystemClock(), per_minute=100_000, per_day=10_000_000,
                           max_concurrent=100)
    return XeroSandbox(clock=SystemClock())


def _xero_provision(sandbox: Sandbox, tenant_id: str, org: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    assert isinstance(sandbox, XeroSandbox)
    with sandbox.lock:
        sandbox.org(org)
    mapping = {
        "income_accounts": {"labor": "200", "parts": "200", "fees": "260", "discounts": "200"},
        "tax_codes": {"TX-AUSTIN": "OUTPUT", "TX-SVC": "OUTPUT", "TX-STATE": "OUTPUT"},
        "exempt_tax_code": "EXEMPTOUTPUT",
        "deposit_accounts": {"default": "090"},
        "processor_fee_account": "404",
        "customer_matching": {"rules": ["external_ref", "display_name"]},
        "rounding": {"scope": "per_document", "mode": "half_up"},
    }
    return {"xero_tenant_id": org}, mapping


XERO = SandboxProfile(
    platform="xero",
    make_sandbox=_xero_sandbox,
    sandbox_tenant=lambda tenant_id: f"xero-{tenant_id}",
    provision=_xero_provision,
    api_prefix=lambda org: "/api.xro/2.0",
)


# --------------------------------------------------------------------------- Zoho Books

ZOHO_MAPPING: dict[str, Any] = {
    "items": {"labor": "460000000002001", "parts": "460000000002002",
              "fees": "460000000002003", "discounts": "460000000002004"},
    "tax_codes": {"TX-AUSTIN": "460000000001001", "TX-SVC": "460000000001003",
                  "TX-STATE": "460000000001003"},
    "exempt_tax_code": "460000000001900",
    "deposit_accounts": {"card": "460000000003002", "default": "460000000003001"},
}


def _zoho_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.zoho_books import ZohoBooksSandbox

    if relaxed:
        return ZohoBooksSandbox(clock=SystemClock(), per_minute=100_000, per_day=10_000_000,
                                max_concurrent=100)
    return ZohoBooksSandbox(clock=SystemClock())


def _zoho_provision(sandbox: Sandbox, tenant_id: str, org_id: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.zoho_books import ZohoBooksSandbox

    assert isinstance(sandbox, ZohoBooksSandbox)
    with sandbox.lock:
        sandbox.org(org_id)
    settings = {"organization_id": org_id,
                "currency_ids": {"USD": "460000000004001", "EUR": "460000000004002"}}
    return settings, dict(ZOHO_MAPPING)


ZOHO_BOOKS = SandboxProfile(
    platform="zoho-books",
    make_sandbox=_zoho_sandbox,
    sandbox_tenant=lambda tenant_id: str(70000 + sum(tenant_id.encode())),
    provision=_zoho_provision,
    api_prefix=lambda org: "/books/v3",
    auth_scheme="Zoho-oauthtoken",
)


PROFILES: dict[str, SandboxProfile] = {p.platform: p for p in (QUICKBOOKS, XERO, ZOHO_BOOKS)}
"""Platforms with a demo/e2e profile, by registry name."""
