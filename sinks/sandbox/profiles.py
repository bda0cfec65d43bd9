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

import secrets
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
    #: Prepare the company for the tenant (``tenant_id``, sandbox key, served URL);
    #: returns the ``settings`` and ``mapping`` blocks.
    provision: Callable[[Sandbox, str, str, str], tuple[dict[str, Any], dict[str, Any]]]
    #: Path under the served URL that the platform's request paths are relative to.
    api_prefix: Callable[[str], str]
    #: ``Authorization`` scheme the platform expects for OAuth2 access tokens.
    auth_scheme: str = "Bearer"
    #: The ``connection.auth`` block for platforms without a stored OAuth2 grant
    #: (sandbox, served URL, sandbox key → block); ``None``: OAuth2 with a seeded grant.
    auth: Callable[[Sandbox, str, str], dict[str, Any]] | None = None
    #: Extra ``connection.auth`` keys of the default OAuth2 block (subscription keys).
    oauth2_extra: Mapping[str, Any] = field(default_factory=dict)


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
        settings, mapping = self.profile.provision(self.sandbox, tenant_id, key, self.url)
        oauth2 = self.profile.auth is None
        auth = {
            "kind": "oauth2",
            "token_url": self.url + self.sandbox.token_path,
            "client_id": f"demo-{self.platform}",
            "client_secret": "demo-secret",
            "scheme": self.profile.auth_scheme,
            **self.profile.oauth2_extra,
        } if self.profile.auth is None else self.profile.auth(self.sandbox, self.url, key)
        connection = {"base_url": self.url + self.profile.api_prefix(key), "auth": auth}
        config = TenantConfig.model_validate({
            "tenant_id": tenant_id, "platform": self.platform, "settings": settings,
            "mapping": mapping, "connection": connection,
        })
        tenant = ProvisionedTenant(tenant_id, self.platform, key, config)
        self.tenants[tenant_id] = tenant
        if tokens is not None and oauth2:
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
        close = getattr(self.sandbox, "close", None)
        if callable(close):
            close()


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


def _qbo_provision(sandbox: Sandbox, tenant_id: str, realm: str, url: str
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


def _xero_provision(sandbox: Sandbox, tenant_id: str, org: str, url: str
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


def _zoho_provision(sandbox: Sandbox, tenant_id: str, org_id: str, url: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.zoho_books import ZohoBooksSandbox

    assert isinstance(sandbox, ZohoBooksSandbox)
    with sandbox.lock:
        # The simulated CRM rounds tax once per tax and document; a Zoho organisation
        # that agrees with it to the cent has "tax rounding: transaction level" set,
        # and the tenant settings say so (an item-level org gets rounding adjustments).
        sandbox.org(org_id).tax_rounding = "entity_level"
    settings = {"organization_id": org_id, "tax_rounding": "entity_level",
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


# --------------------------------------------------------------------------- Business Central

BC_AAD = "contoso"
BC_CLIENT = ("ledgerstream", "s3cret")
BC_JOURNALS = {"card": "7e0b1c2d-0000-4000-8000-0000000000a1",
               "default": "7e0b1c2d-0000-4000-8000-0000000000a2"}
BC_ACCOUNTS = {"labor": "40100", "parts": "40200", "fees": "40300", "discounts": "40900"}
BC_TAX_RATES = {"TAXABLE": "0.0825", "STATE": "0.0625", "NONTAXABLE": "0"}


def _bc_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.business_central import BusinessCentralSandbox

    class JobQueueSandbox(BusinessCentralSandbox):
        """A BC tenant whose job queue posts the customer payment journals (API v2.0
        writes payments as unposted journal lines and cannot post them): every
        ``interval_s`` while served, and before the books are read."""

        interval_s = 0.5

        def serve(self, port: int = 0) -> ServerHandle:
            handle = super().serve(port)
            self._queue_stop = threading.Event()
            threading.Thread(target=self._job_queue, name="bc-job-queue", daemon=True).start()
            return handle

        def close(self) -> None:
            stop = getattr(self, "_queue_stop", None)
            if stop is not None:
                stop.set()

        def _job_queue(self) -> None:
            while not self._queue_stop.wait(self.interval_s):
                self.post_all()

        def post_all(self) -> None:
            with self.lock:
                companies = list(self.companies)
            for company in companies:
                self.post_payment_journal(company)

        def ledger_report(self, tenant: str) -> dict[str, Any]:
            self.post_all()
            return super().ledger_report(tenant)

    clients = {BC_CLIENT[0]: BC_CLIENT[1]}
    if relaxed:
        return JobQueueSandbox(clock=SystemClock(), per_five_minutes=1_000_000,
                               max_concurrent=100, clients=clients)
    return JobQueueSandbox(clock=SystemClock(), clients=clients)


def _bc_provision(sandbox: Sandbox, tenant_id: str, company: str, url: str
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.business_central import BusinessCentralSandbox

    assert isinstance(sandbox, BusinessCentralSandbox)
    sandbox.configure(company, tax_rates={k: Decimal(v) for k, v in BC_TAX_RATES.items()},
                      accounts=set(BC_ACCOUNTS.values()), journals=set(BC_JOURNALS.values()))
    mapping = {
        "income_accounts": BC_ACCOUNTS,
        "tax_codes": {"TX-AUSTIN": "TAXABLE", "TX-SVC": "STATE", "TX-STATE": "STATE"},
        "exempt_tax_code": "NONTAXABLE",
        "deposit_accounts": BC_JOURNALS,
    }
    return {"aad_tenant_id": BC_AAD, "company_id": company}, mapping


BUSINESS_CENTRAL = SandboxProfile(
    platform="business-central",
    make_sandbox=_bc_sandbox,
    sandbox_tenant=lambda t: f"5d1e2f3a-0000-4000-8000-{_stable_number(t, 12):012d}",
    provision=_bc_provision,
    api_prefix=lambda company: f"/v2.0/{BC_AAD}/production/api/v2.0/",
    auth=lambda sandbox, url, key: {
        "kind": "client_credentials", "token_url": f"{url}/{BC_AAD}/oauth2/v2.0/token",
        "client_id": BC_CLIENT[0], "client_secret": BC_CLIENT[1],
        "scope": "https://api.businesscentral.dynamics.com/.default"},
)


# --------------------------------------------------------------------------- Sage Intacct

INTACCT_MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "4000", "parts": "4010", "fees": "4020", "discounts": "4090"},
    "tax_codes": {"TX-AUSTIN": "2310", "TX-SVC": "2320", "TX-STATE": "2320"},
    "exempt_tax_code": "EXEMPT",
    "deposit_accounts": {"card": "BOA-CARD", "default": "BOA-OPER"},
}


def _intacct_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.sage_intacct import IntacctSandbox

    return IntacctSandbox(clock=SystemClock(), max_concurrent=100 if relaxed else 2)


def _intacct_provision(sandbox: Sandbox, tenant_id: str, company: str, url: str
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.sage_intacct import IntacctSandbox

    assert isinstance(sandbox, IntacctSandbox)
    with sandbox.lock:
        sandbox.company(company)
    return ({"sender_id": sandbox.sender_id, "company_id": company, "base_url": url},
            dict(INTACCT_MAPPING))


def _intacct_auth(sandbox: Sandbox, url: str, company: str) -> dict[str, Any]:
    from sinks.sandbox.sage_intacct import IntacctSandbox

    assert isinstance(sandbox, IntacctSandbox)
    return {"kind": "session", "username": "ledgerstream-ws", "company": company,
            "password": sandbox.user_password, "sender_id": sandbox.sender_id,
            "sender_password": sandbox.sender_password}


SAGE_INTACCT = SandboxProfile(
    platform="sage-intacct",
    make_sandbox=_intacct_sandbox,
    sandbox_tenant=lambda t: f"ACME-{t}".upper(),
    provision=_intacct_provision,
    api_prefix=lambda company: "",
    auth=_intacct_auth,
)


# --------------------------------------------------------------------------- Reckon One

RECKON_MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "4-1000", "parts": "4-1100", "fees": "4-1200",
                        "discounts": "4-1300"},
    "tax_codes": {"TX-AUSTIN": "TX8", "TX-SVC": "TX6", "TX-STATE": "TX6"},
    "exempt_tax_code": "FRE",
    "deposit_accounts": {"card": "1-1200", "default": "1-1100"},
    "processor_fee_account": "6-1000",
    "tip_account": "4-1400",
}


def _reckon_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.reckon_one import ReckonOneSandbox

    if relaxed:
        return ReckonOneSandbox(clock=SystemClock(), per_minute=100_000)
    return ReckonOneSandbox(clock=SystemClock())


def _reckon_provision(sandbox: Sandbox, tenant_id: str, book: str, url: str
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.reckon_one import ReckonOneSandbox

    assert isinstance(sandbox, ReckonOneSandbox)
    with sandbox.lock:
        sandbox.book(book)
    # The simulator bills in USD; a real Reckon One book is AUD.
    return {"book_id": book, "book_currency": "USD"}, dict(RECKON_MAPPING)


def _reckon_subscription_key() -> str:
    from sinks.sandbox.reckon_one import SUBSCRIPTION_KEY

    return SUBSCRIPTION_KEY


RECKON_ONE = SandboxProfile(
    platform="reckon-one",
    make_sandbox=_reckon_sandbox,
    sandbox_tenant=lambda t: str(uuid.uuid5(uuid.NAMESPACE_URL, f"reckon-one-book:{t}")),
    provision=_reckon_provision,
    api_prefix=lambda book: "",
    oauth2_extra={"subscription_key": _reckon_subscription_key()},
)


# --------------------------------------------------------------------------- Acumatica

ACUMATICA_USER = ("api-user", "secret")
ACUMATICA_MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "40000", "parts": "40100", "fees": "40200",
                        "discounts": "40900"},
    "tax_codes": {"TX-AUSTIN": "AUSTINTX", "TX-SVC": "TXSTATE", "TX-STATE": "TXSTATE"},
    "exempt_tax_code": "EXEMPT",
    "deposit_accounts": {"card": "10250", "default": "10200"},
}


def _acumatica_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.acumatica import AcumaticaSandbox

    # One API-user seat per tenant session (the sink holds one per tenant).
    users = {ACUMATICA_USER[0]: ACUMATICA_USER[1]}
    if relaxed:
        return AcumaticaSandbox(clock=SystemClock(), per_minute=100_000, max_sessions=1000,
                                max_concurrent=100, users=users, require_session_id=True)
    return AcumaticaSandbox(clock=SystemClock(), max_sessions=100, users=users,
                            require_session_id=True)


def _acumatica_provision(sandbox: Sandbox, tenant_id: str, company: str, url: str
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.acumatica import AcumaticaSandbox

    assert isinstance(sandbox, AcumaticaSandbox)
    with sandbox.lock:
        sandbox.company(company).tax_ids.add("TXSTATE")
    return {"instance_url": url, "company": company}, dict(ACUMATICA_MAPPING)


ACUMATICA = SandboxProfile(
    platform="acumatica",
    make_sandbox=_acumatica_sandbox,
    sandbox_tenant=lambda t: f"co-{t}",
    provision=_acumatica_provision,
    api_prefix=lambda company: "/entity/Default/24.200.001",
    auth=lambda sandbox, url, company: {
        "kind": "session", "login_url": url, "company": company,
        "username": ACUMATICA_USER[0], "password": ACUMATICA_USER[1]},
)


# --------------------------------------------------------------------------- Odoo


def _odoo_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.odoo import OdooSandbox

    if relaxed:
        return OdooSandbox(clock=SystemClock(), per_minute=100_000, max_concurrent=100)
    return OdooSandbox(clock=SystemClock())


def _odoo_provision(sandbox: Sandbox, tenant_id: str, database: str, url: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.odoo import BANK_JOURNAL, CASH_JOURNAL, OdooSandbox

    assert isinstance(sandbox, OdooSandbox)
    sandbox.database(database)
    mapping = {
        "income_accounts": {"labor": "400", "parts": "401", "fees": "402", "discounts": "409"},
        "tax_codes": {"TX-AUSTIN": "1", "TX-SVC": "2", "TX-STATE": "2"},
        "exempt_tax_code": "3",
        "deposit_accounts": {"cash": str(CASH_JOURNAL), "default": str(BANK_JOURNAL)},
    }
    return {"base_url": url, "database": database, "currency_ids": {"EUR": 2}}, mapping


def _odoo_auth(sandbox: Sandbox, url: str, database: str) -> dict[str, Any]:
    # An Odoo API key (user preferences → Account Security), sent as a bearer token on
    # the JSON-2 API; the sandbox's keys last 90 days.
    return {"kind": "api_key", "api_key": sandbox.issue_tokens(database).access_token,
            "scheme": "bearer"}


ODOO = SandboxProfile(
    platform="odoo",
    make_sandbox=_odoo_sandbox,
    sandbox_tenant=lambda t: f"shop-{t}",
    provision=_odoo_provision,
    api_prefix=lambda database: "",
    auth=_odoo_auth,
)


# --------------------------------------------------------------------------- NetSuite

NETSUITE_MAPPING: dict[str, Any] = {
    "items": {"labor": "10", "parts": "11", "fees": "12", "discounts": "13"},
    "tax_codes": {"TX-AUSTIN": "5", "TX-SVC": "6", "TX-STATE": "6"},
    "exempt_tax_code": "-7",
    "deposit_accounts": {"card": "1", "cash": "2", "check": "2", "default": "3"},
}


def _netsuite_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.netsuite import NetSuiteSandbox

    return NetSuiteSandbox(clock=SystemClock(), max_concurrent=100 if relaxed else 5)


def _netsuite_provision(sandbox: Sandbox, tenant_id: str, account_id: str, url: str
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.netsuite import NetSuiteSandbox

    assert isinstance(sandbox, NetSuiteSandbox)
    with sandbox.lock:
        sandbox.account(account_id).tax_codes["6"] = Decimal("0.0625")
    settings = {"account_id": account_id.upper(), "currencies": {"USD": "1", "EUR": "4"}}
    return settings, dict(NETSUITE_MAPPING)


def _netsuite_auth(sandbox: Sandbox, url: str, account_id: str) -> dict[str, Any]:
    """Token-based authentication: an integration record's consumer key/secret and an
    access token issued to the integration's role, as NetSuite admins hand them out."""
    from sinks.sandbox.netsuite import NetSuiteSandbox

    assert isinstance(sandbox, NetSuiteSandbox)
    credential = sandbox.register_tba(
        account_id, f"ck-{account_id}", secrets.token_hex(16), f"tok-{account_id}",
        secrets.token_hex(16))
    return {"kind": "oauth1", "account": account_id.upper(),
            "consumer_key": credential.consumer_key,
            "consumer_secret": credential.consumer_secret, "token_id": credential.token,
            "token_secret": credential.token_secret}


NETSUITE = SandboxProfile(
    platform="netsuite",
    make_sandbox=_netsuite_sandbox,
    sandbox_tenant=lambda t: f"{7000000 + sum(t.encode())}_sb1",
    provision=_netsuite_provision,
    api_prefix=lambda account_id: f"/{account_id}",
    auth=_netsuite_auth,
)


# --------------------------------------------------------------------------- Sage Accounting

SAGE_MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "LA-LABOR", "parts": "LA-PARTS", "fees": "LA-FEES",
                        "discounts": "LA-DISCOUNTS"},
    "tax_codes": {"TX-AUSTIN": "US_AUSTIN", "TX-SVC": "US_TX_STATE",
                  "TX-STATE": "US_TX_STATE"},
    "exempt_tax_code": "US_NO_TAX",
    "deposit_accounts": {"card": "BA-UNDEPOSITED", "default": "BA-CHECKING"},
    "processor_fee_account": "LA-CARDFEES",
    "tip_account": "LA-TIPS",
}


def _sage_sandbox(relaxed: bool) -> Sandbox:
    from sinks.sandbox.sage_accounting import SageSandbox

    if relaxed:
        return SageSandbox(clock=SystemClock(), per_minute=100_000)
    return SageSandbox(clock=SystemClock())


def _sage_provision(sandbox: Sandbox, tenant_id: str, business: str, url: str
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    from sinks.sandbox.sage_accounting import SageSandbox

    assert isinstance(sandbox, SageSandbox)
    with sandbox.lock:
        sandbox.business(business)
    return {"business_id": business}, dict(SAGE_MAPPING)


SAGE_ACCOUNTING = SandboxProfile(
    platform="sage-accounting",
    make_sandbox=_sage_sandbox,
    sandbox_tenant=lambda t: f"biz-{t}",
    provision=_sage_provision,
    api_prefix=lambda business: "/v3.1",
)


PROFILES: dict[str, SandboxProfile] = {p.platform: p for p in (
    QUICKBOOKS, XERO, ZOHO_BOOKS, BUSINESS_CENTRAL, SAGE_INTACCT, RECKON_ONE, ACUMATICA,
    ODOO, NETSUITE, SAGE_ACCOUNTING)}
"""Platforms with a demo/e2e profile, by registry name (every registered platform)."""

"""Platforms with a demo/e2e profile, by registry name."""
