"""SOAP 1.1 mechanics shared by SOAP platforms (NetSuite SuiteTalk; SAP and Intacct
style XML APIs can reuse the parsing helpers).

Pure functions, no I/O, in the sans-I/O spirit of :mod:`sinks.core.contract`:

* :func:`envelope` wraps body (and header) elements in a SOAP 1.1 envelope;
* :func:`soap_request` turns an envelope into a :class:`PlatformRequest` with the
  ``text/xml`` content type and the quoted ``SOAPAction`` header SOAP 1.1 requires;
* :func:`parse` reads a response safely (no DTDs, no entities, no network);
  :func:`parse_fault` extracts a ``soapenv:Fault`` (faultcode, faultstring and the
  first ``detail`` child, whose local name is the vendor's fault type, e.g.
  NetSuite's ``ExceededConcurrentRequestLimitFault``);
* :class:`SoapHeaderAuth` is the transport-side authenticator for APIs whose
  credential is a *SOAP header* computed per request (NetSuite's signed
  ``tokenPassport``): the platform builds the envelope without secrets and the
  authenticator inserts the header element just before the request is sent, so
  secrets never enter a :class:`PlatformRequest`, a log line or the sync log.

Built on lxml (a dependency of zeep, which the tests use to load WSDLs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import httpx
from lxml import etree

from sinks.core.contract import PlatformRequest
from sinks.transport.auth import Authenticator

__all__ = [
    "SOAP_ENV",
    "XSI",
    "SoapFault",
    "SoapHeaderAuth",
    "child",
    "children",
    "envelope",
    "local",
    "parse",
    "parse_fault",
    "soap_request",
    "sub",
    "text_of",
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False, remove_blank_text=True)


def q(namespace: str, name: str) -> str:
    """Clark notation ``{namespace}name``."""
    return f"{{{namespace}}}{name}"


def local(tag: object) -> str:
    """Local name of an element tag (``{ns}name`` → ``name``)."""
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def sub(parent: etree._Element, namespace: str, name: str, text: object | None = None,
        attrib: Mapping[str, str] | None = None) -> etree._Element:
    """Append ``<ns:name>text</ns:name>`` to ``parent`` and return it."""
    element = etree.SubElement(parent, q(namespace, name), attrib=dict(attrib or {}))
    if text is not None:
        element.text = str(text)
    return element


def envelope(body: Iterable[etree._Element], header: Iterable[etree._Element] = (),
             nsmap: Mapping[str, str] | None = None) -> etree._Element:
    """A SOAP 1.1 ``Envelope`` with ``Header`` (always present, possibly empty, so an
    authenticator can add to it) and ``Body``. ``nsmap`` declares prefixes on the
    envelope so that ``xsi:type`` values such as ``tranSales:Invoice`` resolve."""
    namespaces = {"soapenv": SOAP_ENV, "xsi": XSI, "xsd": XSD, **dict(nsmap or {})}
    root = etree.Element(q(SOAP_ENV, "Envelope"), nsmap=namespaces)
    head = etree.SubElement(root, q(SOAP_ENV, "Header"))
    for element in header:
        head.append(element)
    content = etree.SubElement(root, q(SOAP_ENV, "Body"))
    for element in body:
        content.append(element)
    return root


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def soap_request(path: str, action: str, root: etree._Element, *, purpose: str,
                 idempotency_key: str | None = None,
                 extra_headers: Mapping[str, str] | None = None) -> PlatformRequest:
    """POST ``root`` to ``path`` as SOAP 1.1 (``SOAPAction`` is quoted, per the spec)."""
    return PlatformRequest(
        "POST", path, purpose,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"',
                 **dict(extra_headers or {})},
        content=serialize(root), idempotency_key=idempotency_key,
    )


def parse(body: bytes) -> etree._Element | None:
    """The XML document in ``body``, or ``None`` if it is empty or not XML."""
    if not body or not body.lstrip().startswith(b"<"):
        return None
    try:
        return etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError:
        return None


def body_of(root: etree._Element) -> etree._Element | None:
    """The first element inside ``soapenv:Body``."""
    found = root.find(q(SOAP_ENV, "Body"))
    if found is None or len(found) == 0:
        return None
    return found[0]


def children(element: etree._Element | None, name: str) -> list[etree._Element]:
    """Direct children with local name ``name`` (any namespace)."""
    if element is None:
        return []
    return [c for c in element if isinstance(c.tag, str) and local(c.tag) == name]


def child(element: etree._Element | None, *path: str) -> etree._Element | None:
    """Descend by local names; ``None`` when any step is missing."""
    current = element
    for name in path:
        found = children(current, name)
        if not found:
            return None
        current = found[0]
    return current


def text_of(element: etree._Element | None, *path: str) -> str | None:
    found = child(element, *path) if path else element
    if found is None or found.text is None:
        return None
    return found.text.strip()


@dataclass(frozen=True)
class SoapFault:
    """A ``soapenv:Fault``. ``fault_type`` is the local name of the first ``detail``
    child (the WSDL fault element); ``code``/``message`` are that element's ``code``
    and ``message`` children where the vendor provides them."""

    faultcode: str
    faultstring: str
    fault_type: str | None = None
    code: str | None = None
    message: str | None = None


def parse_fault(body: bytes) -> SoapFault | None:
    root = parse(body)
    if root is None:
        return None
    first = body_of(root)
    if first is None or local(first.tag) != "Fault":
        return None
    detail = child(first, "detail")
    kind = detail[0] if detail is not None and len(detail) else None
    return SoapFault(
        faultcode=text_of(first, "faultcode") or "",
        faultstring=text_of(first, "faultstring") or "",
        fault_type=local(kind.tag) if kind is not None else None,
        code=text_of(kind, "code") if kind is not None else None,
        message=text_of(kind, "message") if kind is not None else None,
    )


def build_fault(faultcode: str, faultstring: str, detail: etree._Element | None = None
                ) -> bytes:
    """A fault envelope; used by simulators that reproduce a vendor's faults."""
    fault = etree.Element(q(SOAP_ENV, "Fault"))
    etree.SubElement(fault, "faultcode").text = faultcode
    etree.SubElement(fault, "faultstring").text = faultstring
    if detail is not None:
        etree.SubElement(fault, "detail").append(detail)
    return serialize(envelope([fault]))


class SoapHeaderAuth(Authenticator):
    """Inserts per-request header elements (made by ``factory``) into the envelope.

    Use it for credentials that live inside the SOAP message rather than in an HTTP
    header and must be fresh per request (a signed nonce + timestamp). The request
    body must be a SOAP envelope built by :func:`envelope`.
    """

    def __init__(self, factory: Callable[[], Sequence[etree._Element]]) -> None:
        self._factory = factory

    def apply(self, request: httpx.Request) -> int:
        root = parse(request.read())
        if root is None:
            raise ValueError("SoapHeaderAuth: request body is not XML")
        header = root.find(q(SOAP_ENV, "Header"))
        if header is None:
            header = etree.Element(q(SOAP_ENV, "Header"))
            root.insert(0, header)
        for element in self._factory():
            header.insert(0, element)
        content = serialize(root)
        request.stream = httpx.ByteStream(content)
        request._content = content
        request.headers["Content-Length"] = str(len(content))
        return 0
