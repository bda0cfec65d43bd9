"""A stateful Sage Intacct XML API 3.0 simulator (one gateway endpoint).

Reproduces what the sink must survive: credentials and session *inside the body*;
expired/invalid sessions reported in HTTP 200 (``XL03000006``); ``getAPISession``
login; ``control/uniqueid=true`` rejecting a re-used ``controlid`` (``XL03000009``,
no record key) within :attr:`CONTROL_ID_WINDOW`; duplicate document numbers and
customer ids (``BL01001973``); closed periods (``BL34000061``); inactive customers
(``BL03000130``); reversing a paid invoice (``BL03002147``); the concurrency throttle
(HTTP 429 + ``XL03000130``); write-then-drop-response and 5xx faults. Error codes are
the sink's assumptions (see ``sinks.platforms.sage_intacct.errors``). Intacct's XML
API has no optimistic-concurrency token, so there is no stale-version conflict to
simulate. The controlid is remembered only for requests whose function succeeded
(⚠ an assumption about the real service).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from lxml import etree
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sinks.sandbox.core import (
    Application,
    Clock,
    ConnectionDropped,
    CustomerSummary,
    DocumentSummary,
    PaymentSummary,
    Sandbox,
    Throttle,
    TokenPair,
    Window,
    build_report,
    money,
)
from sinks.transport.xmlapi import element, parse, serialize, stamp

__all__ = ["IntacctSandbox", "SessionStamp"]

GATEWAY = "/ia/xml/xmlgw.phtml"
WRITES = re.compile(r"^(create|update|reverse|delete|apply)_")


class SessionStamp(httpx.Auth):
    """What the production ``BodySessionAuth`` does, for in-process clients: writes
    the sender password and the session id into each request body."""

    def __init__(self, sender_password: str, session_id: str | None) -> None:
        self.sender_password = sender_password
        self.session_id = session_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = request.read()
        if body.lstrip().startswith(b"<"):
            content = stamp(body, sender_password=self.sender_password,
                            session_id=self.session_id)
            request.stream = httpx.ByteStream(content)
            request._content = content
            request.headers["Content-Length"] = str(len(content))
        yield request


class IntacctFault(Exception):
    def __init__(self, errorno: str, description2: str) -> None:
        super().__init__(description2)
        self.errorno = errorno
        self.description2 = description2


@dataclass
class Company:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    adjustments: dict[str, dict[str, Any]] = field(default_factory=dict)
    locked_through: date | None = None
    seq: int = 0


def _t(node: etree._Element | None, path: str, default: str = "") -> str:
    if node is None:
        return default
    found = node.find(path)
    return (found.text or "").strip() if found is not None and found.text else default


def _date(node: etree._Element | None) -> date | None:
    if node is None:
        return None
    return date(int(_t(node, "year")), int(_t(node, "month")), int(_t(node, "day")))


def _error_xml(errorno: str, description2: str) -> etree._Element:
    return element("errormessage", children=[element("error", children=[
        element("errorno", errorno), element("description", ""),
        element("description2", description2), element("correction", "")])])


class IntacctSandbox(Sandbox):
    platform = "sage-intacct"
    token_path = "/__sandbox/intacct/token"
    #: How long a controlid stays unique (⚠ Intacct does not document it).
    CONTROL_ID_WINDOW = 86400
    SESSION_LIFETIME = 3600

    def __init__(self, *, clock: Clock | None = None, sender_id: str = "ledgerstream",
                 sender_password: str = "sender-secret", user_password: str = "user-secret",
                 max_concurrent: int = 2) -> None:
        self.sender_id = sender_id
        self.sender_password = sender_password
        self.user_password = user_password
        self.companies: dict[str, Company] = {}
        self.sessions: dict[str, str] = {}
        super().__init__(clock=clock, windows=[Window("minute", 60, 100)],
                         max_concurrent=max_concurrent, access_lifetime=self.SESSION_LIFETIME,
                         idempotency_window=self.CONTROL_ID_WINDOW)

    # ---- admin

    def company(self, company_id: str) -> Company:
        return self.companies.setdefault(company_id, Company())

    def issue_tokens(self, *tenants: str) -> TokenPair:
        pair = super().issue_tokens(*tenants)
        if len(tenants) == 1:
            self.sessions[pair.access_token] = tenants[0]
            self.company(tenants[0])
        return pair

    def client(self, access_token: str | None = None, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("auth", SessionStamp(self.sender_password, access_token))
        return super().client(None, **kwargs)

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.company(tenant).locked_through = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        self.company(tenant).customers[customer_id]["status"] = "inactive"

    # ---- error shapes

    def _answer(self, control_id: str, results: list[etree._Element],
                auth_failure: tuple[str, str] | None = None, status: int = 200,
                control_failure: tuple[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        control = element("control", children=[
            element("status", "failure" if control_failure else "success"),
            element("senderid", self.sender_id), element("controlid", control_id),
            element("uniqueid", "false"), element("dtdversion", "3.0")])
        root = element("response", children=[control])
        if control_failure:
            root.append(_error_xml(*control_failure))
        else:
            auth = element("authentication", children=[
                element("status", "failure" if auth_failure else "success")])
            operation = element("operation", children=[auth])
            if auth_failure:
                operation.append(_error_xml(*auth_failure))
            for result in results:
                operation.append(result)
            root.append(operation)
        return Response(serialize(root), status_code=status, headers=headers,
                        media_type="application/xml")

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self._answer("", [], auth_failure=(
                "XL03000002", "Sender is not authorized for this company"))
        return self._answer("", [], auth_failure=(
            "XL03000006", "Invalid session" if outcome == "invalid" else
            "Session expired, please log in again"))

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        return self._answer("", [], status=429, control_failure=(
            "XL03000130", "Too many concurrent requests for this company"),
            headers={"Retry-After": str(throttle.retry_after or 5)})

    def server_error(self, status: int) -> Response:
        return Response(b"<html><body>Service unavailable</body></html>", status_code=status,
                        media_type="text/html")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "expires_in": pair.expires_in}

    # ---- gateway

    def routes(self) -> list[BaseRoute]:
        return [Route(GATEWAY, self._gateway, methods=["POST"])]

    async def _gateway(self, request: Request) -> Response:
        root = parse(await request.body())
        if root is None or root.tag != "request":
            return self._answer("", [], control_failure=("XL03000003",
                                                          "XML could not be parsed"))
        control_id = _t(root, "control/controlid")
        if (_t(root, "control/senderid") != self.sender_id
                or _t(root, "control/password") != self.sender_password):
            return self._answer(control_id, [], control_failure=(
                "XL03000005", "Sender credentials are incorrect"))
        auth = root.find("operation/authentication")
        function = root.find("operation/content/function")
        if function is None or len(function) == 0:
            return self._answer(control_id, [], control_failure=("XL03000003",
                                                                  "no function"))
        body = function[0]
        login = auth.find("login") if auth is not None else None
        if login is not None:
            if _t(login, "password") != self.user_password:
                return self._answer(control_id, [], auth_failure=(
                    "XL03000006", "Sign-in information is incorrect"))
            company_id = _t(login, "companyid")
            if body.tag != "getAPISession":
                return self._answer(control_id, [], auth_failure=(
                    "XL03000006", "use getAPISession, then the session"))
            pair = self.issue_tokens(company_id)
            data = element("data", children=[element("api", children=[
                element("sessionid", pair.access_token),
                element("endpoint", f"https://sandbox.local{GATEWAY}")])])
            return self._answer(control_id, [self._result(body.tag, function, None, data)])
        session = _t(auth, "sessionid")
        tenant = self.sessions.get(session, "")
        outcome = self.tokens.check(session, tenant or None)
        if outcome != "ok":
            return self.auth_error(outcome)
        write = bool(WRITES.match(body.tag))
        unique = _t(root, "control/uniqueid") == "true"
        throttle = self.limiter.acquire(tenant)
        if throttle is not None:
            return self.throttled(tenant, throttle)
        try:
            if self.faults.take("rate_limit", tenant):
                return self.throttled(tenant, Throttle("minute", 5))
            failure = self.faults.take("server_error", tenant)
            if failure:
                return self.server_error(failure.status)
            with self.lock:
                if unique and self.idempotency.get(tenant, control_id) is not None:
                    return self._answer(control_id, [], control_failure=(
                        "XL03000009", f"A request with control id {control_id} was already "
                                      "processed (uniqueid=true); it is not run again"))
                result, ok = self._run(tenant, body, function)
                response = self._answer(control_id, [result])
                if ok and unique:
                    self.idempotency.put(tenant, control_id, "", response)
            if write and ok:
                drop = self.faults.take("drop_after_write", tenant)
                if drop is not None:
                    if drop.mode == "500":
                        return self.server_error(500)
                    raise ConnectionDropped("sage-intacct: response to a committed write lost")
            return response
        finally:
            self.limiter.release(tenant)

    def _result(self, name: str, function: etree._Element, key: str | None,
                data: etree._Element | None = None,
                error: IntacctFault | None = None) -> etree._Element:
        result = element("result", children=[
            element("status", "failure" if error else "success"), element("function", name),
            element("controlid", function.get("controlid", ""))])
        if key is not None:
            result.append(element("key", key))
        if data is not None:
            result.append(data)
        if error is not None:
            result.append(_error_xml(error.errorno, error.description2))
        return result

    def _run(self, tenant: str, body: etree._Element,
             function: etree._Element) -> tuple[etree._Element, bool]:
        handler = getattr(self, f"_do_{body.tag}", None)
        try:
            if handler is None:
                raise IntacctFault("XL03000003", f"function {body.tag} is not simulated")
            key, data = handler(self.company(tenant), body)
        except IntacctFault as fault:
            return self._result(body.tag, function, None, error=fault), False
        return self._result(body.tag, function, key, data), True

    # ---- helpers

    def _next(self, company: Company) -> int:
        company.seq += 1
        return company.seq

    def _open(self, company: Company, when: date | None) -> None:
        if when is not None and company.locked_through and when <= company.locked_through:
            raise IntacctFault("BL34000061", f"The period for {when} is closed")

    def _active_customer(self, company: Company, cid: str) -> dict[str, Any]:
        customer = company.customers.get(cid)
        if customer is None:
            raise IntacctFault("BL03000018", f"Invalid customer {cid}")
        if customer["status"] != "active":
            raise IntacctFault("BL03000130", f"Customer {cid} is inactive")
        return customer

    @staticmethod
    def _lines(items: etree._Element | None) -> list[dict[str, Any]]:
        if items is None:
            return []
        return [{"account": _t(li, "glaccountno"), "amount": money(_t(li, "amount", "0")),
                 "memo": _t(li, "memo")} for li in items if li.tag == "lineitem"]

    @staticmethod
    def _due(invoice: dict[str, Any]) -> Decimal:
        return money(invoice["total"] - invoice["paid"] - invoice["credited"])

    # ---- functions

    def _do_create_customer(self, c: Company, body: etree._Element) -> tuple[str, None]:
        cid = _t(body, "customerid")
        if cid in c.customers:
            raise IntacctFault("BL01001973",
                               f"Another Customer with the given value(s) {cid} already exists")
        c.customers[cid] = {"id": cid, "name": _t(body, "name"),
                            "status": _t(body, "status", "active") or "active"}
        return str(self._next(c)), None

    def _do_update_customer(self, c: Company, body: etree._Element) -> tuple[str, None]:
        cid = body.get("customerid", "")
        if cid not in c.customers:
            raise IntacctFault("BL03000018", f"Invalid customer {cid}")
        if body.find("name") is not None:
            c.customers[cid]["name"] = _t(body, "name")
        if body.find("status") is not None:
            c.customers[cid]["status"] = _t(body, "status")
        return cid, None

    def _do_create_invoice(self, c: Company, body: etree._Element) -> tuple[str, None]:
        cid = _t(body, "customerid")
        created = _date(body.find("datecreated"))
        self._open(c, created)
        self._active_customer(c, cid)
        number = _t(body, "invoiceno")
        if any(i["number"] == number for i in c.invoices.values()):
            raise IntacctFault("BL01001973",
                               f"Another Invoice with the given value(s) {number} already exists")
        lines = self._lines(body.find("invoiceitems"))
        key = str(self._next(c))
        c.invoices[key] = {"key": key, "number": number, "customer": cid,
                           "externalid": _t(body, "externalid") or None,
                           "date": created.isoformat() if created else None,
                           "lines": lines, "total": sum((li["amount"] for li in lines),
                                                        Decimal(0)),
                           "paid": Decimal(0), "credited": Decimal(0), "state": "Posted",
                           "seq": c.seq}
        return key, None

    def _invoice(self, c: Company, key: str) -> dict[str, Any]:
        invoice = c.invoices.get(key)
        if invoice is None:
            raise IntacctFault("BL03000018", f"Invalid invoice key {key}")
        return invoice

    def _do_update_invoice(self, c: Company, body: etree._Element) -> tuple[str, None]:
        invoice = self._invoice(c, body.get("key", ""))
        self._open(c, _date(body.find("datecreated")))
        self._active_customer(c, invoice["customer"])
        lines = [dict(li) for li in invoice["lines"]]
        items = body.find("updateinvoiceitems")
        for node in items if items is not None else []:
            fields = {"account": _t(node, "glaccountno"),
                      "amount": money(_t(node, "amount", "0")), "memo": _t(node, "memo")}
            if node.tag == "updatelineitem":
                number = int(node.get("line_num", "0"))
                if not 1 <= number <= len(lines):
                    raise IntacctFault("PL04000055", f"no line {number}")
                lines[number - 1] = fields
            else:
                lines.append(fields)
        total = sum((li["amount"] for li in lines), Decimal(0))
        if total < invoice["paid"] + invoice["credited"]:
            raise IntacctFault("PL04000055", "the invoice total would be below what is paid")
        invoice["lines"], invoice["total"] = lines, total
        return invoice["key"], None

    def _do_reverse_invoice(self, c: Company, body: etree._Element) -> tuple[str, None]:
        invoice = self._invoice(c, body.get("key", ""))
        self._open(c, _date(body.find("datereversed")))
        if invoice["state"] == "Reversed":
            raise IntacctFault("PL04000055", "The invoice is already reversed")
        if invoice["paid"] or invoice["credited"]:
            raise IntacctFault("BL03002147", "Invoice has payments applied; reverse the "
                                             "payments first")
        invoice["state"] = "Reversed"
        return invoice["key"], None

    def _do_create_arpayment(self, c: Company, body: etree._Element) -> tuple[str, None]:
        cid = _t(body, "customerid")
        received = _date(body.find("datereceived"))
        self._open(c, received)
        self._active_customer(c, cid)
        total = money(_t(body, "paymentamount", "0"))
        items = [(_t(i, "invoicekey"), money(_t(i, "amount", "0")))
                 for i in body.iterfind("arpaymentitem")]
        if sum((a for _, a in items), Decimal(0)) > total:
            raise IntacctFault("PL04000055", "Applied amounts exceed the payment amount")
        for key, value in items:
            invoice = self._invoice(c, key)
            if invoice["customer"] != cid or invoice["state"] == "Reversed":
                raise IntacctFault("BL03000018", f"Invoice {key} cannot take this payment")
            if value > self._due(invoice):
                raise IntacctFault("PL04000055", f"Amount {value} exceeds the amount due on "
                                                 f"invoice {invoice['number']}")
        for key, value in items:
            c.invoices[key]["paid"] += value
        pkey = str(self._next(c))
        c.payments[pkey] = {"key": pkey, "customer": cid, "amount": total,
                            "refid": _t(body, "refid") or None, "items": items,
                            "date": received.isoformat() if received else None,
                            "state": "Posted", "seq": c.seq}
        return pkey, None

    def _do_reverse_arpayment(self, c: Company, body: etree._Element) -> tuple[str, None]:
        payment = c.payments.get(body.get("key", ""))
        if payment is None:
            raise IntacctFault("BL03000018", "Invalid payment key")
        if payment["state"] == "Reversed":
            raise IntacctFault("PL04000055", "The payment is already reversed")
        for key, value in payment["items"]:
            c.invoices[key]["paid"] -= value
        payment["state"] = "Reversed"
        return payment["key"], None

    def _do_create_aradjustment(self, c: Company, body: etree._Element) -> tuple[str, None]:
        cid = _t(body, "customerid")
        created = _date(body.find("datecreated"))
        self._open(c, created)
        self._active_customer(c, cid)
        number = _t(body, "adjustmentno")
        if number and any(a["number"] == number for a in c.adjustments.values()):
            raise IntacctFault("BL01001973", f"Another Adjustment with the given value(s) "
                                             f"{number} already exists")
        credit = -sum((li["amount"] for li in self._lines(body.find("aradjustmentitems"))),
                      Decimal(0))
        applied = Decimal(0)
        target = _t(body, "invoiceno")
        if target:
            found = [i for i in c.invoices.values()
                     if i["number"] == target and i["customer"] == cid]
            if not found:
                raise IntacctFault("BL03000018", f"Invalid invoice number {target}")
            applied = max(min(credit, self._due(found[0])), Decimal(0))
            found[0]["credited"] += applied
        key = str(self._next(c))
        c.adjustments[key] = {"key": key, "number": number, "customer": cid, "total": credit,
                              "applied": applied, "externalid": _t(body, "externalid") or None,
                              "target": target or None,
                              "date": created.isoformat() if created else None, "seq": c.seq}
        return key, None

    def _do_readByQuery(self, c: Company, body: etree._Element) -> tuple[None, etree._Element]:
        obj = _t(body, "object").upper()
        conditions = re.findall(r"(\w+)\s*=\s*'((?:[^']|'')*)'", _t(body, "query"))
        records = [r for r in self._records(c, obj)
                   if all(r.get(f) == v.replace("''", "'") for f, v in conditions)]
        data = element("data", listtype=obj.lower(), count=str(len(records)),
                       totalcount=str(len(records)), numremaining="0")
        for record in records:
            data.append(element(obj.lower(), children=[element(k, v)
                                                        for k, v in record.items()]))
        return None, data

    def _records(self, c: Company, obj: str) -> list[dict[str, str]]:
        if obj == "ARINVOICE":
            return [{"RECORDNO": i["key"], "RECORDID": i["number"], "CUSTOMERID": i["customer"],
                     "TOTALENTERED": str(i["total"]), "TOTALDUE": str(self._due(i)),
                     "STATE": i["state"]} for i in c.invoices.values()]
        if obj == "ARINVOICEITEM":
            return [{"RECORDNO": f"{i['key']}-{n}", "RECORDKEY": i["key"], "LINE_NO": str(n)}
                    for i in c.invoices.values() for n in range(1, len(i["lines"]) + 1)]
        if obj == "ARPYMT":
            return [{"RECORDNO": p["key"], "DOCNUMBER": p["refid"] or "",
                     "CUSTOMERID": p["customer"], "TOTALENTERED": str(p["amount"]),
                     "STATE": p["state"]} for p in c.payments.values()]
        if obj == "ARADJUSTMENT":
            return [{"RECORDNO": a["key"], "RECORDID": a["number"], "CUSTOMERID": a["customer"],
                     "TOTALENTERED": str(a["total"])} for a in c.adjustments.values()]
        if obj == "CUSTOMER":
            return [{"CUSTOMERID": k, "NAME": v["name"], "STATUS": v["status"]}
                    for k, v in c.customers.items()]
        raise IntacctFault("PL04000055", f"object {obj} is not simulated")

    # ---- report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        c = self.company(tenant)
        documents = [DocumentSummary(
            "invoice", i["key"], i["number"], i["externalid"], i["customer"],
            "VOIDED" if i["state"] == "Reversed" else "POSTED", money(i["total"]),
            self._due(i), i["date"], i["seq"]) for i in c.invoices.values()]
        documents += [DocumentSummary(
            "credit_note", a["key"], a["number"] or None, a["externalid"], a["customer"],
            "POSTED", money(a["total"]), money(a["total"] - a["applied"]), a["date"], a["seq"])
            for a in c.adjustments.values()]
        payments = [PaymentSummary(
            p["key"], p["customer"], money(p["amount"]),
            money(p["amount"] - sum((v for _, v in p["items"]), Decimal(0))),
            "VOIDED" if p["state"] == "Reversed" else "ACTIVE", p["date"], p["refid"], p["seq"])
            for p in c.payments.values()]
        applications = [Application("payment", p["key"], k, money(v))
                        for p in c.payments.values() for k, v in p["items"]]
        by_number = {i["number"]: i["key"] for i in c.invoices.values()}
        applications += [Application("credit_note", a["key"], by_number[a["target"]],
                                     money(a["applied"]))
                         for a in c.adjustments.values() if a["target"] and a["applied"]]
        customers = [CustomerSummary(k, v["name"], v["status"] == "active")
                     for k, v in c.customers.items()]
        return build_report(self.platform, tenant, documents, payments, applications,
                            customers)
