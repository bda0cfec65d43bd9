"""How the contract suite drives a platform: a sandbox, a tenant, a transport.

A platform joins the suite by adding a :class:`PlatformHarness` to :data:`HARNESSES`
(the suite fails for a registered platform without one): a factory for its sandbox,
the tenant configuration the sandbox understands (seeding whatever the tenant would
already have, such as items), the request path prefix, the spec validator, and the
scenarios its sandbox cannot express yet (``sandbox_gaps``, run as strict xfails so
they are noticed the day the sandbox learns them), and scenarios whose replay test
alone is expected to fail (``replay_gaps``, strict xfails of that test only).

:class:`Books` plays the runner's external-id map: it feeds known ids and versions
into each :class:`SinkContext` and records what each write returns, so flows are
exercised exactly as in production, minus Kafka and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from schemas.models import LedgerEntry
from sinks.core.contract import (
    FlowRunner,
    Platform,
    PlatformRequest,
    PlatformResponse,
    SinkContext,
    WriteResult,
)
from sinks.core.errors import RetryableError, classify_exception
from sinks.core.mapping import TenantConfig
from sinks.core.references import KIND_BY_AGGREGATE
from sinks.sandbox import ManualClock, QuickBooksSandbox, Sandbox, XeroSandbox
from tests.sinks.contract import specs

Validator = Callable[[PlatformRequest], None]


class SandboxTransport:
    """Sends a :class:`PlatformRequest` through a sandbox's in-process client, after
    checking it against the vendor spec (when one is given)."""

    def __init__(self, client: httpx.Client, prefix: str, validate: Validator | None) -> None:
        self.client = client
        self.prefix = prefix
        self.validate = validate
        self.sent: list[PlatformRequest] = []

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        if self.validate is not None:
            self.validate(request)
        self.sent.append(request)
        try:
            raw = self.client.request(
                request.method, self.prefix + request.path, params=dict(request.query),
                headers=dict(request.headers), json=request.json, content=request.content)
        except httpx.HTTPError as exc:
            error = classify_exception(exc)
            if error is None:
                raise
            raise error from exc
        return PlatformResponse(raw.status_code, dict(raw.headers), raw.content)


@dataclass
class PlatformHarness:
    platform: str
    make_sandbox: Callable[[], Sandbox]
    #: Prepare the sandbox for a tenant and return the tenant's configuration.
    setup_tenant: Callable[[Sandbox, str], TenantConfig]
    #: The sandbox's key for the tenant (QBO realm id, Xero tenant id).
    sandbox_tenant: Callable[[TenantConfig], str]
    prefix: Callable[[TenantConfig], str]
    extra_headers: Callable[[TenantConfig], dict[str, str]]
    #: ``None`` when the vendor spec files are absent (the suite then skips).
    validator: Callable[[], Validator] | None
    spec_files: tuple[str, ...]
    sandbox_gaps: dict[str, str] = field(default_factory=dict)
    #: Scenarios whose *replay* test alone is expected to fail (scenario → reason), run
    #: as strict xfails of ``test_replay_creates_no_duplicates`` only: for a replay the
    #: runner's sync log prevents in production but the test forces.
    replay_gaps: dict[str, str] = field(default_factory=dict)
    #: Why the platform cannot reactivate a customer archived behind our back (the
    #: reactivation test then runs as a strict xfail), or ``None`` when it can.
    reactivation_gap: str | None = None


@dataclass
class Books:
    """The external-id map a runner would keep, for one tenant."""

    platform: Platform
    transport: SandboxTransport
    tenant: TenantConfig
    ids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    results: list[WriteResult] = field(default_factory=list)

    def context(self, entry: LedgerEntry, *, remember: bool = True) -> SinkContext:
        return SinkContext(
            tenant_id=self.tenant.tenant_id, event_id=str(entry.event.event_id),
            tenant=self.tenant, external_ids=dict(self.ids) if remember else {},
            versions=dict(self.versions) if remember else {})

    def write(self, entry: LedgerEntry, *, remember: bool = True, retries: int = 0
              ) -> WriteResult:
        """Write one entry as the runner does; a retryable error is retried with the
        same context (same event id, so the same idempotency keys), like a rewind."""
        context = self.context(entry, remember=remember)
        for attempt in range(retries + 1):
            try:
                result = FlowRunner(self.platform, self.transport).write(entry, context)
                break
            except RetryableError:
                if attempt == retries:
                    raise
        self.record(entry, result)
        return result

    def record(self, entry: LedgerEntry, result: WriteResult) -> None:
        own = f"{KIND_BY_AGGREGATE[entry.event.aggregate_type.value]}:{entry.event.aggregate_id}"
        if result.external_id:
            self.ids[own] = result.external_id
            if result.version is not None:
                self.versions[own] = result.version
        for key, value in result.related.items():
            self.ids[key] = value
        self.results.append(result)


def _spec_validator(factory: Callable[[], Any]) -> Callable[[], Validator]:
    return lambda: factory().validate


# --------------------------------------------------------------------------- QuickBooks

QBO_ITEMS = {"labor": "Labor", "parts": "Parts", "fees": "Shop fees"}


def _qbo_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    """A QBO company with the items and tax codes a repair shop's mapping names."""
    assert isinstance(sandbox, QuickBooksSandbox)
    realm = f"9130{abs(hash(tenant_id)) % 10**12:012d}"
    items = {}
    with sandbox.lock:
        sandbox.realm(realm)
        for kind, name in QBO_ITEMS.items():
            record = sandbox.operate(realm, "Item", None, {"Name": name, "Type": "Service"})
            items[kind] = record["Id"]
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "quickbooks-online",
        "settings": {"realm_id": realm},
        "mapping": {
            "income_accounts": {"labor": "79", "parts": "80", "fees": "81", "discounts": "86"},
            "items": items,
            "tax_codes": {"TX-AUSTIN": "TAX", "TX-STATE": "TAX"},
            "exempt_tax_code": "NON",
            "deposit_accounts": {"cash": "35", "card": "36", "default": "35"},
            "processor_fee_account": "62", "tip_account": "63",
            "customer_matching": {"rules": ["external_ref", "email", "display_name"]},
        },
    })


QUICKBOOKS = PlatformHarness(
    platform="quickbooks-online",
    make_sandbox=lambda: QuickBooksSandbox(clock=ManualClock()),
    setup_tenant=_qbo_tenant,
    sandbox_tenant=lambda t: str(t.settings["realm_id"]),
    prefix=lambda t: f"/v3/company/{t.settings['realm_id']}",
    extra_headers=lambda t: {},
    validator=_spec_validator(specs.qbo_spec),
    spec_files=(str(specs.QBO_XSD),),
)


# --------------------------------------------------------------------------- Xero


def _xero_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, XeroSandbox)
    xero_tenant = f"xero-{tenant_id}"
    sandbox.org(xero_tenant)
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "xero",
        "settings": {"xero_tenant_id": xero_tenant},
        "mapping": {
            "income_accounts": {"labor": "200", "parts": "200", "fees": "260",
                                "discounts": "200"},
            "tax_codes": {"TX-AUSTIN": "OUTPUT", "TX-STATE": "OUTPUT"},
            "exempt_tax_code": "EXEMPTOUTPUT",
            "deposit_accounts": {"default": "090"},
            "processor_fee_account": "404",
            "customer_matching": {"rules": ["external_ref", "display_name"]},
            "rounding": {"scope": "per_document", "mode": "half_up"},
        },
    })


XERO = PlatformHarness(
    platform="xero",
    make_sandbox=lambda: XeroSandbox(clock=ManualClock()),
    setup_tenant=_xero_tenant,
    sandbox_tenant=lambda t: str(t.settings["xero_tenant_id"]),
    prefix=lambda t: "/api.xro/2.0",
    extra_headers=lambda t: {},
    validator=_spec_validator(specs.xero_spec),
    spec_files=(str(specs.XERO_YAML),),
)

HARNESSES: dict[str, PlatformHarness] = {h.platform: h for h in (QUICKBOOKS, XERO)}


def connect(harness: PlatformHarness, sandbox: Sandbox, tenant: TenantConfig, *,
            validate: bool = True) -> SandboxTransport:
    """A transport with a freshly issued token (tokens expire when a test moves the
    sandbox clock)."""
    token = sandbox.issue_tokens(harness.sandbox_tenant(tenant)).access_token
    client = sandbox.client(token, headers=harness.extra_headers(tenant))
    validator = harness.validator() if validate and harness.validator else None
    return SandboxTransport(client, harness.prefix(tenant), validator)


def open_books(harness: PlatformHarness, platform: Platform, sandbox: Sandbox,
               tenant_id: str = "corpus", *, validate: bool = True) -> Books:
    tenant = harness.setup_tenant(sandbox, tenant_id)
    return Books(platform, connect(harness, sandbox, tenant, validate=validate), tenant)


def _load_platform_harnesses() -> None:
    """Every ``harness_<platform>.py`` beside this file defines one PlatformHarness; a
    platform joins the suite by adding such a file (imported here, after the names it
    needs from this module exist)."""
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("harness_*.py")):
        module = importlib.import_module(f"tests.sinks.contract.{path.stem}")
        for value in vars(module).values():
            if isinstance(value, PlatformHarness):
                HARNESSES.setdefault(value.platform, value)


_load_platform_harnesses()
