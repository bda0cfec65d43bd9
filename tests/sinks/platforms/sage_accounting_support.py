"""Helpers for the Sage Accounting tests: tenant config, a sandbox transport, a tiny
runner that keeps the external-id map like the real one, and swagger validation."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.models import LedgerEntry
from sinks.core.contract import (
    FlowRunner,
    PlatformRequest,
    PlatformResponse,
    SinkContext,
    WriteResult,
)
from sinks.core.errors import TransientError
from sinks.core.mapping import TenantConfig, TenantMapping
from sinks.platforms.sage_accounting import SageAccounting
from sinks.sandbox.sage_accounting import BASE, SageSandbox

BUSINESS = "biz-1"
SPEC = Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "sage-accounting" / (
    "swagger-2.0.0.json")

#: Fields Sage documents outside the swagger (guides/concepts/idempotency): the only
#: property we allow beyond the swagger's definitions.
DOCUMENTED_EXTRAS = frozenset({"idempotency_id"})


def tenant_config(**mapping_overrides: Any) -> TenantConfig:
    mapping: dict[str, Any] = {
        "income_accounts": {"labor": "LA-LABOR", "parts": "LA-PARTS", "fees": "LA-FEES",
                            "discounts": "LA-DISCOUNTS"},
        "tax_codes": {"TX-AUSTIN": "US_AUSTIN"},
        "exempt_tax_code": "US_NO_TAX",
        "deposit_accounts": {"card": "BA-UNDEPOSITED", "default": "BA-CHECKING"},
        "processor_fee_account": "LA-CARDFEES",
        "tip_account": "LA-TIPS",
        **mapping_overrides,
    }
    return TenantConfig(tenant_id="t1", platform="sage-accounting",
                        settings={"business_id": BUSINESS},
                        mapping=TenantMapping.model_validate(mapping))


def sandbox_transport(client: httpx.Client) -> Callable[[PlatformRequest], PlatformResponse]:
    def send(request: PlatformRequest) -> PlatformResponse:
        response = client.request(request.method, BASE + request.path,
                                  params=dict(request.query), headers=dict(request.headers),
                                  json=request.json)
        return PlatformResponse(response.status_code, dict(response.headers), response.content)
    return send


@dataclass
class Harness:
    """Writes entries like the production runner: external ids and versions are kept
    between events, a lost response is retried with the same event id."""

    sandbox: SageSandbox
    client: httpx.Client
    tenant: TenantConfig = field(default_factory=tenant_config)
    platform: SageAccounting = field(default_factory=SageAccounting)
    external_ids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    sent: list[PlatformRequest] = field(default_factory=list)

    def context(self, entry: LedgerEntry) -> SinkContext:
        return SinkContext(tenant_id="t1", event_id=entry.event.event_id, tenant=self.tenant,
                           external_ids=dict(self.external_ids), versions=dict(self.versions))

    def write(self, entry: LedgerEntry, *, retries: int = 3) -> WriteResult:
        for attempt in range(retries + 1):
            runner = FlowRunner(self.platform, sandbox_transport(self.client))
            try:
                result = runner.write(entry, self.context(entry))
            except (httpx.RemoteProtocolError, TransientError):
                self.sent.extend(runner.sent)
                if attempt == retries:
                    raise
                continue
            self.sent.extend(runner.sent)
            key = f"{entry.event.aggregate_type.value.lower()}:{entry.event.aggregate_id}"
            self.external_ids[key] = result.external_id
            if result.version:
                self.versions[key] = result.version
            self.external_ids.update(result.related)
            return result
        raise AssertionError("unreachable")


@pytest.fixture
def sage() -> SageSandbox:
    from sinks.sandbox.core import ManualClock

    return SageSandbox(clock=ManualClock())


@pytest.fixture
def sage_client(sage: SageSandbox) -> Iterator[httpx.Client]:
    tokens = sage.issue_tokens(BUSINESS)
    with sage.client(tokens.access_token, headers={"X-Business": BUSINESS}) as client:
        yield client


@pytest.fixture
def harness(sage: SageSandbox, sage_client: httpx.Client) -> Harness:
    return Harness(sage, sage_client)


# --------------------------------------------------------------------------- swagger


def load_swagger() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"vendor spec folder absent: {SPEC} (shared/specs not checked out)")
    data: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))
    return data


def _strict(schema: Any) -> Any:
    """The swagger schema with ``additionalProperties: false`` on every object, so an
    invented or misspelt field is caught (the published file leaves them open)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            props = dict(out["properties"])
            for extra in DOCUMENTED_EXTRAS:
                props.setdefault(extra, {"type": "string", "minLength": 32, "maxLength": 32})
            out["properties"] = props
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def request_errors(swagger: dict[str, Any], request: PlatformRequest) -> list[str]:
    """Problems of ``request`` against the swagger: unknown path/method, missing or
    unknown query parameters, a body that does not validate."""
    import jsonschema

    templates = {path: path.split("/") for path in swagger["paths"]}
    parts = request.path.split("/")
    matched = None
    for path, segments in templates.items():
        fits = len(segments) == len(parts) and all(
            s == p or (s.startswith("{") and s.endswith("}"))
            for s, p in zip(segments, parts, strict=True))
        if fits and (matched is None or path.count("{") < matched.count("{")):
            matched = path
    if matched is None:
        return [f"{request.method} {request.path}: no such path in the swagger"]
    operation = swagger["paths"][matched].get(request.method.lower())
    if operation is None:
        return [f"{request.method} {matched}: method not in the swagger"]
    problems = []
    params = operation.get("parameters", [])
    query_names = {p["name"] for p in params if p.get("in") == "query"}
    for name in request.query:
        if name not in query_names:
            problems.append(f"{request.method} {matched}: unknown query parameter {name!r}")
    body_params = [p for p in params if p.get("in") == "body"]
    if body_params:
        ref = body_params[0]["schema"]["$ref"].rsplit("/", 1)[-1]
        schema = _strict(copy.deepcopy(swagger["definitions"][ref]))
        validator = jsonschema.Draft4Validator(schema)
        for error in validator.iter_errors(request.json):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{request.method} {matched} body {where}: {error.message}")
    elif request.json is not None:
        problems.append(f"{request.method} {matched}: sends a body the swagger does not take")
    return problems
