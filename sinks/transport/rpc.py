"""Model/method RPC envelopes: Odoo's JSON-2 API, JSON-RPC and XML-RPC ``execute_kw``.

Platforms whose API is "call method M of model X with these arguments" (Odoo, and
Odoo-derived or OpenERP-style servers) share the same mechanics, kept here so that
platform modules read like mapping tables:

* :func:`rpc_call` builds one :class:`~sinks.core.contract.PlatformRequest` for a call,
  in one of three envelopes (:class:`RpcProtocol`):

  - ``json-2`` (Odoo 19+): ``POST /json/2/<model>/<method>``, body
    ``{"ids": [...], "context": {...}, <named params>}``, bearer API key, optional
    ``X-Odoo-Database`` header; errors are HTTP statuses with a JSON body
    ``{"name": "odoo.exceptions.UserError", "message": ..., "arguments": ..., ...}``;
  - ``jsonrpc`` (Odoo ≤ 18; deprecated in 19): ``POST /jsonrpc`` with
    ``{"jsonrpc": "2.0", "method": "call", "params": {"service": "object",
    "method": "execute_kw", "args": [db, uid, secret, model, method, args, kwargs]}}``;
    errors arrive *inside a 200* as ``{"error": {"data": {"name", "message"}}}``;
  - ``xmlrpc`` (Odoo ≤ 18): ``POST /xmlrpc/2/object``, the same ``execute_kw``
    marshalled as XML-RPC; errors are ``<fault>`` responses (also HTTP 200).

  Every call is a POST. Read-only methods (:data:`READ_METHODS`) carry a deterministic
  ``idempotency_key`` so the transport may re-send them after a transient failure;
  writes carry none, so a write whose response was lost goes back to the runner,
  which re-runs the whole flow (and the flow looks the record up before creating).

* :func:`rpc_result` / :func:`rpc_fault` read a response in any of the envelopes into
  the call's result or a neutral :class:`RpcFault` (exception class name, message,
  HTTP status) for the platform's error classifier.

* :func:`fill_secret` replaces the :data:`SECRET_PLACEHOLDER` of an ``execute_kw``
  envelope with the tenant's password/API key at send time, so platform modules
  never see credentials (JSON-2 authenticates with a header instead).

* x2many command helpers (:func:`cmd_create`, :func:`cmd_clear`, :func:`cmd_set`) —
  the ORM's ``(0, 0, vals)`` / ``(5, 0, 0)`` / ``(6, 0, ids)`` triples, as lists so
  they survive JSON.

Nothing here does I/O.
"""

from __future__ import annotations

import enum
import json
import uuid
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import httpx
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.transport.auth import Authenticator
from sinks.transport.redact import register_secret

__all__ = [
    "READ_METHODS",
    "SECRET_PLACEHOLDER",
    "RpcFault",
    "RpcProtocol",
    "RpcTarget",
    "cmd_clear",
    "cmd_create",
    "cmd_set",
    "fill_secret",
    "rpc_call",
    "rpc_fault",
    "rpc_result",
]

#: Stands for the password / API key inside an ``execute_kw`` envelope until sent.
SECRET_PLACEHOLDER = "__ledgerstream_rpc_secret__"

#: Methods that change nothing: safe to re-send, so they carry an idempotency key.
READ_METHODS = frozenset({"search", "search_read", "search_count", "read", "fields_get",
                          "name_search", "read_group"})

_KEY_NAMESPACE = uuid.UUID("0d7c4b8e-3f21-5a9c-8e6d-1b2a3c4d5e6f")


class RpcProtocol(enum.StrEnum):
    JSON2 = "json-2"
    JSONRPC = "jsonrpc"
    XMLRPC = "xmlrpc"


@dataclass(frozen=True)
class RpcTarget:
    """Where and as whom calls go: the envelope, the database, and (for ``execute_kw``)
    the numeric user id the secret belongs to."""

    protocol: RpcProtocol = RpcProtocol.JSON2
    database: str | None = None
    uid: int | None = None

    def __post_init__(self) -> None:
        if self.protocol is not RpcProtocol.JSON2 and (self.database is None or self.uid is None):
            raise ValueError(f"{self.protocol} execute_kw needs a database and a user id")


def cmd_create(vals: Mapping[str, Any]) -> list[Any]:
    """``(0, 0, vals)``: create a related record."""
    return [0, 0, dict(vals)]


def cmd_clear() -> list[Any]:
    """``(5, 0, 0)``: unlink every related record."""
    return [5, 0, 0]


def cmd_set(ids: Sequence[int]) -> list[Any]:
    """``(6, 0, ids)``: replace the relation with exactly ``ids``."""
    return [6, 0, list(ids)]


def _read_key(target: RpcTarget, model: str, method: str, body: Any) -> str:
    text = json.dumps([target.protocol.value, target.database, model, method, body],
                      sort_keys=True, default=str)
    return str(uuid.uuid5(_KEY_NAMESPACE, text))


def rpc_call(target: RpcTarget, model: str, method: str, *, purpose: str,
             ids: Sequence[int] | None = None, params: Mapping[str, Any] | None = None,
             context: Mapping[str, Any] | None = None) -> PlatformRequest:
    """One call of ``model.method`` on ``ids`` (a record method) or on the model.

    ``params`` are the method's named parameters (``vals_list`` for ``create``,
    ``vals`` for ``write``, ``domain``/``fields`` for ``search_read``...): JSON-2 only
    accepts named parameters, and ``execute_kw`` passes them as its kwargs, so one
    spelling serves all three envelopes.
    """
    named = dict(params or {})
    if context:
        named["context"] = dict(context)
    repeatable = method in READ_METHODS
    if target.protocol is RpcProtocol.JSON2:
        body: dict[str, Any] = {}
        if ids is not None:
            body["ids"] = list(ids)
        body.update(named)
        headers = {"Content-Type": "application/json"}
        if target.database:
            headers["X-Odoo-Database"] = target.database
        return PlatformRequest(
            "POST", f"/json/2/{model}/{method}", purpose, headers=headers, json=body,
            idempotency_key=_read_key(target, model, method, body) if repeatable else None)
    args: list[Any] = [list(ids)] if ids is not None else []
    call = [target.database, target.uid, SECRET_PLACEHOLDER, model, method, args, named]
    key = _read_key(target, model, method, [args, named]) if repeatable else None
    if target.protocol is RpcProtocol.JSONRPC:
        envelope = {"jsonrpc": "2.0", "method": "call", "id": 1,
                    "params": {"service": "object", "method": "execute_kw", "args": call}}
        return PlatformRequest("POST", "/jsonrpc", purpose,
                               headers={"Content-Type": "application/json"}, json=envelope,
                               idempotency_key=key)
    content = xmlrpc.client.dumps(tuple(call), methodname="execute_kw", allow_none=True)
    return PlatformRequest("POST", "/xmlrpc/2/object", purpose,
                           headers={"Content-Type": "text/xml"},
                           content=content.encode("utf-8"), idempotency_key=key)


def fill_secret(request: PlatformRequest, secret: str) -> PlatformRequest:
    """``request`` with the ``execute_kw`` secret filled in (unchanged for JSON-2)."""
    if request.json is not None and request.path == "/jsonrpc":
        envelope = json.loads(json.dumps(request.json))
        args = envelope["params"]["args"]
        if args[2] == SECRET_PLACEHOLDER:
            args[2] = secret
        return PlatformRequest(request.method, request.path, request.purpose,
                               query=request.query, headers=request.headers, json=envelope,
                               idempotency_key=request.idempotency_key,
                               accept_statuses=request.accept_statuses)
    if request.content is not None and request.path.startswith("/xmlrpc/"):
        params, method = xmlrpc.client.loads(request.content.decode("utf-8"))
        filled = tuple(secret if p == SECRET_PLACEHOLDER else p for p in params)
        content = xmlrpc.client.dumps(filled, methodname=method, allow_none=True)
        return PlatformRequest(request.method, request.path, request.purpose,
                               query=request.query, headers=request.headers,
                               content=content.encode("utf-8"),
                               idempotency_key=request.idempotency_key,
                               accept_statuses=request.accept_statuses)
    return request


@dataclass(frozen=True)
class RpcFault:
    """A server-side exception in neutral terms: its class name (``odoo.exceptions.
    UserError``), its message, and the HTTP status it came with."""

    name: str
    message: str
    status: int

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _xml_fault(response: PlatformResponse) -> RpcFault | None:
    try:
        xmlrpc.client.loads(response.body.decode("utf-8"))
    except xmlrpc.client.Fault as fault:
        text = str(fault.faultString)
        name = text.strip().splitlines()[-1].split(":", 1)[0] if text.strip() else ""
        return RpcFault(name or str(fault.faultCode), text, response.status)
    except Exception:  # not XML-RPC at all: let HTTP classification speak
        return None
    return None


def rpc_fault(response: PlatformResponse) -> RpcFault | None:
    """The server exception a response carries, or ``None`` (success, or an error
    without an RPC body, which generic HTTP classification handles)."""
    content_type = response.headers.get("content-type", "")
    if "xml" in content_type:
        return _xml_fault(response)
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if "error" in data and isinstance(data["error"], dict):  # JSON-RPC, inside a 200
        error = data["error"]
        data_field = error.get("data")
        detail: dict[str, Any] = data_field if isinstance(data_field, dict) else {}
        return RpcFault(str(detail.get("name") or error.get("code") or "error"),
                        str(detail.get("message") or error.get("message") or ""),
                        response.status)
    if response.status >= 400 and "name" in data:  # JSON-2
        return RpcFault(str(data["name"]), str(data.get("message") or ""), response.status)
    return None


def rpc_result(response: PlatformResponse) -> Any:
    """The call's return value, whichever envelope carried it. Call after the error
    classification: a fault here raises ``ValueError``."""
    if "xml" in response.headers.get("content-type", ""):
        params, _ = xmlrpc.client.loads(response.body.decode("utf-8"))
        return params[0] if params else None
    data = response.json()
    if isinstance(data, dict) and data.get("jsonrpc") == "2.0":
        if "error" in data:
            raise ValueError(f"JSON-RPC error in a result: {data['error']}")
        return data.get("result")
    return data


class RpcPasswordAuth(Authenticator):
    """The user's API key/password inside an ``execute_kw`` body (Odoo ≤ 18).

    Flows build JSON-RPC/XML-RPC bodies with :data:`SECRET_PLACEHOLDER` in the password
    slot, so no secret sits in a request object, a log line or the sync log; this
    authenticator writes the real value into the bytes just before they are sent.
    """

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret
        register_secret(secret.get_secret_value())

    def apply(self, request: httpx.Request) -> int:
        body = request.read()
        placeholder = SECRET_PLACEHOLDER.encode()
        if placeholder in body:
            value = self._secret.get_secret_value()
            # JSON and XML both need the value escaped like any string of theirs.
            escaped = (json.dumps(value)[1:-1] if b"/jsonrpc" in request.url.raw_path
                       else xml_escape(value))
            body = body.replace(placeholder, escaped.encode())
            request.stream = httpx.ByteStream(body)
            request._content = body
            request.headers["Content-Length"] = str(len(body))
        return 0
