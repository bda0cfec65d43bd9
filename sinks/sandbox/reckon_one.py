"""Reckon One API v2 sandbox.

Reproduces what a Reckon One sink must cope with (shared/research/platforms-B.md §2,
shared/specs/reckon-one/openapi.yaml): every path under ``/{bookId}``; OAuth2 bearer
tokens (180-minute access tokens, rotating refresh tokens at ``/connect/token``)
*plus* the API-gateway subscription key ``Ocp-Apim-Subscription-Key`` on every call;
Reckon's ``ErrorResponse`` (``{"code", "message", "errors": [{"location",
"message"}]}``) and APIM's own ``{"statusCode", "message"}`` answers (missing key, 429
with ``Retry-After``); creates answer ``201 {"id"}``, PUT/PATCH/DELETE ``204`` with no
body; list endpoints page with ``page``/``perPage`` and return ``{"list": [...]}``
without any filtering; paths are case-insensitive (the spec itself lists credit notes
at ``/creditnotes`` and writes them at ``/creditNotes``); no idempotency key; hard
deletes (a deleted document answers 404, and a document with transaction links must
be unlinked first); receipts and credit notes linked to invoices
(``transactionLinks``), never beyond a balance; the spec's field lengths; a book
lock-off date; customers with unique names that can be made inactive; and
write-then-drop-response through :class:`Sandbox`.

Assumptions (⚠, not in the spec, mirrored in ``sinks.platforms.reckon_one``): the
wording of the validation, lock-off, inactive-customer, duplicate-name and
linked-delete messages; customer-name uniqueness; a 50-character invoice/credit-note
``reference``; deleting a linked document being refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
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

SUBSCRIPTION_HEADER = "ocp-apim-subscription-key"
SUBSCRIPTION_KEY = "sandbox-subscription-key"
#: Ledger accounts and tax rates every sandbox book holds (see the contract harness).
LEDGER_ACCOUNTS = {"4-1000": "Labour income", "4-1100": "Parts income",
                   "4-1200": "Fees income", "4-1300": "Discounts", "4-1400": "Tips",
                   "1-1100": "Cheque account", "1-1200": "Undeposited funds",
                   "6-1000": "Merchant fees"}
TAX_RATES = {"GST": Decimal("10"), "FRE": Decimal("0"), "TX8": Decimal("8.25"),
             "TX6": Decimal("6.25")}
#: Field limits of the spec, plus the assumed reference limit.
LIMITS = {"name": 100, "organisationName": 100, "notes": 1000, "reference": 50,
          "receipt.reference": 200, "receipt.notes": 255}


class ReckonError(Exception):
    """A Reckon ``ErrorResponse``: HTTP status, message, field errors."""

    def __init__(self, status: int, message: str,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []


def _invalid(location: str, message: str) -> ReckonError:
    return ReckonError(400, "The request is invalid.", [{"location": location,
                                                         "message": message}])


def _missing(what: str) -> ReckonError:
    return ReckonError(404, f"The specified {what} does not exist.")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _dec(raw: Any, field: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _invalid(field, "A number is required.")
    try:
        return Decimal(str(raw))
    except ArithmeticError as exc:
        raise _invalid(field, "A number is required.") from exc


def _day(raw: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError as exc:
        raise _invalid(field, "A date is required.") from exc


class Book:
    """One Reckon One book (tenant)."""

    def __init__(self, book_id: str) -> None:
        self.book_id = book_id
        self.seq = 0
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.creditnotes: dict[str, dict[str, Any]] = {}
        self.receipts: dict[str, dict[str, Any]] = {}
        #: linkId → (source kind, source id, invoice id, amount)
        self.links: dict[str, tuple[str, str, str, Decimal]] = {}
        self.lock_date: date | None = None
        self.numbers = {"invoice": 0, "creditnote": 0, "receipt": 0}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


Handler = Callable[[Book, list[str], Any, Request], tuple[int, Any]]


class ReckonOneSandbox(Sandbox):
    """Stateful Reckon One API v2 simulator; see the module docstring."""

    platform = "reckon-one"
    token_path = "/connect/token"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 1000,
                 max_concurrent: int = 5, access_lifetime: int = 180 * 60) -> None:
        self.books: dict[str, Book] = {}
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=1)

    # ------------------------------------------------------------------ hooks

    def book(self, book_id: str) -> Book:
        if book_id not in self.books:
            self.books[book_id] = Book(book_id)
        return self.books[book_id]

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.book(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        customer = self.book(tenant).customers.get(customer_id)
        if customer is None:
            raise KeyError(f"no customer {customer_id} in book {tenant}")
        customer["status"] = "Inactive"

    @staticmethod
    def _error(err: ReckonError) -> JSONResponse:
        body: dict[str, Any] = {"code": err.status, "message": err.message}
        if err.errors:
            body["errors"] = err.errors
        return JSONResponse(body, status_code=err.status)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self._error(ReckonError(403, "The user does not have access to this book."))
        return self._error(ReckonError(401, "The authentication token is missing, expired or "
                                            "invalid."))

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        wait = max(1, int(throttle.retry_after or 60))
        return JSONResponse({"statusCode": 429,
                             "message": f"Rate limit is exceeded. Try again in {wait} seconds."},
                            status_code=429, headers={"Retry-After": str(wait)})

    def server_error(self, status: int) -> Response:
        return JSONResponse({"statusCode": status, "message": "Internal server error"},
                            status_code=status)

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "token_type": "Bearer", "expires_in": pair.expires_in,
                "scope": "openid read write offline_access"}

    def client(self, access_token: str | None = None, **kwargs: Any) -> Any:
        """In-process client sending the bearer token and the subscription key."""
        headers = {"Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY,
                   **dict(kwargs.pop("headers", {}))}
        return super().client(access_token, headers=headers, **kwargs)

    # ------------------------------------------------------------------ routing

    def routes(self) -> list[BaseRoute]:
        return [Route("/{book_id}/{rest:path}", self._endpoint,
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]

    def _dispatch(self, method: str, parts: list[str]) -> Handler | None:
        """Case-insensitive routing on the path below the book."""
        shape = [p.lower() for p in parts]
        collection = {"invoices": "invoice", "creditnotes": "creditnote",
                      "receipts": "receipt"}
        table: dict[tuple[str, int], Any] = {}
        head = shape[0] if shape else ""
        if head == "customers":
            table = {("GET", 1): self._list_customers, ("POST", 1): self._create_customer,
                     ("GET", 2): self._get_customer, ("PUT", 2): self._put_customer,
                     ("PATCH", 2): self._patch_customer}
        elif head in collection:
            kind = collection[head]
            table = {("GET", 1): self._lister(kind), ("POST", 1): self._creator(kind),
                     ("GET", 2): self._getter(kind), ("PUT", 2): self._putter(kind),
                     ("DELETE", 2): self._deleter(kind)}
            if len(shape) >= 3 and shape[2] == "transactionlinks":
                table = {("POST", 3): self._linker(kind), ("DELETE", 4): self._unlinker(kind)}
        handler: Handler | None = table.get((method, len(shape)))
        return handler

    async def _endpoint(self, request: Request) -> Response:
        key = request.headers.get(SUBSCRIPTION_HEADER)
        if key != SUBSCRIPTION_KEY:
            message = ("Access denied due to missing subscription key. Make sure to include "
                       "subscription key when making requests to an API." if key is None else
                       "Access denied due to invalid subscription key. Make sure to provide "
                       "a valid key for an active subscription.")
            return JSONResponse({"statusCode": 401, "message": message}, status_code=401)
        book_id = request.path_params["book_id"]
        parts = [p for p in request.path_params["rest"].split("/") if p]
        handler = self._dispatch(request.method, parts)
        raw = await request.body()
        body = await read_json(request)
        write = request.method != "GET"

        def run() -> Response:
            if handler is None:
                return self._error(ReckonError(404, "Resource not found."))
            if write and raw and body is None:
                return self._error(_invalid("body", "The request body is not valid JSON."))
            try:
                status, payload = handler(self.book(book_id), parts, body, request)
            except ReckonError as err:
                return self._error(err)
            if payload is None:
                return Response(status_code=status)
            return JSONResponse(payload, status_code=status)

        return await self.guarded(request, book_id, run, write=write)

    # ------------------------------------------------------------------ helpers

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%S")

    @staticmethod
    def _store(book: Book, kind: str) -> dict[str, dict[str, Any]]:
        return {"invoice": book.invoices, "creditnote": book.creditnotes,
                "receipt": book.receipts}[kind]

    @staticmethod
    def _label(kind: str) -> str:
        return {"invoice": "invoice", "creditnote": "credit note", "receipt": "receipt"}[kind]

    def _live(self, book: Book, kind: str, ident: str) -> dict[str, Any]:
        record = self._store(book, kind).get(ident.lower())
        if record is None or record["_deleted"]:
            raise _missing(self._label(kind))
        return record

    @staticmethod
    def _public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    @staticmethod
    def _body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("body", "A JSON object is required.")
        return body

    @staticmethod
    def _length(body: dict[str, Any], field: str, limit: int, location: str | None = None
                ) -> None:
        value = body.get(field)
        if isinstance(value, str) and len(value) > limit:
            raise _invalid(location or field,
                           f"The field {field} must be a string with a maximum length of "
                           f"{limit}.")

    def _check_lock(self, book: Book, day: date) -> None:
        if book.lock_date is not None and day <= book.lock_date:
            raise ReckonError(400, "Transactions dated on or before the lock-off date "
                                   f"{book.lock_date.isoformat()} cannot be created or amended.")

    def _customer_ref(self, book: Book, raw: Any) -> dict[str, Any]:
        customer = book.customers.get(str(raw or "").lower())
        if customer is None:
            raise _invalid("customer", "The customer does not exist.")
        if customer["status"] != "Active":
            raise ReckonError(400, f"The customer {customer['name']} is inactive. Make the "
                                   "customer active to record transactions.")
        return {"id": customer["id"], "name": customer["name"]}

    def _page(self, records: list[dict[str, Any]], request: Request) -> dict[str, Any]:
        params = {k.lower(): v for k, v in request.query_params.items()}
        try:
            page = max(1, int(params.get("page", "1")))
            per_page = int(params.get("perpage", "0")) or 100
        except ValueError as exc:
            raise _invalid("page", "page and perPage must be integers.") from exc
        start = (page - 1) * per_page
        return {"list": [self._public(r) for r in records[start:start + per_page]]}

    # ------------------------------------------------------------------ customers

    def _list_customers(self, book: Book, _: list[str], __: Any, request: Request
                        ) -> tuple[int, Any]:
        return 200, self._page(list(book.customers.values()), request)

    def _get_customer(self, book: Book, parts: list[str], _: Any, __: Request
                      ) -> tuple[int, Any]:
        customer = book.customers.get(parts[1].lower())
        if customer is None:
            raise _missing("customer")
        return 200, self._public(customer)

    def _validate_customer(self, book: Book, body: dict[str, Any], own: str | None) -> None:
        for field in ("name", "organisationName", "notes"):
            self._length(body, field, LIMITS[field])
        for i, address in enumerate(body.get("addresses") or []):
            for field, limit in (("line1", 80), ("line2", 80), ("town", 80), ("state", 80),
                                 ("postcode", 30), ("country", 30)):
                self._length(address, field, limit, f"addresses[{i}].{field}")
        name = body.get("name")
        if name is not None:
            for other in book.customers.values():
                if other["id"] != own and other["name"].lower() == str(name).lower():
                    raise ReckonError(400, f"A customer with the name '{name}' already "
                                           "exists.")

    def _create_customer(self, book: Book, _: list[str], body: Any, __: Request
                         ) -> tuple[int, Any]:
        body = self._body(body)
        if not body.get("name"):
            raise _invalid("name", "The name field is required.")
        self._validate_customer(book, body, None)
        ident = str(uuid.uuid4())
        book.customers[ident] = {
            "id": ident, "name": body["name"], "organisationName": body.get("organisationName"),
            "notes": body.get("notes"), "status": body.get("status") or "Active",
            "entityTypes": body.get("entityTypes") or {"isCustomer": True},
            "addresses": body.get("addresses") or [],
            "phoneNumbers": body.get("phoneNumbers") or [],
            "electronicAddresses": body.get("electronicAddresses") or [],
            "balance": 0.0, "lastModifiedDateTime": self._now(), "_seq": book.next_seq()}
        return 201, {"id": ident, "name": body["name"]}

    def _put_customer(self, book: Book, parts: list[str], body: Any, request: Request
                      ) -> tuple[int, Any]:
        body = self._body(body)
        if not body.get("name"):
            raise _invalid("name", "The name field is required.")
        return self._patch_customer(book, parts, body, request)

    def _patch_customer(self, book: Book, parts: list[str], body: Any, __: Request
                        ) -> tuple[int, Any]:
        body = self._body(body)
        customer = book.customers.get(parts[1].lower())
        if customer is None:
            raise _missing("customer")
        self._validate_customer(book, body, customer["id"])
        if "status" in body and body["status"] not in ("Active", "Inactive"):
            raise _invalid("status", "The status must be Active or Inactive.")
        for field in ("name", "organisationName", "notes", "status", "addresses",
                      "phoneNumbers", "electronicAddresses", "entityTypes"):
            if field in body:
                customer[field] = body[field]
        customer["lastModifiedDateTime"] = self._now()
        return 204, None

    # ------------------------------------------------------------------ documents

    def _lister(self, kind: str) -> Handler:
        def handle(book: Book, _: list[str], __: Any, request: Request) -> tuple[int, Any]:
            live = [r for r in self._store(book, kind).values() if not r["_deleted"]]
            return 200, self._page(live, request)
        return handle

    def _getter(self, kind: str) -> Handler:
        def handle(book: Book, parts: list[str], _: Any, __: Request) -> tuple[int, Any]:
            return 200, self._public(self._live(book, kind, parts[1]))
        return handle

    def _creator(self, kind: str) -> Handler:
        def handle(book: Book, _: list[str], body: Any, __: Request) -> tuple[int, Any]:
            ident = str(uuid.uuid4())
            self._save(book, kind, ident, None, self._body(body))
            return 201, {"id": ident}
        return handle

    def _putter(self, kind: str) -> Handler:
        def handle(book: Book, parts: list[str], body: Any, __: Request) -> tuple[int, Any]:
            existing = self._live(book, kind, parts[1])
            self._save(book, kind, existing["id"], existing, self._body(body))
            return 204, None
        return handle

    def _deleter(self, kind: str) -> Handler:
        def handle(book: Book, parts: list[str], _: Any, __: Request) -> tuple[int, Any]:
            record = self._live(book, kind, parts[1])
            self._check_lock(book, _day(record[self._date_field(kind)], "date"))
            own = [k for k, link in book.links.items() if record["id"] in (link[1], link[2])]
            if own and kind != "receipt":
                raise ReckonError(400, f"The {self._label(kind)} has linked transactions. "
                                       "Remove the links before deleting it.")
            for link_id in own:
                self._drop_link(book, link_id)
            record["_deleted"] = True
            return 204, None
        return handle

    @staticmethod
    def _date_field(kind: str) -> str:
        return {"invoice": "invoiceDate", "creditnote": "creditNoteDate",
                "receipt": "receiptDate"}[kind]

    def _lines(self, items: Any, status: str) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """Stored line items, their net amount and their tax."""
        if not isinstance(items, list):
            raise _invalid("lineItems", "lineItems must be an array.")
        lines: list[dict[str, Any]] = []
        net = tax = Decimal(0)
        for i, item in enumerate(items):
            where = f"lineItems[{i}]"
            if not isinstance(item, dict) or "lineNumber" not in item:
                raise _invalid(f"{where}.lineNumber", "The lineNumber field is required.")
            details = item.get("accountDetails")
            if not isinstance(details, dict) or not details.get("ledgerAccount"):
                raise _invalid(f"{where}.accountDetails.ledgerAccount",
                               "The ledgerAccount field is required.")
            if details["ledgerAccount"] not in LEDGER_ACCOUNTS:
                raise ReckonError(400, f"The ledger account {details['ledgerAccount']} does "
                                       "not exist or is not active.")
            self._length(item, "description", 1000, f"{where}.description")
            amount = _cents(_dec(details.get("amount", 0), f"{where}.accountDetails.amount"))
            rate_id = item.get("taxRate")
            if rate_id is not None and rate_id not in TAX_RATES:
                raise _invalid(f"{where}.taxRate", f"The tax rate {rate_id} does not exist.")
            if "taxIsModified" in item:
                raise _invalid(f"{where}.taxIsModified", "taxIsModified is read-only.")
            if status == "NonTaxed" or rate_id is None:
                computed = Decimal(0)
            elif status == "Inclusive":
                rate = TAX_RATES[rate_id]
                computed = _cents(amount * rate / (100 + rate))
            else:
                computed = _cents(amount * TAX_RATES[rate_id] / 100)
            line_tax = computed
            if "taxAmount" in item and status != "NonTaxed" and rate_id is not None:
                line_tax = _cents(_dec(item["taxAmount"], f"{where}.taxAmount"))
            net += amount
            tax += line_tax
            lines.append({"lineNumber": item["lineNumber"], "lineId": str(uuid.uuid4()),
                          "description": item.get("description"),
                          "accountDetails": {"ledgerAccount": {"id": details["ledgerAccount"]},
                                             "quantity": details.get("quantity"),
                                             "amount": num(amount)},
                          "taxRate": {"id": rate_id} if rate_id else None,
                          "taxAmount": num(line_tax),
                          "taxIsModified": line_tax != computed})
        return lines, net, tax

    def _save(self, book: Book, kind: str, ident: str, existing: dict[str, Any] | None,
              body: dict[str, Any]) -> None:
        if kind == "receipt":
            self._save_receipt(book, ident, existing, body)
            return
        date_field = self._date_field(kind)
        required = ["customer", date_field, "amountTaxStatus"]
        for field in required:
            if body.get(field) in (None, ""):
                raise _invalid(field, f"The {field} field is required.")
        status = body["amountTaxStatus"]
        if status not in ("NonTaxed", "Inclusive", "Exclusive"):
            raise _invalid("amountTaxStatus", f"'{status}' is not a valid amountTaxStatus.")
        self._length(body, "reference", LIMITS["reference"])
        day = _day(body[date_field], date_field)
        self._check_lock(book, day)
        if existing is not None:
            self._check_lock(book, _day(existing[date_field], date_field))
        customer = self._customer_ref(book, body["customer"])
        lines, net, tax = self._lines(body.get("lineItems") or [], status)
        discount = _cents(_dec(body.get("invoiceDiscountAmount", 0), "invoiceDiscountAmount")) \
            if kind == "invoice" else Decimal(0)
        total = net - discount + (tax if status == "Exclusive" else Decimal(0))
        if total < 0:
            raise _invalid("invoiceDiscountAmount", "The discount exceeds the invoice amount.")
        linked = sum((link[3] for link in book.links.values()
                      if ident in (link[1], link[2])), Decimal(0))
        if total < linked:
            raise ReckonError(400, f"The total of the {self._label(kind)} cannot be less than "
                                   "the amount already linked to it.")
        number_field = "invoiceNumber" if kind == "invoice" else "creditNoteNumber"
        if existing is None:
            book.numbers[kind] += 1
            prefix = "INV" if kind == "invoice" else "CN"
            number = f"{prefix}-{book.numbers[kind]:06d}"
            seq = book.next_seq()
        else:
            number, seq = existing[number_field], existing["_seq"]
        record: dict[str, Any] = {
            "id": ident, number_field: number, "customer": customer,
            date_field: f"{day.isoformat()}T00:00:00", "totalAmount": num(total),
            "balance": num(total - linked), "amountTaxStatus": status,
            "totalTaxAmount": num(tax), "reference": body.get("reference"),
            "lineItems": lines, "notes": body.get("notes"), "emailStatus": "Unsent",
            "transactionLinks": [], "_deleted": False, "_seq": seq}
        if kind == "invoice":
            record["dueDate"] = body.get("dueDate")
            record["invoiceDiscountAmount"] = num(discount)
            record["status"] = "Paid" if total - linked == 0 and total > 0 else "Approved"
        else:
            record["status"] = "Closed" if total - linked == 0 else "Approved"
        self._store(book, kind)[ident] = record
        self._refresh_links(book)

    def _save_receipt(self, book: Book, ident: str, existing: dict[str, Any] | None,
                      body: dict[str, Any]) -> None:
        for field in ("customer", "receiptDate", "totalAmount"):
            if body.get(field) in (None, ""):
                raise _invalid(field, f"The {field} field is required.")
        self._length(body, "reference", LIMITS["receipt.reference"])
        self._length(body, "notes", LIMITS["receipt.notes"])
        day = _day(body["receiptDate"], "receiptDate")
        self._check_lock(book, day)
        customer = self._customer_ref(book, body["customer"])
        account = body.get("ledgerAccount")
        if account is not None and account not in LEDGER_ACCOUNTS:
            raise ReckonError(400, f"The ledger account {account} does not exist or is not "
                                   "active.")
        total = _cents(_dec(body["totalAmount"], "totalAmount"))
        lines, net, _ = self._lines(body.get("lineItems") or [], "NonTaxed")
        if existing is not None:  # links are replaced by the PUT
            for link_id in [k for k, link in book.links.items() if link[1] == ident]:
                self._drop_link(book, link_id)
        wanted: list[tuple[str, Decimal]] = []
        for i, link in enumerate(body.get("transactionLinks") or []):
            where = f"transactionLinks[{i}]"
            if link.get("transactionType") != "Invoice":
                raise _invalid(f"{where}.transactionType", "Receipts link to invoices only.")
            invoice = self._live(book, "invoice", str(link.get("transactionId", "")))
            value = _cents(_dec(link.get("transactionAmount"), f"{where}.transactionAmount"))
            if value <= 0 or value > money(invoice["balance"]):
                raise _invalid(f"{where}.transactionAmount",
                               "The amount must be positive and not exceed the invoice balance.")
            if invoice["customer"]["id"] != customer["id"]:
                raise _invalid(f"{where}.transactionId", "The invoice is another customer's.")
            wanted.append((invoice["id"], value))
        if net + sum((v for _, v in wanted), Decimal(0)) > total:
            raise _invalid("totalAmount", "The linked and itemised amounts exceed the total.")
        if existing is None:
            book.numbers["receipt"] += 1
            number, seq = f"RCT-{book.numbers['receipt']:06d}", book.next_seq()
        else:
            number, seq = existing["receiptNumber"], existing["_seq"]
        book.receipts[ident] = {
            "id": ident, "receiptNumber": number, "customer": customer,
            "receiptDate": f"{day.isoformat()}T00:00:00", "allocateFullAmount": False,
            "ledgerAccount": {"id": account} if account else None,
            "paymentMethod": {"id": body["paymentMethod"]} if body.get("paymentMethod") else None,
            "reference": body.get("reference"), "notes": body.get("notes"),
            "totalAmount": num(total), "reconciliationStatus": "Uncleared",
            "lineItems": lines, "transactionLinks": [], "_lines": net,
            "_deleted": False, "_seq": seq}
        for invoice_id, value in wanted:
            book.links[str(uuid.uuid4())] = ("receipt", ident, invoice_id, value)
        self._refresh_links(book)

    def _linker(self, kind: str) -> Handler:
        def handle(book: Book, parts: list[str], body: Any, __: Request) -> tuple[int, Any]:
            if kind != "creditnote":
                raise ReckonError(404, "Resource not found.")
            note = self._live(book, kind, parts[1])
            body = self._body(body)
            for field in ("transactionId", "transactionAmount", "transactionType"):
                if body.get(field) in (None, ""):
                    raise _invalid(field, f"The {field} field is required.")
            if body["transactionType"] != "Invoice":
                raise _invalid("transactionType", "Credit notes link to invoices only.")
            invoice = self._live(book, "invoice", str(body["transactionId"]))
            value = _cents(_dec(body["transactionAmount"], "transactionAmount"))
            if value <= 0 or value > money(invoice["balance"]) or value > money(note["balance"]):
                raise _invalid("transactionAmount", "The amount must be positive and not "
                                                    "exceed the invoice or credit balance.")
            link_id = str(uuid.uuid4())
            book.links[link_id] = ("creditnote", note["id"], invoice["id"], value)
            self._refresh_links(book)
            return 201, {"id": link_id}
        return handle

    def _unlinker(self, kind: str) -> Handler:
        def handle(book: Book, parts: list[str], _: Any, __: Request) -> tuple[int, Any]:
            record = self._live(book, kind, parts[1])
            link = book.links.get(parts[3].lower())
            if link is None or record["id"] not in (link[1], link[2]):
                raise _missing("transaction link")
            self._drop_link(book, parts[3].lower())
            return 204, None
        return handle

    def _drop_link(self, book: Book, link_id: str) -> None:
        del book.links[link_id]
        self._refresh_links(book)

    def _refresh_links(self, book: Book) -> None:
        """Recompute balances and both sides' ``transactionLinks`` from the link table."""
        types = {"receipt": "Receipt", "creditnote": "CreditNote", "invoice": "Invoice"}
        for kind in ("invoice", "creditnote", "receipt"):
            for record in self._store(book, kind).values():
                record["transactionLinks"] = []
        for link_id, (source_kind, source_id, invoice_id, value) in book.links.items():
            source = self._store(book, source_kind)[source_id]
            invoice = book.invoices[invoice_id]
            source["transactionLinks"].append({
                "linkId": link_id, "transactionType": "Invoice", "transactionId": invoice_id,
                "transactionNumber": invoice["invoiceNumber"], "transactionAmount": num(value)})
            invoice["transactionLinks"].append({
                "linkId": link_id, "transactionType": types[source_kind],
                "transactionId": source_id, "transactionAmount": num(value)})
        for kind in ("invoice", "creditnote"):
            for record in self._store(book, kind).values():
                linked = sum((money(link["transactionAmount"])
                              for link in record["transactionLinks"]), Decimal(0))
                balance = money(record["totalAmount"]) - linked
                record["balance"] = num(balance)
                if kind == "invoice":
                    record["status"] = "Paid" if balance == 0 and linked > 0 else "Approved"
                else:
                    record["status"] = "Closed" if balance == 0 else "Approved"

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        book = self.book(tenant)
        documents: list[DocumentSummary] = []
        for store, kind, number_field, date_field in (
                (book.invoices, "invoice", "invoiceNumber", "invoiceDate"),
                (book.creditnotes, "credit_note", "creditNoteNumber", "creditNoteDate")):
            for doc in store.values():
                deleted = doc["_deleted"]
                documents.append(DocumentSummary(
                    kind, doc["id"], doc[number_field],  # type: ignore[arg-type]
                    None if deleted else doc.get("reference"), doc["customer"]["id"],
                    "DELETED" if deleted else str(doc["status"]).upper(),
                    money(doc["totalAmount"]), money(doc["balance"]),
                    str(doc[date_field])[:10], doc["_seq"]))
        payments = []
        for receipt in book.receipts.values():
            linked = sum((money(link["transactionAmount"])
                          for link in receipt["transactionLinks"]), Decimal(0))
            deleted = receipt["_deleted"]
            payments.append(PaymentSummary(
                receipt["id"], receipt["customer"]["id"], money(receipt["totalAmount"]),
                money(receipt["totalAmount"]) - linked - receipt["_lines"],
                "DELETED" if deleted else "ACTIVE", str(receipt["receiptDate"])[:10],
                None if deleted else receipt.get("reference"), receipt["_seq"]))
        applications = [Application("payment" if source_kind == "receipt" else "credit_note",
                                     source_id, invoice_id, value)
                        for source_kind, source_id, invoice_id, value in book.links.values()]
        customers = [CustomerSummary(c["id"], c["name"], c["status"] == "Active")
                     for c in book.customers.values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)


def error_body(status: int, message: str, errors: list[dict[str, str]] | None = None) -> bytes:
    """A Reckon ``ErrorResponse`` body, as the sandbox sends it (for unit tests)."""
    body: dict[str, Any] = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return json.dumps(body).encode()
