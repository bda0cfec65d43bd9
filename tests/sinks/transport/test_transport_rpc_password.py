"""Odoo ≤ 18 takes the API key inside the execute_kw body: the authenticator writes it
there at send time, escaped, and it never appears in the request object."""

from __future__ import annotations

import json
import xmlrpc.client

import httpx
from pydantic import SecretStr

from sinks.transport.rpc import SECRET_PLACEHOLDER, RpcPasswordAuth


def test_secret_is_written_into_a_jsonrpc_body_at_send_time() -> None:
    secret = 'k"ey\\with quotes'
    body = json.dumps({"params": {"args": ["db", 2, SECRET_PLACEHOLDER, "res.partner"]}})
    request = httpx.Request("POST", "http://odoo.test/jsonrpc", content=body.encode())
    RpcPasswordAuth(SecretStr(secret)).apply(request)
    sent = json.loads(request.read())
    assert sent["params"]["args"][2] == secret
    assert request.headers["Content-Length"] == str(len(request.read()))


def test_secret_is_xml_escaped_in_an_xmlrpc_body() -> None:
    secret = "a<b&c"
    content = xmlrpc.client.dumps(("db", 2, SECRET_PLACEHOLDER, "res.partner"),
                                  methodname="execute_kw").encode()
    request = httpx.Request("POST", "http://odoo.test/xmlrpc/2/object", content=content)
    RpcPasswordAuth(SecretStr(secret)).apply(request)
    params, _ = xmlrpc.client.loads(request.read().decode())
    assert params[2] == secret


def test_bodies_without_the_placeholder_are_untouched() -> None:
    request = httpx.Request("POST", "http://odoo.test/json/2/res.partner/search",
                            content=b'{"domain": []}')
    RpcPasswordAuth(SecretStr("s")).apply(request)
    assert request.read() == b'{"domain": []}'
