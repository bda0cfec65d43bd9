"""Helpers for the Acumatica tests: tenant config, a cookie-session transport onto the
sandbox, a runner that keeps the external-id map, and a strict validator of requests
against the OpenAPI file exported from a live ``Default/24.200.001`` endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
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
from sinks.core.errors import AuthExpiredError, TransientError
from sinks.core.mapping import TenantConfig, TenantMapping
from sinks.platforms.acumatica import Acumatica, AcumaticaSettings, login_request
from sinks.sandbox.acumatica import COOKIE, ENDPOINT, AcumaticaSandbox
from sinks.sandbox.core import ManualClock
from sinks.transport.session_rest import session_cookie

COMPANY = "Redback"
INSTANCE = "http://sandbox.local"
SPEC = Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "acumatica" / (
    "REDBACK_TEST_API.json")


def tenant_config(**mapping_overrides: Any) -> TenantConfig:
    mapping: dict[str, Any] = {
        "income_accounts": {"labor": "40000", "parts": "40100", "fees": "40200",
                            "discounts": "40900"},
        "tax_codes": {"TX-AUSTIN": "AUSTINTX"},
        "exempt_tax_code": "EXEMPT",
        "deposit_accounts": {"card": "10250", "default": "10200"},
        **mapping_overrides,
    }
    return TenantConfig(tenant_id="t1", platform="acumatica",
                        settings={"instance_url": INSTANCE, "company": COMPANY},
                        mapping=TenantMapping.model_validate(mapping))


class SessionTransport:
    """What ``HttpExecutor`` + ``SessionAuth`` do, in miniature: log in, send the
    session cookie, log in again after a 401."""

    def __init__(self, client: httpx.Client, settings: AcumaticaSettings) -> None:
        self.client = client
        self.settings = settings
        self.cookie: str | None = None
        self.logins = 0

    def login(self) -> None:
        request = login_request(self.settings, "api-user", "secret")
        response = self.client.post(request.path.replace(INSTANCE, ""), json=request.json)
        assert response.status_code == 204, response.text
        self.cookie = session_cookie(
            PlatformResponse(response.status_code, dict(response.headers), response.content),
            COOKIE)
        self.logins += 1

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        if self.cookie is None:
            self.login()
        path = request.path if request.path.startswith("/entity/") else ENDPOINT + request.path
        response = self.client.request(request.method, path, params=dict(request.query),
                                       headers={**request.headers,
                                                "Cookie": f"{COOKIE}={self.cookie}"},
                                       json=request.json)
        return PlatformResponse(response.status_code, dict(response.headers), response.content)


@dataclass
class Harness:
    sandbox: AcumaticaSandbox
    client: httpx.Client
    tenant: TenantConfig = field(default_factory=tenant_config)
    platform: Acumatica = field(default_factory=Acumatica)
    external_ids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    sent: list[PlatformRequest] = field(default_factory=list)
    transport: SessionTransport | None = None

    def __post_init__(self) -> None:
        self.transport = SessionTransport(
            self.client, self.tenant.platform_settings(AcumaticaSettings))

    def context(self, entry: LedgerEntry) -> SinkContext:
        return SinkContext(tenant_id="t1", event_id=entry.event.event_id, tenant=self.tenant,
                           external_ids=dict(self.external_ids), versions=dict(self.versions))

    def write(self, entry: LedgerEntry, *, retries: int = 3) -> WriteResult:
        assert self.transport is not None
        for attempt in range(retries + 1):
            runner = FlowRunner(self.platform, self.transport)
            try:
                result = runner.write(entry, self.context(entry))
            except AuthExpiredError:
                self.sent.extend(runner.sent)
                self.transport.login()
                continue
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
        raise AssertionError("no attempt succeeded")


@pytest.fixture
def acu() -> AcumaticaSandbox:
    return AcumaticaSandbox(clock=ManualClock())


@pytest.fixture
def acu_client(acu: AcumaticaSandbox) -> Iterator[httpx.Client]:
    with acu.client() as client:
        yield client


@pytest.fixture
def acu_harness(acu: AcumaticaSandbox, acu_client: httpx.Client) -> Harness:
    return Harness(acu, acu_client)


# --------------------------------------------------------------------------- OpenAPI


@cache
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))
    return data


def load_openapi() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"vendor spec folder absent: {SPEC} (shared/specs not checked out)")
    return _load()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            resolved = _resolve(spec, part)
            merged["properties"].update(resolved.get("properties", {}))
            merged["required"] += resolved.get("required", [])
        return merged
    return schema


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "number": (int, float), "integer": int, "boolean": bool,
    "object": dict, "array": list}


def _check(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        problems = [f"{where}: missing required {name!r}"
                    for name in schema.get("required", []) if name not in value]
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name not in properties:
                if schema.get("additionalProperties") not in (None, False) and not properties:
                    continue
                problems.append(f"{where}.{name}: no such field")
                continue
            problems += _check(spec, properties[name], item, f"{where}.{name}")
        return problems
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {value!r}"]
        return [p for i, item in enumerate(value)
                for p in _check(spec, schema.get("items", {}), item, f"{where}[{i}]")]
    expected = _JSON_TYPES.get(str(kind))
    if value is None or expected is None:
        return []
    if isinstance(value, bool) and kind != "boolean":
        return [f"{where}: expected {kind}, got a boolean"]
    if not isinstance(value, expected):
        return [f"{where}: expected {kind}, got {value!r}"]
    return []


def request_errors(spec: dict[str, Any], request: PlatformRequest) -> list[str]:
    """Problems of ``request`` against the exported OpenAPI: unknown path or method,
    undeclared query parameters, body fields that the entity does not have (the export
    leaves objects open, so this is stricter than the file)."""
    path = request.path.split("?")[0]
    if path.startswith("/entity/auth/"):
        return []  # login/logout live outside the endpoint and its export
    if "/status/" in path:
        return []  # the Location of a running action, given by the server itself
    parts = path.split("/")
    best = None
    for template in spec["paths"]:
        segments = template.split("/")
        fits = len(segments) == len(parts) and all(
            s == p or (s.startswith("{") and s.endswith("}"))
            for s, p in zip(segments, parts, strict=True))
        if fits and (best is None or template.count("{") < best.count("{")):
            best = template
    if best is None:
        # GET /Invoice/{type}/{nbr}: the export names the key path "{ids}" as one segment
        ids = "/".join([*parts[:2], "{ids}"])
        if ids in spec["paths"] and len(parts) > 3:
            best = ids
        else:
            return [f"{request.method} {path}: no such path in the export"]
    operation = spec["paths"][best].get(request.method.lower())
    if operation is None:
        return [f"{request.method} {best}: method not in the export"]
    problems = []
    declared = set()
    for param in operation.get("parameters", []):
        if "$ref" in param:
            param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[-1]]
        if param.get("in") == "query":
            declared.add(param["name"])
    problems += [f"{request.method} {best}: undeclared query parameter {name!r}"
                 for name in request.query if name not in declared]
    body = operation.get("requestBody")
    if body is not None:
        schema = body["content"]["application/json"]["schema"]
        problems += _check(spec, schema, request.json, f"{request.method} {best} body")
    elif request.json is not None:
        problems.append(f"{request.method} {best}: sends a body the export does not take")
    return problems
