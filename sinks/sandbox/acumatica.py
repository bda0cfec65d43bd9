"""Acumatica contract-based REST sandbox (endpoint ``Default/24.200.001``).

Reproduces what an Acumatica sink must cope with (shared/research/platforms-B.md
section 14, spec ``shared/specs/acumatica/REDBACK_TEST_API.json``): cookie sessions
(``POST /entity/auth/login`` sets ``.ASPXAUTH``; a licence caps concurrent API sessions,
the next login is refused with 429 "API Login Limit"; idle sessions expire → 401),
``{"value": ...}``-wrapped fields, ``PUT`` = create or update by key fields
(``If-None-Match: *`` / ``If-Match: *`` → 412 when the key exists / does not),
auto-numbered ``ReferenceNbr``, 422 answering the entity with ``error`` on the bad
fields, business exceptions as 500 ``HttpError`` with a ``PX.`` exception type
(editing or deleting a released document, over-applying a payment), closed financial
periods, ``ReleaseInvoice``/``ReleasePayment``/``VoidPayment`` actions answering
202 + ``Location`` to poll until 204, ``$filter`` on ``Type``/``CustomerOrder``/
``ExternalRef``, and per-company request limits with ``Retry-After``.

Acumatica has no optimistic-concurrency token on this endpoint, so none is invented:
:meth:`AcumaticaSandbox.edit_document` simulates a bookkeeper's edit (new
``LastModifiedDateTime``) for the sink's own check.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sinks.sandbox.core import (
    Application,
    Clock,
    CustomerSummary,
    DocumentSummary,
    PaymentSummary,
    Sandbox,
    Throttle,
    TokenPair,
    Window,
    build_report,
    money,
    num,
    read_json,
)
from sinks.transport.session_rest import unwrap_values, wrap_values

NAMESPACE = uuid.UUID("8e4b7f0c-1d2a-4c3b-9f5e-6a7b8c9d0e1f")
ENDPOINT = "/entity/Default/24.200.001"
COOKIE = ".ASPXAUTH"
#: ASP.NET's server-side session, the second cookie a login sets.
SESSION_ID = "ASP.NET_SessionId"
RELEASED = ("Open", "Closed", "Voided")
_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")

Entry = dict[str, Any]


class BusinessError(Exception):
    """A PXException: Acumatica reports it as HTTP 500 with an HttpError body."""


class FieldErrors(Exception):
    """422: the entity comes back with ``error`` on each bad field."""

    def __init__(self, entity: Entry, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.entity = entity
        self.errors = errors


class Company:
    """One Acumatica company (tenant) with seeded configuration."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.customers: dict[str, Entry] = {}
        self.invoices: dict[tuple[str, str], Entry] = {}
        self.payments: dict[tuple[str, str], Entry] = {}
        self.closed_through: date | None = None
        self.seq = 0
        self.numbers = {"Invoice": 0, "Credit Memo": 0, "Payment": 0, "Refund": 0}
        self.accounts = {"40000", "40100", "40200", "40900"}
        self.cash_accounts = {"10200", "10250"}
        self.tax_categories = {"TAXABLE", "EXEMPT"}
        self.tax_ids = {"AUSTINTX"}
        self.payment_methods = {"CREDITCARD", "CASH", "CHECK", "EFT", "OTHER"}
        self.entry_types = {"BANKFEE"}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def number(self, doc_type: str) -> str:
        self.numbers[doc_type] += 1
        prefix = {"Invoice": "AR", "Credit Memo": "CM", "Payment": "PMT", "Refund": "RF"}
        return f"{prefix[doc_type]}{self.numbers[doc_type]:06d}"


class AcumaticaSandbox(Sandbox):
    """Stateful Acumatica contract-based REST simulator; see the module docstring."""

    platform = "acumatica"
    token_path = "/identity/connect/token"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 100,
                 max_sessions: int = 2, idle_timeout: int = 1200, max_concurrent: int = 4,
                 users: dict[str, str] | None = None, status_polls: int = 1,
                 require_session_id: bool = False) -> None:
        self.companies: dict[str, Company] = {}
        self.users = users or {"api-user": "secret"}
        self.max_sessions = max_sessions
        self.status_polls = status_polls
        self.sessions: dict[str, str] = {}  # cookie -> company
        #: ``.ASPXAUTH`` -> its ``ASP.NET_SessionId``; with ``require_session_id`` a
        #: request must carry both (as a browser's cookie jar does), or it is anonymous
        self.session_ids: dict[str, str] = {}
        self.require_session_id = require_session_id
        self.logouts = 0
        self.operations: dict[str, int] = {}  # operation id -> polls left
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute)],
                         max_concurrent=max_concurrent, access_lifetime=idle_timeout,
                         idempotency_window=0)

    # ------------------------------------------------------------------ state

    def company(self, tenant: str) -> Company:
        if tenant not in self.companies:
            self.companies[tenant] = Company(tenant)
        return self.companies[tenant]

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.company(tenant).closed_through = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        customer = self.company(tenant).customers.get(customer_id)
        if customer is None:
            raise KeyError(f"no customer {customer_id} in company {tenant}")
        customer["Status"] = "Inactive"
        self._touch(customer)

    def edit_document(self, tenant: str, doc_type: str, nbr: str, **fields: Any) -> None:
        """A bookkeeper edits a document in the UI (bumps ``LastModifiedDateTime``)."""
        with self.lock:
            record = self.company(tenant).invoices[(doc_type, nbr)]
            record.update(fields)
            advance = getattr(self.clock, "advance", None)
            if advance is not None:
                advance(1)
            self._touch(record)

    def login(self, company: str, username: str = "api-user", password: str = "secret"
              ) -> str:
        """Python shortcut of ``POST /entity/auth/login``: the session cookie value."""
        with self.lock:
            return self._login(company, username, password)

    def _login(self, company: str, username: str, password: str) -> str:
        live = [c for c, _ in self.sessions.items() if self.tokens.check(c, None) == "ok"]
        self.sessions = {c: t for c, t in self.sessions.items() if c in live}
        if self.users.get(username) != password:
            raise PermissionError("Invalid credentials")
        if len(self.sessions) >= self.max_sessions:
            raise OverflowError("API Login Limit")
        cookie = self.tokens.issue([company]).access_token
        self.sessions[cookie] = company
        self.session_ids = {c: i for c, i in self.session_ids.items() if c in self.sessions}
        self.session_ids[cookie] = secrets.token_hex(12)
        return cookie

    def _touch(self, record: Entry) -> None:
        record["LastModifiedDateTime"] = self.clock.now().strftime("%Y-%m-%dT%H:%M:%S+00:00")

    # ------------------------------------------------------------------ error shapes

    @staticmethod
    def http_error(status: int, message: str, exception: str | None = None,
                   exception_type: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"message": message}
        if exception is not None:
            body.update({"exceptionMessage": exception,
                         "exceptionType": exception_type or "PX.Data.PXException",
                         "stackTrace": None})
        return JSONResponse(body, status_code=status, headers=headers)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self.http_error(403, "Forbidden")
        return self.http_error(401, "You are not logged in.")

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        headers = {"Retry-After": str(throttle.retry_after)} if throttle.retry_after else {}
        return self.http_error(429, "The number of requests per minute exceeds the limit "
                                    "of the license.", headers=headers)

    def server_error(self, status: int) -> Response:
        return self.http_error(status, "An error has occurred.")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "expires_in": pair.expires_in, "token_type": "Bearer", "scope": "api"}

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/entity/auth/login", self._login_endpoint, methods=["POST"]),
            Route("/entity/auth/logout", self._logout_endpoint, methods=["POST"]),
            Route(ENDPOINT + "/{entity}/{action}/status/{op}", self._status,
                  methods=["GET"]),
            Route(ENDPOINT + "/{entity}", self._collection, methods=["GET", "PUT"]),
            Route(ENDPOINT + "/{entity}/{action}", self._action_or_get,
                  methods=["POST", "GET", "DELETE"]),
            Route(ENDPOINT + "/{entity}/{doc_type}/{nbr}", self._single,
                  methods=["GET", "DELETE"]),
        ]

    async def _login_endpoint(self, request: Request) -> Response:
        body = await read_json(request) or {}
        with self.lock:
            try:
                cookie = self._login(str(body.get("company", "")), str(body.get("name", "")),
                                     str(body.get("password", "")))
            except PermissionError as exc:
                return self.http_error(500, "An error has occurred.", str(exc),
                                       "PX.Data.PXException")
            except OverflowError:
                return self.http_error(429, "API Login Limit")
            session_id = self.session_ids[cookie]
        response = Response(status_code=204)
        response.set_cookie(SESSION_ID, session_id, httponly=True)
        response.set_cookie(COOKIE, cookie, httponly=True)
        return response

    async def _logout_endpoint(self, request: Request) -> Response:
        with self.lock:
            cookie = request.cookies.get(COOKIE, "")
            if self.sessions.pop(cookie, None) is not None:
                self.logouts += 1
            self.session_ids.pop(cookie, None)
        return Response(status_code=204)

    async def _api(self, request: Request, handle: Callable[[Company], Response], *,
                   write: bool) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        if self.require_session_id and (
                request.cookies.get(SESSION_ID) != self.session_ids.get(cookie)):
            cookie = ""  # the server-side session is missing: not logged in
        tenant = self.sessions.get(cookie, "")
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {cookie}".encode()))
        authed = Request({**request.scope, "headers": headers}, request.receive)

        def run() -> Response:
            try:
                return handle(self.company(tenant))
            except FieldErrors as exc:
                return JSONResponse(self._public(exc.entity, exc.errors), status_code=422)
            except BusinessError as exc:
                return self.http_error(500, "An error has occurred.", str(exc))
            except _Precondition:
                return self.http_error(412, "The entity cannot be inserted because an entity "
                                            "with these keys already exists, or cannot be "
                                            "updated because there is none.")
            except KeyError as exc:
                return self.http_error(404, f"No entity satisfies the condition: {exc}")

        return await self.guarded(authed, tenant, run, write=write)

    def _entity(self, name: str) -> str:
        if name not in ("Customer", "Invoice", "Payment"):
            raise KeyError(name)
        return name

    async def _collection(self, request: Request) -> Response:
        entity = request.path_params["entity"]
        if request.method == "GET":
            flt = request.query_params.get("$filter", "")
            return await self._api(request, lambda co: self._list(co, entity, flt),
                                   write=False)
        body = await read_json(request)
        precondition = ("insert" if request.headers.get("if-none-match") == "*" else
                        "update" if request.headers.get("if-match") == "*" else None)
        return await self._api(request, lambda co: self._put(co, entity, body, precondition),
                               write=True)

    async def _action_or_get(self, request: Request) -> Response:
        entity, action = request.path_params["entity"], request.path_params["action"]
        if request.method == "POST":
            body = await read_json(request) or {}
            return await self._api(request, lambda co: self._invoke(co, entity, action, body),
                                   write=True)
        return await self._api(request, lambda co: self.http_error(
            404, "Use the key fields Type and ReferenceNbr"), write=False)

    async def _single(self, request: Request) -> Response:
        entity = request.path_params["entity"]
        key = (request.path_params["doc_type"], request.path_params["nbr"])
        if request.method == "GET":
            return await self._api(request, lambda co: JSONResponse(
                self._public(self._record(co, entity, key))), write=False)
        return await self._api(request, lambda co: self._delete(co, entity, key), write=True)

    async def _status(self, request: Request) -> Response:
        op = request.path_params["op"]

        def handle(_: Company) -> Response:
            left = self.operations.get(op)
            if left is None:
                return Response(status_code=204)
            if left > 0:
                self.operations[op] = left - 1
                return Response(status_code=202, headers={"Location": str(request.url.path)})
            del self.operations[op]
            return Response(status_code=204)

        return await self._api(request, handle, write=False)

    # ------------------------------------------------------------------ handlers

    def _public(self, record: Entry, errors: dict[str, str] | None = None) -> Entry:
        plain = {k: v for k, v in record.items() if not k.startswith("_") and k != "id"}
        wrapped = wrap_values(plain)
        for name, message in (errors or {}).items():
            _mark(wrapped, name, message)
        if errors:
            wrapped["error"] = "; ".join(errors.values())
        return {"id": record.get("id"), "rowNumber": 1, "note": {"value": ""}, "custom": {},
                **wrapped}

    def _record(self, co: Company, entity: str, key: tuple[str, str]) -> Entry:
        store = co.invoices if self._entity(entity) == "Invoice" else co.payments
        if entity == "Customer" or key not in store:
            raise KeyError(f"{entity} {key[0]} {key[1]}")
        return store[key]

    def _list(self, co: Company, entity: str, flt: str) -> Response:
        self._entity(entity)
        records: list[Entry] = (list(co.customers.values()) if entity == "Customer" else
                                list((co.invoices if entity == "Invoice" else
                                      co.payments).values()))
        if flt:
            for clause in re.split(r"\s+and\s+", flt):
                match = _CLAUSE.match(clause)
                if not match:
                    return self.http_error(400, f"Invalid $filter clause {clause!r}")
                field_name, value = match.group(1), match.group(2).replace("''", "'")
                records = [r for r in records if str(r.get(field_name)) == value]
        return JSONResponse([self._public(r) for r in records])

    def _put(self, co: Company, entity: str, body: Any, precondition: str | None) -> Response:
        self._entity(entity)
        if not isinstance(body, dict):
            return self.http_error(400, "The request body is not a valid entity")
        data = unwrap_values(body)
        data.pop("id", None)
        for name in ("rowNumber", "note", "custom", "error", "files"):
            data.pop(name, None)
        if entity == "Customer":
            record = self._put_customer(co, data, precondition)
        elif entity == "Invoice":
            record = self._put_document(co, data, precondition)
        else:
            record = self._put_payment(co, data, precondition)
        return JSONResponse(self._public(record))

    def _precondition(self, exists: bool, precondition: str | None) -> None:
        if (precondition == "insert" and exists) or (precondition == "update" and not exists):
            raise _Precondition()

    def _check_period(self, co: Company, data: Entry, field_name: str) -> dict[str, str]:
        raw = data.get(field_name)
        if co.closed_through is not None and raw and date.fromisoformat(
                str(raw)[:10]) <= co.closed_through:
            period = date.fromisoformat(str(raw)[:10]).strftime("%m%Y")
            return {field_name: f"The {period} financial period is closed."}
        return {}

    def _put_customer(self, co: Company, data: Entry, precondition: str | None) -> Entry:
        key = str(data.get("CustomerID") or "")
        if not key:
            raise FieldErrors(data, {"CustomerID": "'Customer ID' cannot be empty."})
        current = co.customers.get(key)
        self._precondition(current is not None, precondition)
        merged = {**(current or {}), **data}
        if not merged.get("CustomerName"):
            raise FieldErrors(merged, {"CustomerName": "'Customer Name' cannot be empty."})
        merged.setdefault("Status", "Active")
        merged.setdefault("id", str(uuid.uuid5(NAMESPACE, f"{co.tenant}:cust:{key}")))
        merged.setdefault("_seq", co.next_seq())
        self._touch(merged)
        co.customers[key] = merged
        return merged

    def _customer(self, co: Company, key: Any) -> tuple[Entry | None, dict[str, str]]:
        customer = co.customers.get(str(key))
        if customer is None:
            return None, {"Customer": f"Customer '{key}' cannot be found in the system."}
        if customer.get("Status") == "Inactive":
            return None, {"Customer": "The customer status is 'Inactive'."}
        return customer, {}

    def _put_document(self, co: Company, data: Entry, precondition: str | None) -> Entry:
        doc_type = str(data.get("Type") or "Invoice")
        if doc_type not in ("Invoice", "Credit Memo"):
            raise FieldErrors(data, {"Type": f"'{doc_type}' is not a supported type."})
        nbr = data.get("ReferenceNbr")
        current = co.invoices.get((doc_type, str(nbr))) if nbr else None
        if nbr and current is None and precondition != "insert":
            raise KeyError(f"Invoice {doc_type} {nbr}")
        self._precondition(current is not None, precondition)
        if current is not None and current["Status"] in RELEASED:
            raise BusinessError("The document is released and cannot be edited.")
        merged = {**(current or {}), **data, "Type": doc_type}
        _, errors = self._customer(co, merged.get("Customer"))
        errors.update(self._check_period(co, merged, "Date"))
        details = merged.get("Details") or []
        if not details:
            errors["Details"] = "The document has no lines."
        net = Decimal(0)
        for index, line in enumerate(details):
            if line.get("Account") not in co.accounts:
                errors[f"Details[{index}].Account"] = (
                    f"Account '{line.get('Account')}' cannot be found in the system.")
            if line.get("TaxCategory") not in (None, *co.tax_categories):
                errors[f"Details[{index}].TaxCategory"] = (
                    f"Tax Category '{line.get('TaxCategory')}' cannot be found in the system.")
            amount = money(Decimal(str(line.get("Qty", 1))) *
                           Decimal(str(line.get("UnitPrice", 0))))
            line["Amount"] = num(amount)
            line.setdefault("LineNbr", index + 1)
            net += amount
        tax = Decimal(0)
        for index, row in enumerate(merged.get("TaxDetails") or []):
            if row.get("TaxID") not in co.tax_ids:
                errors[f"TaxDetails[{index}].TaxID"] = (
                    f"Tax ID '{row.get('TaxID')}' cannot be found in the system.")
            tax += money(row.get("TaxAmount"))
        if errors:
            raise FieldErrors(merged, errors)
        if not nbr:
            nbr = co.number(doc_type)
        total = net + tax
        merged.update({"ReferenceNbr": nbr, "Amount": num(total), "Balance": num(total),
                       "TaxTotal": num(tax),
                       "Status": "On Hold" if merged.get("Hold") else "Balanced"})
        merged.setdefault("id", str(uuid.uuid5(NAMESPACE, f"{co.tenant}:{doc_type}:{nbr}")))
        merged.setdefault("_seq", co.next_seq())
        self._touch(merged)
        co.invoices[(doc_type, str(nbr))] = merged
        return merged

    def _put_payment(self, co: Company, data: Entry, precondition: str | None) -> Entry:
        doc_type = str(data.get("Type") or "Payment")
        if doc_type not in ("Payment", "Refund", "Credit Memo"):
            raise FieldErrors(data, {"Type": f"'{doc_type}' is not a supported type."})
        nbr = data.get("ReferenceNbr")
        current = co.payments.get((doc_type, str(nbr))) if nbr else None
        if doc_type == "Credit Memo":
            memo = co.invoices.get(("Credit Memo", str(nbr)))
            if memo is None or memo["Status"] not in RELEASED:
                raise FieldErrors(data, {"ReferenceNbr": "The credit memo must be released "
                                                         "before it is applied."})
            if current is None:
                current = {"Type": doc_type, "ReferenceNbr": nbr,
                           "PaymentAmount": memo["Amount"], "CustomerID": memo["Customer"],
                           "Status": "Balanced", "ApplicationDate": memo["Date"]}
        elif nbr and current is None:
            raise KeyError(f"Payment {doc_type} {nbr}")
        self._precondition(current is not None and doc_type != "Credit Memo", precondition)
        if current is not None and current.get("Status") in RELEASED:
            raise BusinessError("The document is released and cannot be edited.")
        merged = {**(current or {}), **data, "Type": doc_type}
        errors: dict[str, str] = {}
        _, errors = self._customer(co, merged.get("CustomerID"))
        if "Customer" in errors:
            errors["CustomerID"] = errors.pop("Customer")
        if doc_type != "Credit Memo":
            if merged.get("CashAccount") not in co.cash_accounts:
                errors["CashAccount"] = (f"Cash Account '{merged.get('CashAccount')}' cannot "
                                         "be found in the system.")
            if merged.get("PaymentMethod") not in co.payment_methods:
                errors["PaymentMethod"] = (f"Payment Method '{merged.get('PaymentMethod')}' "
                                           "cannot be found in the system.")
            errors.update(self._check_period(co, merged, "ApplicationDate"))
        for index, charge in enumerate(merged.get("Charges") or []):
            if charge.get("EntryTypeID") not in co.entry_types:
                errors[f"Charges[{index}].EntryTypeID"] = "Entry Type cannot be found."
        applied = Decimal(0)
        for index, item in enumerate(merged.get("DocumentsToApply") or []):
            target = self._target(co, item)
            if target is None:
                errors[f"DocumentsToApply[{index}].ReferenceNbr"] = (
                    f"Document '{item.get('ReferenceNbr')}' cannot be found in the system.")
                continue
            applied += money(item.get("AmountPaid"))
        if errors:
            raise FieldErrors(merged, errors)
        if applied > money(merged.get("PaymentAmount")):
            raise BusinessError("The application amount exceeds the payment amount.")
        if not nbr:
            nbr = co.number(doc_type)
        merged.update({"ReferenceNbr": nbr, "AppliedToDocuments": num(applied),
                       "Status": "On Hold" if merged.get("Hold") else "Balanced"})
        merged.setdefault("id", str(uuid.uuid5(NAMESPACE, f"{co.tenant}:{doc_type}:{nbr}")))
        merged.setdefault("_seq", co.next_seq())
        self._touch(merged)
        co.payments[(doc_type, str(nbr))] = merged
        return merged

    def _target(self, co: Company, item: Entry) -> Entry | None:
        key = (str(item.get("DocType")), str(item.get("ReferenceNbr")))
        return co.invoices.get(key) or co.payments.get(key)

    def _delete(self, co: Company, entity: str, key: tuple[str, str]) -> Response:
        record = self._record(co, entity, key)
        if record["Status"] in RELEASED:
            raise BusinessError("The document is released and cannot be deleted.")
        (co.invoices if entity == "Invoice" else co.payments).pop(key)
        return Response(status_code=204)

    def _invoke(self, co: Company, entity: str, action: str, body: Entry) -> Response:
        data = unwrap_values(body.get("entity") or {})
        key = (str(data.get("Type")), str(data.get("ReferenceNbr")))
        record = self._record(co, entity, key)
        if (entity, action) == ("Invoice", "ReleaseInvoice"):
            self._release_document(record)
        elif (entity, action) == ("Payment", "ReleasePayment"):
            self._release_payment(co, record)
        elif (entity, action) == ("Payment", "VoidPayment"):
            self._void_payment(co, record)
        else:
            return self.http_error(400, f"Action {action} is not supported by the sandbox")
        op = uuid.uuid4().hex
        self.operations[op] = self.status_polls
        return Response(status_code=202, headers={
            "Location": f"{ENDPOINT}/{entity}/{action}/status/{op}"})

    def _release_document(self, record: Entry) -> None:
        if record["Status"] in RELEASED:
            raise BusinessError("The document has already been released.")
        if record.get("Hold"):
            raise BusinessError("The document is on hold and cannot be released.")
        record["Status"] = "Open"
        self._touch(record)

    def _release_payment(self, co: Company, record: Entry) -> None:
        if record["Status"] in RELEASED:
            raise BusinessError("The document has already been released.")
        items = [(self._target(co, i), money(i.get("AmountPaid")))
                 for i in record.get("DocumentsToApply") or []]
        for target, amount in items:
            if target is None or money(target.get("Balance", target.get("PaymentAmount"))
                                       ) < amount:
                raise BusinessError("The amount paid exceeds the balance of the document.")
        for target, amount in items:
            assert target is not None
            self._adjust(target, -amount)
        if record["Type"] == "Credit Memo":
            memo = co.invoices[("Credit Memo", record["ReferenceNbr"])]
            self._adjust(memo, -sum((a for _, a in items), Decimal(0)))
        record["Status"] = "Closed" if record["Type"] != "Payment" or money(
            record["AppliedToDocuments"]) == money(record["PaymentAmount"]) else "Open"
        self._touch(record)

    def _adjust(self, target: Entry, delta: Decimal) -> None:
        field_name = "Balance" if "Balance" in target else "AvailableBalance"
        if field_name == "AvailableBalance":
            target.setdefault("AvailableBalance", target["PaymentAmount"])
        target[field_name] = num(money(target[field_name]) + delta)
        if target.get("Status") in ("Open", "Closed") and "Amount" in target:
            target["Status"] = "Closed" if money(target["Balance"]) == 0 else "Open"
        self._touch(target)

    def _void_payment(self, co: Company, record: Entry) -> None:
        if record["Status"] not in ("Open", "Closed"):
            raise BusinessError("Only released payments can be voided.")
        for item in record.get("DocumentsToApply") or []:
            target = self._target(co, item)
            if target is not None:
                self._adjust(target, money(item.get("AmountPaid")))
        record["Status"] = "Voided"
        self._touch(record)

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        co = self.company(tenant)
        documents = [DocumentSummary(
            "invoice" if doc["Type"] == "Invoice" else "credit_note", _key(doc),
            doc["ReferenceNbr"], doc.get("CustomerOrder") or None, doc["Customer"],
            doc["Status"].upper() if doc["Status"] == "Voided" else doc["Status"],
            money(doc["Amount"]), money(doc["Balance"]), str(doc["Date"])[:10], doc["_seq"])
            for doc in co.invoices.values()]
        payments = [PaymentSummary(
            _key(p), p["CustomerID"], money(p["PaymentAmount"]),
            money(p["PaymentAmount"]) - money(p.get("AppliedToDocuments", 0))
            if p["Status"] in ("Open", "Closed") else money(p["PaymentAmount"]),
            "VOIDED" if p["Status"] == "Voided" else p["Status"],
            str(p.get("ApplicationDate"))[:10], p.get("ExternalRef") or None, p["_seq"])
            for p in co.payments.values() if p["Type"] == "Payment"]
        applications = []
        for p in co.payments.values():
            if p["Status"] not in ("Open", "Closed"):
                continue
            for item in p.get("DocumentsToApply") or []:
                target = self._target(co, item)
                if target is None or target.get("Type") != "Invoice":
                    continue
                applications.append(Application(
                    "credit_note" if p["Type"] == "Credit Memo" else "payment", _key(p),
                    _key(target), money(item.get("AmountPaid"))))
        customers = [CustomerSummary(c["CustomerID"], c["CustomerName"],
                                     c.get("Status") != "Inactive")
                     for c in co.customers.values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)


class _Precondition(Exception):
    pass


def _key(record: Entry) -> str:
    """The report's id of a document: its key fields, ``Type/ReferenceNbr``, which is
    also the external id the sink stores."""
    return f"{record['Type']}/{record['ReferenceNbr']}"


def _mark(wrapped: Entry, path: str, message: str) -> None:
    """Put ``message`` as the ``error`` of the field at ``path`` (``Details[0].Account``)."""
    node: Any = wrapped
    parts = path.split(".")
    for depth, part in enumerate(parts):
        name, _, index = part.partition("[")
        last = depth == len(parts) - 1
        if index:
            items = node.setdefault(name, [])
            position = int(index.rstrip("]"))
            while len(items) <= position:
                items.append({})
            node = items[position]
            if last:
                node["error"] = message
        elif last:
            field = node.setdefault(name, {"value": None})
            if isinstance(field, dict):
                field["error"] = message
        else:
            node = node.setdefault(name, {})
