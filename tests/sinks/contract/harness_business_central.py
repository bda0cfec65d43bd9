"""Business Central's plug-in for the contract suite, and its OpenAPI request validator.

To join the suite, ``harness.HARNESSES`` needs the entry
``BUSINESS_CENTRAL.platform: BUSINESS_CENTRAL`` (and
``sinks.platforms.registry.BUILTIN_MODULES`` the module
``sinks.platforms.business_central``); until then
``tests/sinks/platforms/test_business_central_corpus.py`` runs the corpus with it.

Validation uses the community v2.0 subset of Microsoft's OpenAPI
(``dynamics-365-business-central/bcoas2.0.yaml``) with openapi-core for the paths it
lists, and its component schemas for bodies on paths it lacks (``customerPayments``,
``$batch`` parts). Because the schemas allow additional properties, keys a schema does
not declare are refused too (a misspelt field would otherwise pass and be ignored by
BC), except ``lineObjectNumber``, a v2.0 line field the subset predates. Where the
subset kept v1.0 types that the v2.0 reference pages contradict (``creditMemoDate``,
``dueDate`` and ``postingDate`` are Edm.Date in v2.0, date-time in the file), the
schema is corrected (:data:`V2_DATE_FIELDS`) and a test asserts the file still says so.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.sandbox.business_central import BusinessCentralSandbox
from sinks.sandbox.core import Sandbox
from tests.sinks.contract.harness import PlatformHarness

SPEC = Path("/work/shared/specs/dynamics-365-business-central/bcoas2.0.yaml")
SPEC_HOST = "https://api.businesscentral.dynamics.com"
SPEC_ROOT = "/v2.0/sandbox/api/v2.0"
AAD = "contoso"
SERVICE_PREFIX = f"/v2.0/{AAD}/production/api/v2.0/"
JOURNALS = {"card": "7e0b1c2d-0000-4000-8000-0000000000a1",
            "default": "7e0b1c2d-0000-4000-8000-0000000000a2"}
V2_DATE_FIELDS = {"salesCreditMemo": ("creditMemoDate", "dueDate"),
                  "customerPayment": ("postingDate",)}
#: Documented v2.0 fields the community subset does not list.
V2_ONLY_FIELDS = frozenset({"lineObjectNumber"})
SPEC_PATHS = re.compile(
    r"^companies\([^)]+\)/(customers|salesInvoices|salesCreditMemos)(\([^)]+\)"
    r"(/Microsoft\.NAV\.post|/salesInvoiceLines|/salesCreditMemoLines)?)?$")
BODY_SCHEMAS = (("/customerPayments", "customerPayment"),
                ("salesInvoiceLines", "salesInvoiceLine"),
                ("salesCreditMemoLines", "salesCreditMemoLine"),
                ("salesCreditMemos", "salesCreditMemo"), ("salesInvoices", "salesInvoice"),
                ("customers", "customer"))
ACCOUNTS = {"labor": "40100", "parts": "40200", "fees": "40300", "discounts": "40900"}
TAX_RATES = {"TAXABLE": "0.0825", "STATE": "0.0625", "NONTAXABLE": "0"}


class SpecViolation(AssertionError):
    pass


@cache
def spec_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    schemas = document["components"]["schemas"]
    bodies = document["components"]["requestBodies"]
    for name, fields in V2_DATE_FIELDS.items():
        targets = [schemas[name]["properties"]]
        if name in bodies:
            targets.append(bodies[name]["content"]["application/json"]["schema"]["properties"])
        for properties in targets:
            for field_name in fields:
                if properties[field_name].get("format") != "date-time":
                    raise AssertionError(f"{name}.{field_name} is no longer date-time in "
                                         "the spec file: drop the correction")
                properties[field_name]["format"] = "date"
    return document


class BusinessCentralSpec:
    """Validates a :class:`PlatformRequest` (path relative to the service root)."""

    def __init__(self) -> None:
        from openapi_core import Config, OpenAPI

        self.document = spec_document()
        self.api = OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))
        self._validators: dict[str, Any] = {}

    def schema_validator(self, name: str) -> Any:
        if name not in self._validators:
            from openapi_schema_validator import OAS30Validator
            from referencing import Registry, Resource
            from referencing.jsonschema import DRAFT4

            registry: Registry[Any] = Registry().with_resource(
                "urn:bc", Resource.from_contents(self.document, default_specification=DRAFT4))
            self._validators[name] = OAS30Validator(
                {"$ref": f"urn:bc#/components/schemas/{name}"}, registry=registry,
                format_checker=OAS30Validator.FORMAT_CHECKER)
        return self._validators[name]

    def _undeclared(self, name: str, body: dict[str, Any]) -> list[str]:
        schema = self.document["components"]["schemas"][name]
        body_schema = self.document["components"]["requestBodies"].get(name, {})
        extra = body_schema.get("content", {}).get("application/json", {}).get(
            "schema", {}).get("properties", {})
        declared = set(schema["properties"]) | set(extra) | V2_ONLY_FIELDS
        problems = [f"{name}.{key} is not declared" for key in body if key not in declared]
        for key, value in body.items():
            items = schema["properties"].get(key, {}).get("items", {})
            ref = items.get("$ref", "")
            if isinstance(value, list) and ref:
                child = ref.rsplit("/", 1)[-1]
                for element in value:
                    problems += self._undeclared(child, element)
        return problems

    def _body(self, path: str, body: Any) -> None:
        name = next((schema for marker, schema in BODY_SCHEMAS if marker in path), None)
        if name is None:
            raise SpecViolation(f"no schema for a body sent to {path}")
        self.schema_validator(name).validate(body)
        problems = self._undeclared(name, body)
        if problems:
            raise SpecViolation("; ".join(problems))

    def validate(self, request: PlatformRequest) -> str:
        """Raise on a violation; return how the request was checked."""
        if request.path == "$batch":
            for part in request.json["requests"]:
                if part.get("body") is not None:
                    self._body(part["url"].split("?")[0], part["body"])
            return "batch"
        if "/customerPayments" in request.path:
            if request.json is not None:
                self._body(request.path, request.json)
            return "schema"
        if SPEC_PATHS.match(request.path):
            from openapi_core.testing import MockRequest

            data = json.dumps(request.json) if request.json is not None else None
            self.api.validate_request(MockRequest(
                SPEC_HOST, request.method.lower(), f"{SPEC_ROOT}/{request.path}",
                args=dict(request.query), headers=dict(request.headers), data=data,
                content_type="application/json"))
            if isinstance(request.json, dict):
                self._body(request.path, request.json)
            return "openapi"
        if request.path.endswith("/generalLedgerEntries") and request.method == "GET":
            fields = set(self.document["components"]["schemas"]["generalLedgerEntry"][
                "properties"])
            named = set(re.findall(r"(\w+)\s+eq\s+'", request.query.get("$filter", "")))
            if not named <= fields:
                raise SpecViolation(f"generalLedgerEntry has no {sorted(named - fields)}")
            return "schema"
        if request.path.endswith("/Microsoft.NAV.cancel"):
            return "absent from the subset (documented v2.0 bound action)"
        raise SpecViolation(f"{request.method} {request.path} is not covered by the spec")


@cache
def business_central_spec() -> BusinessCentralSpec:
    return BusinessCentralSpec()


def _validate(request: PlatformRequest) -> None:
    business_central_spec().validate(request)


def company_id_for(tenant_id: str) -> str:
    return f"5d1e2f3a-0000-4000-8000-{sum(tenant_id.encode()) % 10**12:012d}"


def setup_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    """A BC company with the chart of accounts, tax groups and payment journals the
    repair shop's mapping names."""
    from decimal import Decimal

    assert isinstance(sandbox, BusinessCentralSandbox)
    company = company_id_for(tenant_id)
    sandbox.configure(company, tax_rates={k: Decimal(v) for k, v in TAX_RATES.items()},
                      accounts=set(ACCOUNTS.values()), journals=set(JOURNALS.values()))
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "business-central",
        "settings": {"aad_tenant_id": AAD, "company_id": company},
        "mapping": {
            "income_accounts": ACCOUNTS,
            "tax_codes": {"TX-AUSTIN": "TAXABLE", "TX-STATE": "STATE"},
            "exempt_tax_code": "NONTAXABLE",
            "deposit_accounts": JOURNALS,
        },
    })


BUSINESS_CENTRAL = PlatformHarness(
    platform="business-central",
    make_sandbox=BusinessCentralSandbox,
    setup_tenant=setup_tenant,
    sandbox_tenant=lambda t: str(t.settings["company_id"]),
    prefix=lambda t: SERVICE_PREFIX,
    extra_headers=lambda t: {},
    validator=(lambda: _validate) if SPEC.exists() else None,
    spec_files=(str(SPEC),),
    sandbox_gaps={},
)
