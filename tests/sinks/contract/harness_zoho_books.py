"""Zoho Books' plug-in for the contract suite, and its OpenAPI request validator.

To join the suite, ``harness.HARNESSES`` needs the entry
``ZOHO_BOOKS.platform: ZOHO_BOOKS`` (and ``sinks.platforms.registry.BUILTIN_MODULES``
the module ``sinks.platforms.zoho_books``); until then
``tests/sinks/platforms/test_zoho_books_corpus.py`` runs the corpus with it.

Validation uses Zoho's own per-module OpenAPI files with openapi-core. Two schemas
(payments, apply-credit) declare the array-element fields ``invoice_id`` and
``amount_applied`` as top-level required properties next to the ``invoices`` array
that carries them, contrary to Zoho's documented examples; exactly those two
requirements are relaxed (``ARRAY_SPEC_QUIRK``), and a test asserts the quirk is
still in the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.sandbox.core import ManualClock, Sandbox
from sinks.sandbox.zoho_books import ZohoBooksSandbox
from tests.sinks.contract.harness import PlatformHarness

SPECS = Path("/work/shared/specs/zoho-books")
MODULES = {"contacts": "contacts.yml", "invoices": "invoices.yml",
           "creditnotes": "credit-notes.yml", "customerpayments": "customer-payments.yml"}
ARRAY_SPEC_QUIRK = frozenset({"invoice_id", "amount_applied"})
QUIRKY_SCHEMAS = {
    "customerpayments": ("create-a-payment-request", "update-a-payment-request"),
    "creditnotes": ("credit-to-an-invoice-request",),
}

#: What a Zoho organisation set up for ledgerstream holds (see the sandbox's seeds).
MAPPING: dict[str, Any] = {
    "items": {"labor": "460000000002001", "parts": "460000000002002",
              "fees": "460000000002003", "discounts": "460000000002004"},
    "tax_codes": {"TX-AUSTIN": "460000000001001", "TX-STATE": "460000000001003"},
    "exempt_tax_code": "460000000001900",
    "deposit_accounts": {"card": "460000000003002", "default": "460000000003001"},
}


@dataclass
class _SpecRequest:
    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


class ZohoSpec:
    """Validates a :class:`PlatformRequest` against Zoho's module OpenAPI files."""

    def __init__(self, folder: Path = SPECS) -> None:
        self.folder = folder
        self._specs: dict[str, OpenAPI] = {}

    def _load(self, module: str) -> OpenAPI:
        if module not in self._specs:
            data = yaml.safe_load((self.folder / MODULES[module]).read_text())
            for name in QUIRKY_SCHEMAS.get(module, ()):
                schema = data["components"]["schemas"][name]
                schema["required"] = [r for r in schema["required"]
                                      if r not in ARRAY_SPEC_QUIRK]
                if not schema["required"]:
                    del schema["required"]
            self._specs[module] = OpenAPI.from_dict(data)
        return self._specs[module]

    def validate(self, request: PlatformRequest) -> None:
        module = request.path.strip("/").split("/")[0]
        headers = Headers({**request.headers, "Authorization": "Zoho-oauthtoken x"})
        body = json.dumps(request.json).encode() if request.json is not None else None
        self._load(module).validate_request(_SpecRequest(
            "https://www.zohoapis.com", "/books/v3" + request.path, request.method.lower(),
            RequestParameters(query=dict(request.query), header=headers),
            "application/json" if body is not None else "", body))


def zoho_spec() -> ZohoSpec:
    return ZohoSpec()


def _zoho_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, ZohoBooksSandbox)
    org_id = str(70000 + sum(tenant_id.encode()))
    sandbox.org(org_id)
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "zoho-books",
        "settings": {"organization_id": org_id,
                     "currency_ids": {"USD": "460000000004001", "EUR": "460000000004002"}},
        "mapping": MAPPING,
    })


ZOHO_BOOKS = PlatformHarness(
    platform="zoho-books",
    make_sandbox=lambda: ZohoBooksSandbox(clock=ManualClock()),
    setup_tenant=_zoho_tenant,
    sandbox_tenant=lambda t: str(t.settings["organization_id"]),
    prefix=lambda t: "/books/v3",
    extra_headers=lambda t: {},
    validator=(lambda: zoho_spec().validate) if SPECS.exists() else None,
    spec_files=tuple(str(SPECS / f) for f in MODULES.values()),
)
