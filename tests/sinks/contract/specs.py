"""Validate the requests a platform builds against the vendor's own API definition.

* QuickBooks Online publishes XSDs, not OpenAPI: the JSON API mirrors those types,
  so :class:`QboSpec` walks a JSON body over the XSD type of its entity — every key
  must be an element or attribute of the type, lists only where the element repeats,
  JSON types matching the XSD primitive, enumerations and facets respected — and
  checks query strings name real entities and fields.
* Xero publishes OpenAPI 3: :class:`XeroSpec` validates each request with openapi-core
  (``Config(spec_validator_cls=None)``: the strict spec validator rejects some of
  Xero's example values, the schemas themselves are fine) against
  ``https://api.xero.com/api.xro/2.0/...``, and additionally refuses keys the schema
  does not declare (the spec allows additional properties, so a misspelt field would
  otherwise pass and be silently ignored by Xero).

Both raise :class:`SpecViolation` listing every problem.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from sinks.core.contract import PlatformRequest

SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs"
if not SPECS.exists():  # the repo may sit elsewhere; the shared folder is fixed
    SPECS = Path("/work/shared/specs")
QBO_XSD = SPECS / "quickbooks-online" / "IntuitRestServiceDef.xsd"
XERO_YAML = SPECS / "xero" / "xero_accounting.yaml"
XERO_SERVER = "https://api.xero.com"
XERO_BASE = "/api.xro/2.0"


class SpecViolation(AssertionError):
    def __init__(self, request: PlatformRequest, problems: list[str]) -> None:
        super().__init__(f"{request.method} {request.path} ({request.purpose}) violates the "
                         f"vendor spec:\n  " + "\n  ".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- QuickBooks

_NUMERIC = {"decimal", "double", "float", "int", "integer", "long", "short",
            "positiveInteger", "nonNegativeInteger"}
_QBO_ENTITY = {"invoice": "Invoice", "payment": "Payment", "customer": "Customer",
               "creditmemo": "CreditMemo", "refundreceipt": "RefundReceipt", "item": "Item"}
_QUERY = re.compile(r"select \* from (\w+)(?: where (.+))?$", re.IGNORECASE)
_FIELD = re.compile(r"(?:^|\band\b)\s*([A-Za-z][\w.]*)\s*(?:=|!=|<=|>=|<|>|\bin\b|\blike\b)",
                    re.IGNORECASE)


def _primitive(xsd_type: Any) -> str:
    base = getattr(xsd_type, "primitive_type", None) or xsd_type
    return str(getattr(base, "local_name", "") or "")


def _lexical(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return str(Decimal(repr(value)))
    return str(value)


class QboSpec:
    """Intuit's v3 XSD as a validator of JSON request bodies and queries."""

    def __init__(self, path: Path = QBO_XSD) -> None:
        import xmlschema

        self.schema = xmlschema.XMLSchema(str(path))

    def _simple(self, value: Any, xsd_type: Any, path: str) -> list[str]:
        kind = _primitive(xsd_type)
        if isinstance(value, dict | list):
            return [f"{path}: expected a {kind} value, got {type(value).__name__}"]
        if kind in _NUMERIC and (isinstance(value, bool) or not isinstance(value, int | float)):
            return [f"{path}: expected a JSON number ({kind}), got {value!r}"]
        if kind == "boolean" and not isinstance(value, bool):
            return [f"{path}: expected true/false, got {value!r}"]
        if kind not in _NUMERIC and kind != "boolean" and not isinstance(value, str):
            return [f"{path}: expected a string ({kind}), got {value!r}"]
        if not xsd_type.is_valid(_lexical(value)):
            enum = getattr(xsd_type, "enumeration", None)
            hint = f" (one of {enum})" if enum else ""
            return [f"{path}: {value!r} is not a valid {xsd_type.local_name or kind}{hint}"]
        return []

    def check(self, value: Any, xsd_type: Any, path: str) -> list[str]:
        if xsd_type.is_simple():
            return self._simple(value, xsd_type, path)
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({xsd_type.local_name}), got {value!r}"]
        attributes = dict(xsd_type.attributes)
        elements = ({e.local_name: e for e in xsd_type.content.iter_elements()}
                    if xsd_type.has_complex_content() else {})
        problems: list[str] = []
        for key, item in value.items():
            where = f"{path}.{key}"
            if key == "value" and xsd_type.has_simple_content():
                problems += self._simple(item, xsd_type.content, where)
            elif key in attributes:
                problems += self._simple(item, attributes[key].type, where)
            elif key in elements:
                element = elements[key]
                repeats = element.max_occurs is None or element.max_occurs > 1
                if isinstance(item, list) and not repeats:
                    problems.append(f"{where}: not a repeating element, got a list")
                elif repeats and not isinstance(item, list):
                    problems.append(f"{where}: repeating element, expected a list")
                else:
                    for n, part in enumerate(item if isinstance(item, list) else [item]):
                        label = f"{where}[{n}]" if isinstance(item, list) else where
                        problems += self.check(part, element.type, label)
            else:
                problems.append(f"{where}: no such element in {xsd_type.local_name}")
        return problems

    def entity_type(self, name: str) -> Any:
        return self.schema.types[name]

    def validate(self, request: PlatformRequest) -> None:
        problems: list[str] = []
        segments = [s for s in request.path.split("/") if s]
        if request.method == "GET" and segments == ["query"]:
            problems += self._query(request.query.get("query", ""))
        elif request.method == "GET" and len(segments) == 2:
            if segments[0] not in _QBO_ENTITY:
                problems.append(f"unknown entity path {request.path}")
        elif request.method == "POST" and len(segments) == 1:
            entity = _QBO_ENTITY.get(segments[0])
            if entity is None:
                problems.append(f"unknown entity path {request.path}")
            else:
                problems += self.check(request.json, self.entity_type(entity), entity)
            operation = request.query.get("operation")
            if operation and operation not in ("update", "delete", "void"):
                problems.append(f"operation={operation} is not an OperationEnum value")
            if "requestid" not in request.query:
                problems.append("write without ?requestid= (not idempotent)")
            elif len(request.query["requestid"]) > 50:
                problems.append("requestid longer than 50 characters")
        else:
            problems.append(f"unexpected {request.method} {request.path}")
        if not request.query.get("minorversion", "0").isdigit() or \
                int(request.query.get("minorversion", "0")) < 75:
            problems.append("minorversion missing or below 75 (retired by Intuit)")
        if problems:
            raise SpecViolation(request, problems)

    def _query(self, text: str) -> list[str]:
        match = _QUERY.match(text.strip())
        if not match:
            return [f"query {text!r} is not 'select * from <Entity> [where …]'"]
        entity, where = match.groups()
        if entity not in self.schema.types:
            return [f"query names unknown entity {entity}"]
        from xmlschema.validators import XsdGroup

        xsd_type = self.schema.types[entity]
        content = getattr(xsd_type, "content", None)
        if not isinstance(content, XsdGroup):
            return [f"query names {entity}, which has no element content"]
        known = {e.local_name for e in content.iter_elements()}
        without_literals = re.sub(r"'(?:[^'\\]|\\.)*'", "''", where or "")
        return [f"query field {name} is not an element of {entity}"
                for name in _FIELD.findall(without_literals)
                if name.split(".")[0] not in known]


# --------------------------------------------------------------------------- Xero


class XeroSpec:
    """Xero's OpenAPI file as a validator of requests."""

    def __init__(self, path: Path = XERO_YAML) -> None:
        import yaml
        from openapi_core import Config, OpenAPI

        self.api = OpenAPI.from_file_path(str(path), config=Config(spec_validator_cls=None))
        self.raw = yaml.safe_load(path.read_text())

    def validate(self, request: PlatformRequest) -> None:
        from openapi_core.testing import MockRequest

        problems: list[str] = []
        body = json.dumps(request.json).encode() if request.json is not None else None
        mock = MockRequest(XERO_SERVER, request.method.lower(), XERO_BASE + request.path,
                           args=dict(request.query), headers=dict(request.headers),
                           data=body, content_type="application/json")
        try:
            self.api.validate_request(mock)
        except Exception as exc:  # openapi-core raises a family of validation errors
            if not self._documented_wrapper(request):
                cause = exc.__cause__
                problems.append(f"{type(exc).__name__}: {exc}" +
                                (f" ({cause})" if cause else ""))
        if request.method in ("PUT", "POST") and "Idempotency-Key" not in request.headers:
            problems.append("write without an Idempotency-Key header")
        schema = self._body_schema(request)
        if schema is not None and request.json is not None and \
                not self._documented_wrapper(request):
            problems += self._undeclared(request.json, schema, "body")
        if problems:
            raise SpecViolation(request, problems)

    #: Operations whose schema and own example disagree: ``PaymentDelete`` declares a
    #: bare ``{"Status": "DELETED"}`` while the operation's example (and the research
    #: notes) wrap it as ``{"Payments": [{"Status": "DELETED"}]}``. Xero accepts both
    #: shapes; the wrapped one is accepted here only if its element matches the schema.
    WRAPPED_EXAMPLES = {("POST", r"/Payments/[^/]+"): ("Payments", "PaymentDelete")}

    def _documented_wrapper(self, request: PlatformRequest) -> bool:
        import jsonschema

        for (method, pattern), (wrapper, schema_name) in self.WRAPPED_EXAMPLES.items():
            if request.method != method or not re.fullmatch(pattern, request.path):
                continue
            items = (request.json or {}).get(wrapper)
            if not isinstance(items, list) or len(items) != 1:
                return False
            root = {"$ref": f"#/components/schemas/{schema_name}",
                    "components": self.raw["components"]}
            return not list(jsonschema.Draft4Validator(root).iter_errors(items[0])) and \
                set(items[0]) <= set(self.raw["components"]["schemas"][schema_name]
                                     ["properties"])
        return False

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.raw
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def _body_schema(self, request: PlatformRequest) -> dict[str, Any] | None:
        for template, item in self.raw["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if re.match(pattern, request.path):
                operation = item.get(request.method.lower()) or {}
                body = self._resolve(operation.get("requestBody") or {})
                content = (body.get("content") or {}).get("application/json") or {}
                return content.get("schema")
        return None

    def _undeclared(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        schema = self._resolve(schema)
        if "allOf" in schema:
            merged: dict[str, Any] = {"properties": {}}
            for part in schema["allOf"]:
                merged["properties"].update(self._resolve(part).get("properties", {}))
            schema = merged
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
def qbo_spec() -> QboSpec:
    return QboSpec()


@cache
def xero_spec() -> XeroSpec:
    return XeroSpec()
