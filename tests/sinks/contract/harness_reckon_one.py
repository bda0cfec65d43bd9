"""Reckon One's plug-in for the contract suite, and its OpenAPI request validator.

Validation uses the v2 OpenAPI file with openapi-core (``spec_validator_cls=None``:
the strict validator rejects a ``null`` example in the file; and keys beside a
``$ref`` are dropped, as OpenAPI 3.0 says they are ignored),
against ``https://api-v2.reckonone.com/{bookId}/...``. Paths are matched exactly as the
spec spells them (``/creditnotes`` is the list, ``/creditNotes`` the writes). Like the
Xero validator it also refuses body keys the schema does not declare (the spec
allows additional properties, so a misspelt field would pass and be ignored), and it
refuses an idempotency key on any request: Reckon has none, and a key would let the
transport re-send a POST whose response was lost.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.sandbox.core import ManualClock, Sandbox
from sinks.sandbox.reckon_one import SUBSCRIPTION_KEY, ReckonOneSandbox
from tests.sinks.contract.harness import PlatformHarness

SPEC_FILE = Path("/work/shared/specs/reckon-one/openapi.yaml")
SERVER = "https://api-v2.reckonone.com"

#: What a Reckon One book set up for ledgerstream holds (the sandbox's seeds).
MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "4-1000", "parts": "4-1100", "fees": "4-1200",
                        "discounts": "4-1300"},
    "tax_codes": {"TX-AUSTIN": "TX8", "TX-STATE": "TX6"},
    "exempt_tax_code": "FRE",
    "deposit_accounts": {"card": "1-1200", "default": "1-1100"},
    "processor_fee_account": "6-1000",
    "tip_account": "4-1400",
}


def _ignore_ref_siblings(node: Any) -> Any:
    """OpenAPI 3.0 ignores every key beside a ``$ref``; the file puts ``type: object``
    next to refs of string enums (``amountTaxStatus``), which openapi-core would merge
    and enforce. Drop the siblings, as the standard says."""
    if isinstance(node, dict):
        if "$ref" in node:
            return {"$ref": node["$ref"]}
        return {k: _ignore_ref_siblings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_ignore_ref_siblings(v) for v in node]
    return node


class SpecViolation(AssertionError):
    def __init__(self, request: PlatformRequest, problems: list[str]) -> None:
        super().__init__(f"{request.method} {request.path}: " + "; ".join(problems))
        self.problems = problems


class ReckonSpec:
    """The Reckon One v2 OpenAPI file as a validator of requests."""

    def __init__(self, path: Path = SPEC_FILE) -> None:
        self.raw = _ignore_ref_siblings(yaml.safe_load(path.read_text()))
        self.api = OpenAPI.from_dict(self.raw, config=Config(spec_validator_cls=None))

    def validate(self, request: PlatformRequest) -> None:
        problems: list[str] = []
        if request.idempotency_key is not None:
            problems.append("Reckon One has no idempotency key; none may be set")
        operation = self._operation(request)
        if operation is None:
            raise SpecViolation(request, ["no such path and method in the spec"])
        body = json.dumps(request.json).encode() if request.json is not None else None
        mock = MockRequest(SERVER, request.method.lower(), request.path,
                           args=dict(request.query),
                           headers={**request.headers, "Authorization": "Bearer x"},
                           data=body, content_type="application/json")
        try:
            self.api.validate_request(mock)
        except Exception as exc:  # openapi-core raises a family of validation errors
            cause = exc.__cause__
            problems.append(f"{type(exc).__name__}: {exc}" + (f" ({cause})" if cause else ""))
        schema = ((operation.get("requestBody") or {}).get("content") or {}).get(
            "application/json", {}).get("schema")
        if schema is not None and request.json is not None:
            problems += self._undeclared(request.json, schema, "body")
        if problems:
            raise SpecViolation(request, problems)

    def _operation(self, request: PlatformRequest) -> dict[str, Any] | None:
        for template, item in self.raw["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, request.path) and request.method.lower() in item:
                found: dict[str, Any] = item[request.method.lower()]
                return found
        return None

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.raw
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        if "allOf" in schema:
            merged: dict[str, Any] = {"properties": {}}
            for part in schema["allOf"]:
                merged["properties"].update(self._resolve(part).get("properties", {}))
            return merged
        return schema

    def _undeclared(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        schema = self._resolve(schema)
        if isinstance(value, list):
            items = schema.get("items")
            return [p for n, v in enumerate(value) for p in
                    self._undeclared(v, items, f"{path}[{n}]")] if items else []
        if not isinstance(value, dict) or "properties" not in schema:
            return []
        problems = []
        for key, item in value.items():
            if key not in schema["properties"]:
                problems.append(f"{path}.{key}: not a property of the schema")
            else:
                problems += self._undeclared(item, schema["properties"][key], f"{path}.{key}")
        return problems


@cache
def reckon_spec() -> ReckonSpec:
    return ReckonSpec()


def book_id(tenant_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"reckon-one-book:{tenant_id}"))


def _reckon_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, ReckonOneSandbox)
    book = book_id(tenant_id)
    sandbox.book(book)
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "reckon-one",
        # The corpus bills in USD; a real Reckon One book is AUD.
        "settings": {"book_id": book, "book_currency": "USD", "page_size": 20},
        "mapping": MAPPING,
    })


RECKON_ONE = PlatformHarness(
    platform="reckon-one",
    make_sandbox=lambda: ReckonOneSandbox(clock=ManualClock()),
    setup_tenant=_reckon_tenant,
    sandbox_tenant=lambda t: str(t.settings["book_id"]),
    prefix=lambda t: "",
    extra_headers=lambda t: {"Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY},
    validator=(lambda: reckon_spec().validate) if SPEC_FILE.exists() else None,
    spec_files=(str(SPEC_FILE),),
    sandbox_gaps={
        "refund_payment": "Reckon One v2 has no customer-refund endpoint and /payments is "
                          "read-only: the refund is an UnsupportedEventError",
        "credit_note_refunded": "paying a credit note out in cash needs the same missing "
                                "refund endpoint: UnsupportedEventError",
        "multi_currency": "a Reckon One book holds one currency and the v2 API has no "
                          "currency field: a EUR invoice is an UnsupportedEventError",
    },
)
