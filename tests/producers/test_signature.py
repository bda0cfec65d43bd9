"""Webhook signature verification (pure)."""

from __future__ import annotations

import pytest

from producers.webhooks.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    StaleTimestampError,
    sign,
    signature,
    verify,
)

BODY = b'{"id":"evt_1","type":"invoice.sent"}'
NOW = 1_741_960_000


def check(headers: dict[str, str], body: bytes = BODY, secrets: tuple[str, ...] = ("s3cret",),
          now: float = NOW) -> str:
    return verify(list(secrets), headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER),
                  body, now=now)


def test_a_correctly_signed_request_verifies_and_returns_its_signature() -> None:
    headers = sign("s3cret", NOW, BODY)
    assert check(headers) == signature("s3cret", NOW, BODY)
    assert headers[SIGNATURE_HEADER].startswith("v1=")


def test_known_vector() -> None:
    # echo -n '1741960000.{"id":"evt_1","type":"invoice.sent"}' | openssl dgst -sha256 -hmac s3cret
    import hashlib
    import hmac
    expected = hmac.new(b"s3cret", b"1741960000." + BODY, hashlib.sha256).hexdigest()
    assert signature("s3cret", NOW, BODY) == expected


@pytest.mark.parametrize("tamper", [
    lambda h, b: (h, b + b" "),                                              # body changed
    lambda h, b: ({**h, TIMESTAMP_HEADER: str(NOW - 1)}, b),                 # timestamp changed
    lambda h, b: ({**h, SIGNATURE_HEADER: "v1=" + "0" * 64}, b),             # forged
    lambda h, b: ({**h, SIGNATURE_HEADER: h[SIGNATURE_HEADER].replace("v1", "v0")}, b),
])
def test_any_tampering_is_refused(tamper: object) -> None:
    headers, body = tamper(sign("s3cret", NOW, BODY), BODY)  # type: ignore[operator]
    with pytest.raises(SignatureError):
        check(headers, body)


def test_wrong_secret_and_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        check(sign("other", NOW, BODY))
    with pytest.raises(SignatureError, match="missing"):
        check({})
    with pytest.raises(SignatureError, match="Unix seconds"):
        check({TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: "v1=00"})


@pytest.mark.parametrize("skew, ok", [(299, True), (-299, True), (301, False), (-301, False)])
def test_timestamps_more_than_five_minutes_away_are_stale(skew: int, ok: bool) -> None:
    headers = sign("s3cret", NOW, BODY)
    if ok:
        assert check(headers, now=NOW + skew)
    else:
        with pytest.raises(StaleTimestampError):
            check(headers, now=NOW + skew)


def test_rotation_several_signatures_and_several_secrets() -> None:
    old = sign("old", NOW, BODY)[SIGNATURE_HEADER]
    new = sign("new", NOW, BODY)[SIGNATURE_HEADER]
    headers = {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"{old}, {new}"}
    assert check(headers, secrets=("new",)) == new.removeprefix("v1=")
    assert check(sign("old", NOW, BODY), secrets=("new", "old"))
