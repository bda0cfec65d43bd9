"""Request bodies: orjson where it writes what httpx's ``json=`` would, httpx otherwise."""

from __future__ import annotations

import enum
import json
from datetime import date
from typing import Any

import httpx
import pytest

from sinks.core.contract import PlatformRequest
from sinks.transport.http import HttpExecutor, make_client


class Kind(enum.StrEnum):
    A = "a"


def httpx_body(value: Any) -> bytes:
    return httpx.Request("POST", "http://x/", json=value).content


def executor() -> HttpExecutor:
    return HttpExecutor(platform="t", tenant_id="t1",
                        client=make_client(base_url="http://api.example/v1"))


@pytest.mark.parametrize("value", [
    {"DocNumber": "INV-1", "Amount": 142.5, "Qty": 1e16, "Note": "Zoë Müller",
     "Lines": [{"n": 1, "ok": True, "none": None}], "Empty": {}},
    [1, 2.25, "x", None],
    {"Kind": Kind.A, "big": 2 ** 70, "tuple": (1, 2)},
    {1: "int key"},
])
def test_the_body_is_byte_for_byte_what_httpx_json_writes(value: Any) -> None:
    built = executor().build(PlatformRequest("POST", "/invoice", "create", json=value))
    assert built.content == httpx_body(value)
    assert built.headers["content-type"] == "application/json"
    assert built.headers["content-length"] == str(len(built.content))
    assert json.loads(built.content) == json.loads(httpx_body(value))


def test_small_exponents_differ_only_in_spelling() -> None:
    value = {"Tiny": 1e-7, "Rate": 0.0825}
    built = executor().build(PlatformRequest("POST", "/invoice", "create", json=value))
    assert built.content == b'{"Tiny":1e-7,"Rate":0.0825}'  # json.dumps: 1e-07
    assert json.loads(built.content) == value


@pytest.mark.parametrize("value", [{"Amount": float("nan")}, [float("inf")],
                                   {"When": date(2025, 3, 14)}])
def test_what_httpx_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        httpx_body(value)
    with pytest.raises((ValueError, TypeError)):
        executor().build(PlatformRequest("POST", "/invoice", "create", json=value))


def test_a_content_type_the_request_names_is_kept() -> None:
    built = executor().build(PlatformRequest(
        "POST", "/invoice", "create", json={"a": 1},
        headers={"content-type": "application/json;charset=UTF-8"}))
    assert built.headers["content-type"] == "application/json;charset=UTF-8"
    assert built.url == httpx.URL("http://api.example/v1/invoice")
