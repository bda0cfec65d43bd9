"""Acumatica's plug-in for the contract suite, and its OpenAPI request validator.

To join the suite, ``harness.HARNESSES`` needs the entry ``ACUMATICA.platform:
ACUMATICA`` (and ``sinks.platforms.registry.BUILTIN_MODULES`` the module
``sinks.platforms.acumatica``, whose class must be decorated with ``@register``);
until then ``tests/sinks/platforms/test_acumatica_corpus.py`` runs the corpus with it.

Acumatica speaks cookie sessions, not bearer tokens: ``extra_headers`` logs in to the
tenant's sandbox company on every ``connect`` (the suite reconnects after moving the
clock) and sends the ``.ASPXAUTH`` cookie; the suite's sandbox gets a licence large
enough for those sessions. Validation: the OpenAPI exported from a live
``Default/24.200.001`` endpoint, made strict (see ``acumatica_support.request_errors``).
"""

from __future__ import annotations

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.sandbox.acumatica import COOKIE, ENDPOINT, AcumaticaSandbox
from sinks.sandbox.core import ManualClock, Sandbox
from tests.sinks.contract.harness import PlatformHarness
from tests.sinks.contract.specs import SpecViolation
from tests.sinks.platforms.acumatica_support import SPEC, load_openapi, request_errors

#: What an Acumatica company set up for ledgerstream holds (see the sandbox's seeds).
MAPPING = {
    "income_accounts": {"labor": "40000", "parts": "40100", "fees": "40200",
                        "discounts": "40900"},
    "tax_codes": {"TX-AUSTIN": "AUSTINTX", "TX-STATE": "TXSTATE"},
    "exempt_tax_code": "EXEMPT",
    "deposit_accounts": {"card": "10250", "default": "10200"},
}

_SANDBOXES: dict[str, AcumaticaSandbox] = {}


def validate(request: PlatformRequest) -> None:
    problems = request_errors(load_openapi(), request)
    if problems:
        raise SpecViolation(request, problems)


def setup_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, AcumaticaSandbox)
    company = f"co-{tenant_id}"
    with sandbox.lock:
        sandbox.company(company).tax_ids.add("TXSTATE")
    _SANDBOXES[company] = sandbox
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "acumatica",
        "settings": {"instance_url": "http://sandbox.local", "company": company},
        "mapping": MAPPING})


def session_headers(tenant: TenantConfig) -> dict[str, str]:
    company = str(tenant.settings["company"])
    return {"Cookie": f"{COOKIE}={_SANDBOXES[company].login(company)}"}


ACUMATICA = PlatformHarness(
    platform="acumatica",
    make_sandbox=lambda: AcumaticaSandbox(clock=ManualClock(), max_sessions=1000),
    setup_tenant=setup_tenant,
    sandbox_tenant=lambda t: str(t.settings["company"]),
    prefix=lambda t: ENDPOINT,
    extra_headers=session_headers,
    validator=(lambda: validate) if SPEC.exists() else None,
    spec_files=(str(SPEC),),
    # Platform gaps (see docs/platforms/acumatica.md), as strict xfails: each raises
    # UnsupportedEventError with the reason below.
    sandbox_gaps={
        "tip_and_fee": "an Acumatica AR payment has no income line for a tip "
                       "(UnsupportedEventError)",
        "refund_payment": "a refund re-opens the invoice; Acumatica refunds apply to credit "
                          "memos or payments only (UnsupportedEventError)",
        "void_after_payment": "a released AR invoice cannot be voided through the contract "
                              "API; reverse it with a credit memo (UnsupportedEventError)",
        "void_unpaid": "the invoice is released when created, and a released AR invoice "
                       "cannot be voided through the contract API (UnsupportedEventError)",
        "edit_after_sending": "released invoices cannot be edited; reverse with a credit "
                              "memo (UnsupportedEventError)",
    },
)
