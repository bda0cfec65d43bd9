"""Mechanics of XML "gateway" APIs whose credentials travel inside the request body
(Sage Intacct XML API 3.0 and look-alikes): envelope, credential stamping, response
parsing. Pure functions plus one :class:`Authenticator`; no platform mapping here.

Shape of a request (``api.xsd``)::

    <request>
      <control><senderid/><password/><controlid/><uniqueid/><dtdversion/></control>
      <operation transaction="false">
        <authentication><sessionid/></authentication>
        <content><function controlid="..."> ...one operation... </function></content>
      </operation>
    </request>

* :func:`envelope` builds it with *empty* ``control/password`` and
  ``authentication/sessionid`` placeholders, so a :class:`PlatformRequest` never
  carries a secret (nor does a log line or the sync log);
* :func:`stamp` fills the placeholders; :class:`BodySessionAuth` calls it from
  :meth:`~sinks.transport.auth.Authenticator.apply` just before the request leaves,
  and obtains the session with a ``getAPISession`` login (credentials in the body
  too), re-logging in when the platform says the session expired. Expiry is reported
  *inside an HTTP 200*, so the platform's ``classify_error`` must return an
  :class:`~sinks.core.errors.AuthExpiredError` for it; the executor then refreshes and
  re-sends (``HttpExecutor._attempt_with_reauth`` handles any status);
* ``control/uniqueid=true`` makes the platform reject (not replay) a second request
  with the same ``controlid``: :func:`envelope` sets it for writes and clears it for
  reads, and :func:`parse_response` exposes the rejection so flows can look the
  record up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import httpx
from lxml import etree
from pydantic import SecretStr

from sinks.core.contract import PlatformRequest, PlatformResponse, Transport
from sinks.core.errors import ConfigurationError, classify_http
from sinks.transport.auth import Authenticator
from sinks.transport.redact import register_secret

__all__ = [
    "BodySessionAuth",
    "XmlError",
    "XmlResponse",
    "XmlResult",
    "date_element",
    "element",
    "envelope",
    "login_envelope",
    "parse_response",
    "serialize",
    "stamp",
    "xml_request",
]

DTD_VERSION = "3.0"
CONTENT_TYPE = "application/xml"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False, remove_blank_text=True)


def element(tag: str, text: object | None = None, children: Iterable[etree._Element] = (),
            **attrib: str) -> etree._Element:
    """``<tag attr=..>text|children</tag>``; ``None`` text means no text node."""
    node = etree.Element(tag, attrib={k.rstrip("_"): v for k, v in attrib.items()})
    if text is not None:
        node.text = str(text)
    for item in children:
        node.append(item)
    return node


def optional(tag: str, text: object | None) -> list[etree._Element]:
    """``[<tag>text</tag>]`` or ``[]`` when text is ``None`` or empty: helps keep the
    schema's element order while skipping absent values."""
    return [] if text is None or text == "" else [element(tag, text)]


def date_element(tag: str, value: date) -> etree._Element:
    """``<tag><year/><month/><day/></tag>``, the 2.1-style date of legacy functions."""
    return element(tag, children=[element("year", value.year), element("month", value.month),
                                  element("day", value.day)])


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def envelope(function: etree._Element, *, sender_id: str, control_id: str, unique: bool,
             transaction: bool = False) -> etree._Element:
    """A one-function request with empty credential placeholders (see module doc)."""
    control = element("control", children=[
        element("senderid", sender_id), element("password", ""),
        element("controlid", control_id), element("uniqueid", "true" if unique else "false"),
        element("dtdversion", DTD_VERSION)])
    wrapper = element("function", children=[function], controlid=control_id)
    operation = element("operation", children=[
        element("authentication", children=[element("sessionid", "")]),
        element("content", children=[wrapper])],
        transaction="true" if transaction else "false")
    return element("request", children=[control, operation])


def login_envelope(*, sender_id: str, sender_password: str, user_id: str, company_id: str,
                   user_password: str, control_id: str,
                   location_id: str | None = None) -> etree._Element:
    """``getAPISession`` with login credentials: the request that opens a session."""
    root = envelope(element("getAPISession", children=optional("locationid", location_id)),
                    sender_id=sender_id, control_id=control_id, unique=False)
    password = root.find("control/password")
    assert password is not None
    password.text = sender_password
    auth = root.find("operation/authentication")
    assert auth is not None
    auth.clear()
    auth.append(element("login", children=[
        element("userid", user_id), element("companyid", company_id),
        element("password", user_password)]))
    return root


def xml_request(path: str, root: etree._Element, *, purpose: str,
                idempotency_key: str | None = None) -> PlatformRequest:
    """POST ``root`` to the gateway. Every request is a POST, so writes carry their
    ``controlid`` as ``idempotency_key`` (the executor re-sends only keyed POSTs)
    and reads carry theirs too (a read is harmless to repeat)."""
    return PlatformRequest("POST", path, purpose, headers={"Content-Type": CONTENT_TYPE},
                           content=serialize(root), idempotency_key=idempotency_key)


def parse(body: bytes) -> etree._Element | None:
    """The XML document in ``body`` (no DTDs, entities or network), or ``None``."""
    if not body or not body.lstrip().startswith(b"<"):
        return None
    try:
        return etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError:
        return None


def stamp(body: bytes, *, sender_password: str | None, session_id: str | None) -> bytes:
    """``body`` with the sender password and the session id filled in."""
    root = parse(body)
    if root is None or root.tag != "request":
        raise ValueError("not an XML API request")
    if sender_password is not None:
        for node in root.iterfind("control/password"):
            node.text = sender_password
    if session_id is not None:
        for node in root.iterfind("operation/authentication/sessionid"):
            node.text = session_id
    return serialize(root)


def _text(node: etree._Element | None, path: str) -> str | None:
    if node is None:
        return None
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


@dataclass(frozen=True)
class XmlError:
    errorno: str
    description: str = ""
    description2: str = ""
    correction: str = ""

    @property
    def message(self) -> str:
        return " ".join(p for p in (self.description, self.description2, self.correction) if p)


def _errors(node: etree._Element | None) -> tuple[XmlError, ...]:
    if node is None:
        return ()
    return tuple(XmlError(_text(e, "errorno") or "", _text(e, "description") or "",
                          _text(e, "description2") or "", _text(e, "correction") or "")
                 for e in node.iterfind("errormessage/error"))


@dataclass(frozen=True)
class XmlResult:
    """One ``operation/result``: a function's outcome."""

    function: str
    status: str
    control_id: str | None
    key: str | None
    data: etree._Element | None
    errors: tuple[XmlError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def records(self) -> list[dict[str, str]]:
        """``data``'s records as flat ``{FIELD: text}`` dicts (readByQuery answers)."""
        if self.data is None:
            return []
        return [{c.tag: (c.text or "").strip() for c in record if isinstance(c.tag, str)}
                for record in self.data if isinstance(record.tag, str)]


@dataclass(frozen=True)
class XmlResponse:
    """A parsed gateway response. ``control_errors`` are request-level (bad sender,
    re-used controlid); ``auth_errors`` are the operation's authentication failures."""

    control_status: str
    control_errors: tuple[XmlError, ...] = ()
    auth_status: str | None = None
    auth_errors: tuple[XmlError, ...] = ()
    results: tuple[XmlResult, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[XmlError, ...]:
        return (self.control_errors + self.auth_errors
                + tuple(e for r in self.results for e in r.errors))

    @property
    def ok(self) -> bool:
        return (self.control_status == "success" and self.auth_status != "failure"
                and all(r.ok for r in self.results))

    def result(self) -> XmlResult:
        if not self.results:
            raise ValueError("response has no result")
        return self.results[0]


def parse_response(body: bytes) -> XmlResponse | None:
    """The gateway answer in ``body``, or ``None`` if it is not one (HTML error page)."""
    root = parse(body)
    if root is None or root.tag != "response":
        return None
    control = root.find("control")
    operation = root.find("operation")
    auth = operation.find("authentication") if operation is not None else None
    results = []
    for node in (operation.iterfind("result") if operation is not None else ()):
        results.append(XmlResult(
            _text(node, "function") or "", _text(node, "status") or "",
            _text(node, "controlid"), _text(node, "key"), node.find("data"), _errors(node)))
    return XmlResponse(
        control_status=_text(control, "status") or "failure",
        control_errors=_errors(root),
        auth_status=_text(auth, "status"),
        auth_errors=_errors(operation) if operation is not None else (),
        results=tuple(results))


class BodySessionAuth(Authenticator):
    """Session credential written *into the request body* (see module doc).

    ``login`` builds the ``getAPISession`` request (credentials included; it is sent
    unauthenticated through the executor's ``send_once``); ``parse_session`` reads the
    session id from its answer. The sender password is stamped on every request.
    """

    can_refresh = True

    def __init__(self, *, login: Callable[[], PlatformRequest],
                 parse_session: Callable[[PlatformResponse], str],
                 sender_password: SecretStr, platform: str = "") -> None:
        self._login = login
        self._parse = parse_session
        self._sender_password = sender_password
        self._platform = platform
        self._lock = threading.Lock()
        self._session: SecretStr | None = None
        self._generation = 0
        register_secret(sender_password.get_secret_value())

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def needs_refresh(self) -> bool:
        return self._session is None

    def apply(self, request: httpx.Request) -> int:
        with self._lock:
            session, generation = self._session, self._generation
        content = stamp(request.read(),
                        sender_password=self._sender_password.get_secret_value(),
                        session_id=session.get_secret_value() if session else None)
        request.stream = httpx.ByteStream(content)
        request._content = content
        request.headers["Content-Length"] = str(len(content))
        return generation

    def refresh(self, send: Transport, *, stale_generation: int) -> None:
        with self._lock:
            if self._generation != stale_generation:
                return  # another thread logged in meanwhile
            response = send(self._login())
            parsed = parse_response(response.body) if response.ok else None
            if parsed is None or not parsed.ok:
                error = classify_http(response.status, response.headers, response.body,
                                      platform=self._platform)
                if error is not None and error.retryable:
                    raise error
                detail = "; ".join(e.message for e in parsed.errors) if parsed else ""
                raise ConfigurationError(
                    f"XML API login failed (HTTP {response.status}) {detail}".strip(),
                    platform=self._platform)
            session = self._parse(response)
            register_secret(session)
            self._session = SecretStr(session)
            self._generation += 1


def session_of(response: PlatformResponse) -> str:
    """The ``sessionid`` of a ``getAPISession`` answer."""
    parsed = parse_response(response.body)
    data = parsed.result().data if parsed and parsed.results else None
    session = _text(data, "api/sessionid") if data is not None else None
    if not session:
        raise ConfigurationError("getAPISession answer carries no session id")
    return session


def field_values(record: Mapping[str, str], *names: str) -> list[str | None]:
    return [record.get(n) or None for n in names]
