"""Auth schemes in isolation: OAuth 1 signatures (RFC 5849 vectors), token encryption,
in-process refresh races."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import ConfigurationError
from sinks.transport.auth import (
    InMemoryTokenStore,
    OAuth1Auth,
    OAuth2Auth,
    TokenCipher,
    TokenSet,
    generate_token_key,
    oauth1_signature_base_string,
)


def test_rfc5849_signature_base_string() -> None:
    """RFC 5849 §3.4.1.1, including query, form body, repeated and empty parameters."""
    base = oauth1_signature_base_string(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        {
            "realm": "Example",
            "oauth_consumer_key": "9djdj82h48djs9d2",
            "oauth_token": "kkk9d7dh3k39sjv7",
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_timestamp": "137131201",
            "oauth_nonce": "7d8f3e4a",
        },
        b"c2&a3=2+q",
        "application/x-www-form-urlencoded",
    )
    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
        "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key"
        "%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method"
        "%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )


def test_rfc5849_section_1_2_signature() -> None:
    auth = OAuth1Auth(
        consumer_key="dpf43f3p2l4k3l03",
        consumer_secret=SecretStr("kd94hf93k423kf44"),
        token="nnch734d00sl2jdk",
        token_secret=SecretStr("pfkkdhi9sl3r4s00"),
        realm="Photos",
        signature_method="HMAC-SHA1",
        include_version=False,
        clock=lambda: 137131202,
        nonce=lambda: "chapoH",
    )
    header = auth.sign(
        "GET", "http://photos.example.net/photos?file=vacation.jpg&size=original", None, ""
    )
    assert header.startswith('OAuth realm="Photos", ')
    assert 'oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D"' in header


def test_netsuite_tba_header_hmac_sha256() -> None:
    auth = OAuth1Auth(
        consumer_key="ck",
        consumer_secret=SecretStr("cs-secret"),
        token="tk",
        token_secret=SecretStr("ts-secret"),
        realm="123456_SB1",
        clock=lambda: 1700000000,
        nonce=lambda: "abc123nonce",
    )
    request = httpx.Request(
        "POST",
        "https://123456-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/invoice?ext=1",
        json={"entity": {"id": "7"}},
    )
    auth.apply(request)
    header = request.headers["Authorization"]
    params = dict(
        (k, urllib.parse.unquote(v.strip('"')))
        for k, v in (p.split("=", 1) for p in header.removeprefix("OAuth ").split(", "))
    )
    assert params["realm"] == "123456_SB1"
    assert params["oauth_signature_method"] == "HMAC-SHA256"
    assert params["oauth_version"] == "1.0"
    assert params["oauth_timestamp"] == "1700000000" and params["oauth_nonce"] == "abc123nonce"
    # Recompute independently: the JSON body is not part of the signature, the query is.
    base = "&".join(
        (
            "POST",
            urllib.parse.quote(
                "https://123456-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/invoice",
                safe="",
            ),
            urllib.parse.quote(
                "ext=1&oauth_consumer_key=ck&oauth_nonce=abc123nonce&oauth_signature_method=HMAC-SHA256"
                "&oauth_timestamp=1700000000&oauth_token=tk&oauth_version=1.0",
                safe="",
            ),
        )
    )
    expected = base64.b64encode(
        hmac.new(b"cs-secret&ts-secret", base.encode(), hashlib.sha256).digest()
    )
    assert params["oauth_signature"] == expected.decode()


def test_nonce_and_timestamp_fresh_per_request() -> None:
    auth = OAuth1Auth(
        consumer_key="ck",
        consumer_secret=SecretStr("cs-secret"),
        token="tk",
        token_secret=SecretStr("ts-secret"),
    )
    a = auth.sign("GET", "https://x.test/a", None, "")
    b = auth.sign("GET", "https://x.test/a", None, "")
    assert a != b


# ------------------------------------------------------------------ encryption


def token(access: str = "acc-1234567", refresh: str = "ref-1234567") -> TokenSet:
    return TokenSet(
        SecretStr(access),
        SecretStr(refresh),
        datetime(2030, 1, 1, tzinfo=UTC),
        extras={"realmId": "9130"},
    )


def test_cipher_roundtrip_hides_plaintext() -> None:
    cipher = TokenCipher([SecretStr(generate_token_key())])
    blob = cipher.encrypt(token(), "qbo", "acme")
    assert b"acc-1234567" not in blob and b"ref-1234567" not in blob
    back = cipher.decrypt(blob, "qbo", "acme")
    assert back.access_token.get_secret_value() == "acc-1234567"
    assert back.refresh_token is not None and back.refresh_token.get_secret_value() == "ref-1234567"
    assert back.expires_at == datetime(2030, 1, 1, tzinfo=UTC) and back.extras == {
        "realmId": "9130"
    }
    assert cipher.encrypt(token(), "qbo", "acme") != blob  # fresh nonce each time


def test_cipher_binds_row_identity() -> None:
    cipher = TokenCipher([SecretStr(generate_token_key())])
    blob = cipher.encrypt(token(), "qbo", "acme")
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        cipher.decrypt(blob, "qbo", "other-shop")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ConfigurationError):
        cipher.decrypt(tampered, "qbo", "acme")


def test_cipher_key_rotation() -> None:
    old, new = SecretStr(generate_token_key()), SecretStr(generate_token_key())
    blob = TokenCipher([old]).encrypt(token(), "xero", "t")
    rotated = TokenCipher([new, old])
    assert rotated.decrypt(blob, "xero", "t").access_token.get_secret_value() == "acc-1234567"
    with pytest.raises(ConfigurationError):
        TokenCipher([new]).decrypt(blob, "xero", "t")


def test_cipher_rejects_bad_keys() -> None:
    with pytest.raises(ConfigurationError):
        TokenCipher([])
    with pytest.raises(ConfigurationError, match="32 bytes"):
        TokenCipher([SecretStr(base64.urlsafe_b64encode(b"short").decode())])


# ------------------------------------------------------------ in-process race


def test_two_workers_one_refresh_in_memory() -> None:
    """Two authenticators over one store get 401 with the same token at once: one
    token call; the loser adopts the winner's grant."""
    store = InMemoryTokenStore()
    now = datetime.now(UTC)
    store.save(
        "xero",
        "acme",
        TokenSet(SecretStr("a-0000001"), SecretStr("r-0000001"), now + timedelta(hours=1)),
    )
    calls: list[str] = []
    lock = threading.Lock()

    def token_endpoint(request: PlatformRequest) -> PlatformResponse:
        form = dict(urllib.parse.parse_qsl((request.content or b"").decode()))
        time.sleep(0.05)
        with lock:
            calls.append(form["refresh_token"])
            n = len(calls)
        return PlatformResponse.from_json(
            200, {"access_token": f"a-new-{n:07d}", "expires_in": 1800}
        )

    workers = [
        OAuth2Auth(
            platform="xero",
            tenant_id="acme",
            token_url="https://t.test/token",
            client_id="c",
            client_secret=SecretStr("secret-1"),
            store=store,
            client_auth="body",
        )
        for _ in range(2)
    ]
    stale = [w.generation for w in workers]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        workers[i].refresh(token_endpoint, stale_generation=stale[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert calls == ["r-0000001"]
    tokens = {w.current.token.access_token.get_secret_value() for w in workers}
    assert tokens == {"a-new-0000001"}
    # no refresh_token in the response: the old one is kept
    assert workers[0].current.token.refresh_token.get_secret_value() == "r-0000001"  # type: ignore[union-attr]


def test_refresh_body_client_auth_and_missing_refresh_token() -> None:
    store = InMemoryTokenStore()
    store.save("zoho", "t", TokenSet(SecretStr("a-1234567")))
    auth = OAuth2Auth(
        platform="zoho",
        tenant_id="t",
        token_url="https://accounts.test/oauth/v2/token",
        client_id="cid",
        client_secret=SecretStr("csecret-1"),
        store=store,
        client_auth="body",
        scheme="Zoho-oauthtoken",
    )
    request = httpx.Request("GET", "https://books.test/invoices")
    auth.apply(request)
    assert request.headers["Authorization"] == "Zoho-oauthtoken a-1234567"
    with pytest.raises(ConfigurationError, match="no refresh token"):
        auth.refresh(lambda r: PlatformResponse(200), stale_generation=auth.generation)
    req = auth.refresh_request(TokenSet(SecretStr("a"), SecretStr("r-xyz")))
    form = dict(urllib.parse.parse_qsl((req.content or b"").decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "r-xyz",
        "client_id": "cid",
        "client_secret": "csecret-1",
    }
    assert "Authorization" not in req.headers
