"""Zoho Books API v3 sandbox.

Reproduces what a Zoho Books sink must cope with (shared/research/platforms-A.md §5,
shared/specs/zoho-books/*.yml): ``organization_id`` on every call, the
``Authorization: Zoho-oauthtoken <token>`` scheme, the ``{"code", "message"}``
envelope (``code`` 0 = success), upsert by a unique custom field (``PUT /<module>``
with ``X-Unique-Identifier-Key``/``-Value`` and ``X-Upsert``), duplicate-number
rejection, invoices created as drafts then marked sent, void (payments and credits
fall back to customer credit), payment/credit-note refunds limited to the unused
amount, credits applied to invoices, a transaction lock date, the 100/minute and
daily limits (HTTP 429 with Zoho's code, no ``Retry-After``), non-rotating refresh
tokens, and write-then-drop-response through :class:`Sandbox`.

Error codes: 1002 (record does not exist) and 1000 (internal error) are documented;
57/14 (auth), 44/45 (limits) come from third-party guides; 1001 (duplicate), 4000
(lock date), 4 (invalid value) and 6041 (organisation) are this sandbox's assumptions,
mirrored in ``sinks.platforms.zoho_books.errors``.
"""

from __future__ import annotations

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

BASE = "/books/v3"
ID_BASE = 460000000000000
UNIQUE_FIELD = "cf_ledgerstream_id"
TEN_YEARS = 10 * 365 * 86400


class ZohoError(Exception):
    """A Zoho error response: HTTP status, Zoho code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> ZohoError:
    return ZohoError(400, 4, message)


def _missing(what: str) -> ZohoError:
    return ZohoError(404, 1002, f"{what} does not exist.")


class Org:
    """One Zoho Books organisation (tenant)."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.seq = 0
        self.contacts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.creditnotes: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.payment_refunds: dict[str, dict[str, Any]] = {}
        self.creditnote_refunds: dict[str, dict[str, Any]] = {}
        self.credits_applied: dict[str, dict[str, Any]] = {}
        self.lock_date: date | None = None
        #: Zoho's organisation preference "tax rounding": per line item (the default)
        #: or per transaction (taxes summed per tax, then rounded once).
        self.tax_rounding: str = "item_level"
        self.unique_fields = {UNIQUE_FIELD}
        self.taxes = {"460000000001001": Decimal("8.25"), "460000000001002": Decimal("10"),
                      "460000000001003": Decimal("6.25")}
        self.currencies = {"460000000004001": "USD", "460000000004002": "EUR"}
        self.base_currency = "USD"
        self.exemptions = {"460000000001900"}
        self.items = {"460000000002001": "Labor", "460000000002002": "Parts",
                      "460000000002003": "Fees", "460000000002004": "Discount"}
        self.accounts = {"460000000003001": "Undeposited Funds",
                         "460000000003002": "Operating Bank"}
        self.numbers = {"invoice": 0, "creditnote": 0, "payment": 0}

    def new_id(self) -> str:
        self.seq += 1
        return str(ID_BASE + self.seq)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _dec(raw: Any, field: str) -> Decimal:
    try:
        return Decimal(str(raw))
    except ArithmeticError as exc:
        raise _invalid(f"Invalid value passed for {field}") from exc


def _date(raw: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise _invalid(f"Invalid value passed for {field}") from exc


def _unique_value(record: dict[str, Any], api_name: str) -> str | None:
    for cf in record.get("custom_fields", []):
        if cf.get("api_name") == api_name:
            return str(cf.get("value"))
    return None


class ZohoBooksSandbox(Sandbox):
    """Stateful Zoho Books API v3 simulator; see the module docstring."""

    platform = "zoho-books"
    token_path = "/oauth/v2/token"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 100,
                 per_day: int = 1000, max_concurrent: int = 5,
                 access_lifetime: int = 3600) -> None:
        self.orgs: dict[str, Org] = {}
        # Zoho refresh tokens do not rotate: the old one stays valid (long grace).
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute),
                                               Window("day", 86400, per_day)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=1, refresh_grace_seconds=TEN_YEARS)

    # ------------------------------------------------------------------ state & hooks

    def org(self, org_id: str) -> Org:
        if org_id not in self.orgs:
            self.orgs[org_id] = Org(org_id)
        return self.orgs[org_id]

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.org(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        contact = self.org(tenant).contacts.get(customer_id)
        if contact is None:
            raise KeyError(f"no contact {customer_id} in organisation {tenant}")
        contact["status"] = "inactive"

    def client(self, access_token: str | None = None, **kwargs: Any) -> Any:
        """In-process client sending Zoho's ``Zoho-oauthtoken`` scheme."""
        headers = dict(kwargs.pop("headers", {}))
        if access_token:
            headers["Authorization"] = f"Zoho-oauthtoken {access_token}"
        return super().client(None, headers=headers, **kwargs)

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_code=status)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self._error(401, 6041, "This user is not associated with the organization.")
        if outcome == "expired":
            return self._error(401, 57, "You are not authorized to perform this operation")
        return self._error(401, 14, "Invalid OAuth token.")

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        if throttle.problem == "day":
            return self._error(429, 45, "You have reached the maximum number of API calls "
                                        "allowed for your plan in a day.")
        return self._error(429, 44, "You have made too many requests continuously. "
                                    "Please try again after some time.")

    def server_error(self, status: int) -> Response:
        return self._error(status, 1000, "Internal error")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "api_domain": "https://www.zohoapis.com", "token_type": "Bearer",
                "expires_in": pair.expires_in}

    async def _token_endpoint(self, request: Request) -> Response:
        response = await super()._token_endpoint(request)
        if response.status_code == 200:  # refresh answers omit refresh_token (no rotation)
            import json

            payload = json.loads(bytes(response.body))
            payload.pop("refresh_token", None)
            return JSONResponse(payload)
        return response

    # ------------------------------------------------------------------ pipeline

    def routes(self) -> list[BaseRoute]:
        r = self._route
        return [
            r("/contacts", {"PUT": self._upsert("contact"), "POST": self._create("contact")}),
            r("/contacts/{id}", {"GET": self._get("contact")}),
            r("/contacts/{id}/inactive", {"POST": self._contact_status("inactive")}),
            r("/contacts/{id}/active", {"POST": self._contact_status("active")}),
            r("/invoices", {"PUT": self._upsert("invoice"), "POST": self._create("invoice"),
                            "GET": self._list_invoices}),
            r("/invoices/{id}/payments", {"GET": self._invoice_payments}),
            r("/invoices/{id}", {"GET": self._get("invoice")}),
            r("/invoices/{id}/status/void", {"POST": self._void("invoice")}),
            r("/invoices/{id}/status/sent", {"POST": self._mark_sent}),
            r("/invoices/{id}/creditsapplied", {"GET": self._credits_applied}),
            r("/creditnotes", {"PUT": self._upsert("creditnote"),
                               "POST": self._create("creditnote")}),
            r("/creditnotes/{id}", {"GET": self._get("creditnote")}),
            r("/creditnotes/{id}/status/void", {"POST": self._void("creditnote")}),
            r("/creditnotes/{id}/invoices", {"POST": self._apply_credit}),
            r("/creditnotes/{id}/refunds", {"GET": self._list_refunds("creditnote"),
                                            "POST": self._refund("creditnote")}),
            r("/customerpayments", {"PUT": self._upsert("payment"),
                                    "POST": self._create("payment")}),
            r("/customerpayments/{id}", {"GET": self._get("payment"),
                                         "PUT": self._update("payment"),
                                         "DELETE": self._delete_payment}),
            r("/customerpayments/{id}/refunds", {"GET": self._list_refunds("payment"),
                                                 "POST": self._refund("payment")}),
        ]

    Handler = Callable[[Org, dict[str, str], Any, Request], tuple[int, dict[str, Any]]]

    def _route(self, path: str, handlers: dict[str, Handler]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await self._api(request, handlers[request.method])
        return Route(BASE + path, endpoint, methods=list(handlers))

    async def _api(self, request: Request, handler: Handler) -> Response:
        org_id = request.query_params.get("organization_id", "")
        if not org_id.isdigit():
            return self._error(400, 6041, "Invalid value passed for organization_id")
        raw = await request.body()
        body = await read_json(request)
        write = request.method != "GET"
        scope = dict(request.scope)
        auth = request.headers.get("authorization", "")
        token = auth[len("Zoho-oauthtoken "):].strip() if auth.startswith(
            "Zoho-oauthtoken ") else ""
        scope["headers"] = [(k, v) for k, v in request.scope["headers"]
                            if k != b"authorization"] + [(b"authorization",
                                                          f"Bearer {token}".encode())]
        bearer_request = Request(scope, request.receive)

        def run() -> Response:
            if write and raw and body is None:
                return self._error(400, 4, "Invalid JSON in request body")
            try:
                status, payload = handler(self.org(org_id), dict(request.path_params),
                                          body if isinstance(body, dict) else {}, request)
            except ZohoError as err:
                return self._error(err.status, err.code, err.message)
            return JSONResponse(payload, status_code=status)

        return await self.guarded(bearer_request, org_id, run, write=write)

    # ------------------------------------------------------------------ helpers

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%S%z")

    @staticmethod
    def _store(org: Org, kind: str) -> dict[str, dict[str, Any]]:
        return {"contact": org.contacts, "invoice": org.invoices,
                "creditnote": org.creditnotes, "payment": org.payments}[kind]

    @staticmethod
    def _label(kind: str) -> str:
        return {"contact": "Contact", "invoice": "Invoice", "creditnote": "Credit Note",
                "payment": "Payment"}[kind]

    def _find(self, org: Org, kind: str, ident: str) -> dict[str, Any]:
        record = self._store(org, kind).get(ident)
        if record is None:
            raise _missing(self._label(kind))
        return record

    @staticmethod
    def _check_active(org: Org, contact_id: str) -> None:
        contact = org.contacts[contact_id]
        if contact["status"] != "active":
            raise ZohoError(400, 3004, f"The customer {contact['contact_name']} is inactive. "
                                       "Mark the customer as active to create transactions.")

    def _check_lock(self, org: Org, day: date) -> None:
        if org.lock_date is not None and day <= org.lock_date:
            raise ZohoError(400, 4000, "You cannot create or modify transactions dated on or "
                                       f"before the transaction lock date {org.lock_date}.")

    def _envelope(self, kind: str, record: dict[str, Any], message: str) -> dict[str, Any]:
        return {"code": 0, "message": message, kind: self.public(record)}

    @staticmethod
    def public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ generic endpoints

    def _get(self, kind: str) -> Handler:
        def handle(org: Org, params: dict[str, str], _: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            return 200, self._envelope(kind, self._find(org, kind, params["id"]), "success")
        return handle

    def _create(self, kind: str) -> Handler:
        def handle(org: Org, _: dict[str, str], body: Any, request: Request
                   ) -> tuple[int, dict[str, Any]]:
            ignore = request.query_params.get("ignore_auto_number_generation") == "true"
            record = self._save(org, kind, None, body, unique=None, keep_number=ignore)
            return 201, self._envelope(kind, record, f"The {self._label(kind).lower()} has "
                                                     "been created.")
        return handle

    def _update(self, kind: str) -> Handler:
        def handle(org: Org, params: dict[str, str], body: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            existing = self._find(org, kind, params["id"])
            record = self._save(org, kind, existing, body, unique=None, keep_number=True)
            return 200, self._envelope(kind, record, f"{self._label(kind)} information has "
                                                     "been updated.")
        return handle

    def _list_invoices(self, org: Org, _: dict[str, str], __: Any, request: Request
                       ) -> tuple[int, dict[str, Any]]:
        wanted = request.query_params.get("invoice_number")
        found = [self.public(i) for i in org.invoices.values()
                 if wanted is None or i["invoice_number"] == wanted]
        return 200, {"code": 0, "message": "success", "invoices": found,
                     "page_context": {"page": 1, "per_page": 200, "has_more_page": False}}

    def _invoice_payments(self, org: Org, params: dict[str, str], _: Any, __: Request
                          ) -> tuple[int, dict[str, Any]]:
        invoice = self._find(org, "invoice", params["id"])
        found = [{"payment_id": p["payment_id"], "payment_number": p["payment_number"],
                  "invoice_id": invoice["invoice_id"], "payment_mode": p["payment_mode"],
                  "date": p["date"], "reference_number": p["reference_number"],
                  "amount": a["amount_applied"]}
                 for p in org.payments.values() for a in p["invoices"]
                 if a["invoice_id"] == invoice["invoice_id"]]
        return 200, {"code": 0, "message": "success", "payments": found}

    def _upsert(self, kind: str) -> Handler:
        def handle(org: Org, _: dict[str, str], body: Any, request: Request
                   ) -> tuple[int, dict[str, Any]]:
            key = request.headers.get("x-unique-identifier-key", "")
            value = request.headers.get("x-unique-identifier-value", "")
            upsert = request.headers.get("x-upsert", "false").lower() == "true"
            if key not in org.unique_fields:
                raise _invalid("Invalid value passed for X-Unique-Identifier-Key: no unique "
                               f"custom field {key!r} is configured")
            if not value:
                raise _invalid("Invalid value passed for X-Unique-Identifier-Value")
            existing = next((r for r in self._store(org, kind).values()
                             if _unique_value(r, key) == value), None)
            if existing is None and not upsert:
                raise _missing(self._label(kind))
            record = self._save(org, kind, existing, body, unique=(key, value),
                                keep_number=True)
            verb = "updated" if existing is not None else "created"
            return 200, self._envelope(kind, record, f"{self._label(kind)} information has "
                                                     f"been {verb}.")
        return handle

    def _save(self, org: Org, kind: str, existing: dict[str, Any] | None, body: dict[str, Any],
              *, unique: tuple[str, str] | None, keep_number: bool) -> dict[str, Any]:
        saver = {"contact": self._save_contact, "invoice": self._save_document,
                 "creditnote": self._save_document, "payment": self._save_payment}[kind]
        record = saver(org, kind, existing, body, keep_number)
        # Omitted custom fields keep their values on an update.
        fields = [cf for cf in body.get("custom_fields", record.get("custom_fields", []))
                  if isinstance(cf, dict)]
        if unique is not None:
            fields = [cf for cf in fields if cf.get("api_name") != unique[0]]
            fields.append({"api_name": unique[0], "value": unique[1]})
        for cf in fields:
            if cf.get("api_name") in org.unique_fields:
                clash = next((r for r in self._store(org, kind).values()
                              if r is not record and _unique_value(r, cf["api_name"])
                              == str(cf.get("value"))), None)
                if clash is not None:
                    raise ZohoError(400, 1001, f"The value {cf.get('value')} already exists "
                                               f"for the unique field {cf['api_name']}.")
        record["custom_fields"] = [{"api_name": cf.get("api_name"),
                                    "value": str(cf.get("value"))} for cf in fields]
        record["last_modified_time"] = self._now()
        return record

    # ------------------------------------------------------------------ contacts

    def _save_contact(self, org: Org, _: str, existing: dict[str, Any] | None,
                      body: dict[str, Any], __: bool) -> dict[str, Any]:
        name = body.get("contact_name") or (existing or {}).get("contact_name")
        if not name:
            raise _invalid("Contact name is mandatory.")
        if len(str(name)) > 200:
            raise _invalid("Contact name cannot exceed 200 characters.")
        clash = next((c for c in org.contacts.values()
                      if c is not existing and c["contact_name"] == name), None)
        if clash is not None:
            raise ZohoError(400, 1001, f"The contact \"{name}\" already exists.")
        record: dict[str, Any] = existing if existing is not None else {
            "contact_id": org.new_id(), "status": "active", "created_time": self._now(),
            "_seq": org.seq}
        code = self._currency(org, body, (existing or {}).get("currency_code"))
        record.update({"contact_name": name, "currency_code": code,
                       "contact_type": body.get("contact_type", "customer")})
        for field in ("company_name", "billing_address", "contact_persons"):
            if field in body:
                record[field] = body[field]
        org.contacts[record["contact_id"]] = record
        return record

    @staticmethod
    def _currency(org: Org, body: dict[str, Any], default: str | None) -> str:
        currency_id = body.get("currency_id")
        if currency_id is None:
            return default or org.base_currency
        if str(currency_id) not in org.currencies:
            raise _invalid("Invalid value passed for currency_id")
        return org.currencies[str(currency_id)]

    def _contact_status(self, status: str) -> Handler:
        def handle(org: Org, params: dict[str, str], _: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            self._find(org, "contact", params["id"])["status"] = status
            return 200, {"code": 0, "message": f"The contact has been marked as {status}."}
        return handle

    # ------------------------------------------------------------------ invoices & credit notes

    def _lines(self, org: Org, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Decimal,
                                                               Decimal, Decimal]:
        raw_lines = body.get("line_items")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _invalid("Line items are mandatory.")
        lines, subtotal = [], Decimal(0)
        for index, raw in enumerate(raw_lines, start=1):
            item_id = str(raw.get("item_id", ""))
            if item_id not in org.items:
                raise _invalid(f"Invalid value passed for item_id in line {index}")
            rate, qty = _dec(raw.get("rate", 0), "rate"), _dec(raw.get("quantity", 1),
                                                               "quantity")
            if rate < 0 or qty <= 0:
                raise _invalid("Line item rate cannot be negative and quantity must be "
                               "positive.")
            tax_id = raw.get("tax_id")
            if tax_id is not None and str(tax_id) not in org.taxes:
                raise _invalid("Invalid value passed for tax_id")
            total = _cents(rate * qty)
            subtotal += total
            lines.append({"line_item_id": org.new_id(), "item_id": item_id,
                          "name": raw.get("name", org.items[item_id]),
                          "description": raw.get("description", ""), "rate": num(rate),
                          "quantity": float(qty), "item_total": num(total),
                          "tax_id": str(tax_id) if tax_id else "",
                          "tax_percentage": float(org.taxes.get(str(tax_id), Decimal(0))),
                          "item_order": index, "_total": total})
        discount = _cents(_dec(body.get("discount", 0), "discount"))
        if discount < 0 or discount > subtotal:
            raise _invalid("Discount cannot be negative or exceed the sub total.")
        before = bool(body.get("is_discount_before_tax")) and discount > 0
        tax, allotted = Decimal(0), Decimal(0)
        per_tax: dict[str, Decimal] = {}
        for index, line in enumerate(lines):
            base = line["_total"]
            if before:
                share = (discount - allotted if index == len(lines) - 1
                         else _cents(discount * base / subtotal))
                allotted += share
                base -= share
            exact = base * Decimal(str(line["tax_percentage"])) / 100
            if org.tax_rounding == "entity_level":
                per_tax[line["tax_id"]] = per_tax.get(line["tax_id"], Decimal(0)) + exact
            else:
                tax += _cents(exact)
        tax += sum((_cents(amount) for amount in per_tax.values()), Decimal(0))
        for line in lines:
            del line["_total"]
        return lines, subtotal, discount, tax

    def _save_document(self, org: Org, kind: str, existing: dict[str, Any] | None,
                       body: dict[str, Any], keep_number: bool) -> dict[str, Any]:
        store = self._store(org, kind)
        label = self._label(kind)
        if existing is not None and existing["status"] == "void":
            raise _invalid(f"Voided {label.lower()}s cannot be edited.")
        contact_id = str(body.get("customer_id", ""))
        if not contact_id:
            raise _invalid("Customer is mandatory.")
        if contact_id not in org.contacts:
            raise _missing("Contact")
        self._check_active(org, contact_id)
        if kind == "creditnote" and not body.get("creditnote_number") and existing is None:
            raise _invalid("Credit Note# is mandatory.")
        day = _date(body.get("date", self.clock.now().date().isoformat()), "date")
        self._check_lock(org, day)
        if existing is not None:
            self._check_lock(org, date.fromisoformat(existing["date"]))
        if body.get("tax_exemption_id") and body["tax_exemption_id"] not in org.exemptions:
            raise _invalid("Invalid value passed for tax_exemption_id")
        contact_currency = org.contacts[contact_id]["currency_code"]
        code = self._currency(org, body, contact_currency)
        if code != contact_currency:
            raise _invalid(f"The currency of the transaction ({code}) must be the customer's "
                           f"currency ({contact_currency}).")
        lines, subtotal, discount, tax = self._lines(org, body)
        if body.get("tax_exemption_id"):
            tax = Decimal(0)
        # Zoho applies an invoice's ``adjustment`` (either sign) after tax; credit notes
        # have no such field in Zoho's request schema, so one sent there is ignored.
        adjustment = (_cents(_dec(body.get("adjustment", 0), "adjustment"))
                      if kind == "invoice" else Decimal(0))
        total = subtotal - discount + tax + adjustment
        if total < 0:
            raise _invalid(f"The {self._label(kind).lower()} total cannot be negative.")
        number_field = "invoice_number" if kind == "invoice" else "creditnote_number"
        id_field = "invoice_id" if kind == "invoice" else "creditnote_id"
        number = body.get(number_field) if keep_number else None
        if existing is not None and not number:
            number = existing[number_field]
        if not number:
            org.numbers[kind] += 1
            number = f"{'INV' if kind == 'invoice' else 'CN'}-{org.numbers[kind]:06d}"
        clash = next((d for d in store.values()
                      if d is not existing and d[number_field] == number), None)
        if clash is not None:
            raise ZohoError(400, 1001, f"{label} number {number} already exists. Please enter "
                                       "a unique number.")
        settled = Decimal(0) if existing is None else money(existing["total"]) - money(
            existing["balance"])
        if total < settled:
            raise _invalid(f"The {label.lower()} total cannot be less than the amount already "
                           "paid or credited.")
        record: dict[str, Any] = existing if existing is not None else {
            id_field: org.new_id(), "status": "draft" if kind == "invoice" else "open",
            "created_time": self._now(), "_seq": org.seq}
        record.update({
            number_field: number, "customer_id": contact_id,
            "customer_name": org.contacts[contact_id]["contact_name"],
            "reference_number": str(body.get("reference_number", "")), "date": day.isoformat(),
            "currency_code": code, "line_items": lines, "sub_total": num(subtotal),
            "discount": num(discount), "discount_type": body.get("discount_type",
                                                                 "entity_level"),
            "is_discount_before_tax": bool(body.get("is_discount_before_tax")),
            "is_inclusive_tax": bool(body.get("is_inclusive_tax")),
            "tax_total": num(tax), "total": num(total), "balance": num(total - settled)})
        if kind == "invoice":
            record["adjustment"] = num(adjustment)
            record["adjustment_description"] = str(body.get("adjustment_description", ""))
        if kind == "invoice":
            record["due_date"] = str(body.get("due_date", day.isoformat()))
        store[record[id_field]] = record
        self._settle(record, kind)
        return record

    @staticmethod
    def _settle(record: dict[str, Any], kind: str) -> None:
        if record["status"] == "void":
            return
        balance = money(record["balance"])
        if kind == "invoice":
            if record["status"] == "draft":
                return
            paid = balance < money(record["total"])
            record["status"] = ("paid" if balance == 0 else
                                "partially_paid" if paid else "sent")
        else:
            record["status"] = "closed" if balance == 0 else "open"

    def _mark_sent(self, org: Org, params: dict[str, str], _: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
        invoice = self._find(org, "invoice", params["id"])
        if invoice["status"] == "void":
            raise _invalid("Voided invoices cannot be marked as sent.")
        if invoice["status"] == "draft":
            invoice["status"] = "sent"
            self._settle(invoice, "invoice")
        return 200, {"code": 0, "message": "Invoice status has been changed to Sent."}

    def _void(self, kind: str) -> Handler:
        def handle(org: Org, params: dict[str, str], _: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            record = self._find(org, kind, params["id"])
            self._check_lock(org, date.fromisoformat(record["date"]))
            if kind == "invoice":
                for payment in org.payments.values():
                    payment["invoices"] = [a for a in payment["invoices"]
                                           if a["invoice_id"] != record["invoice_id"]]
                    self._payment_totals(payment)
                for key, credit in list(org.credits_applied.items()):
                    if credit["invoice_id"] == record["invoice_id"]:
                        note = org.creditnotes[credit["creditnote_id"]]
                        note["balance"] = num(money(note["balance"]) + money(
                            credit["amount_applied"]))
                        self._settle(note, "creditnote")
                        del org.credits_applied[key]
            else:
                if any(c["creditnote_id"] == record["creditnote_id"]
                       for c in org.credits_applied.values()):
                    raise _invalid("Credit notes applied to invoices cannot be voided.")
            record["status"] = "void"
            record["balance"] = num(Decimal(0))
            record["last_modified_time"] = self._now()
            return 200, {"code": 0, "message": f"{self._label(kind)} status has been changed "
                                               "to Void."}
        return handle

    def _credits_applied(self, org: Org, params: dict[str, str], _: Any, __: Request
                         ) -> tuple[int, dict[str, Any]]:
        self._find(org, "invoice", params["id"])
        credits = [{"creditnote_id": c["creditnote_id"], "creditnotes_invoice_id": key,
                    "creditnotes_number": org.creditnotes[c["creditnote_id"]][
                        "creditnote_number"],
                    "credited_date": c["date"], "amount_applied": c["amount_applied"]}
                   for key, c in org.credits_applied.items() if c["invoice_id"] == params["id"]]
        return 200, {"code": 0, "message": "success", "credits": credits}

    def _apply_credit(self, org: Org, params: dict[str, str], body: Any, __: Request
                      ) -> tuple[int, dict[str, Any]]:
        note = self._find(org, "creditnote", params["id"])
        if note["status"] == "void":
            raise _invalid("Voided credit notes cannot be applied.")
        entries = body.get("invoices") or []
        remaining = money(note["balance"])
        for entry in entries:
            invoice = self._find(org, "invoice", str(entry.get("invoice_id", "")))
            value = _cents(_dec(entry.get("amount_applied", 0), "amount_applied"))
            if invoice["status"] in ("void", "draft") or value <= 0:
                raise _invalid("Credits can be applied only to open invoices.")
            if value > remaining or value > money(invoice["balance"]):
                raise _invalid("Amount applied exceeds the available credits or the invoice "
                               "balance.")
            remaining -= value
            invoice["balance"] = num(money(invoice["balance"]) - value)
            self._settle(invoice, "invoice")
            org.credits_applied[org.new_id()] = {
                "creditnote_id": note["creditnote_id"], "invoice_id": invoice["invoice_id"],
                "amount_applied": num(value), "date": self.clock.now().date().isoformat()}
        note["balance"] = num(remaining)
        self._settle(note, "creditnote")
        return 200, {"code": 0, "message": "Credits have been applied to the invoice(s)."}

    # ------------------------------------------------------------------ payments & refunds

    def _payment_totals(self, payment: dict[str, Any]) -> None:
        applied = sum((money(a["amount_applied"]) for a in payment["invoices"]), Decimal(0))
        payment["unused_amount"] = num(money(payment["amount"]) - applied - money(
            payment["_refunded"]))

    def _save_payment(self, org: Org, _: str, existing: dict[str, Any] | None,
                      body: dict[str, Any], __: bool) -> dict[str, Any]:
        for field in ("customer_id", "payment_mode", "amount"):
            if body.get(field) in (None, ""):
                raise _invalid(f"Invalid value passed for {field}")
        contact_id = str(body["customer_id"])
        if contact_id not in org.contacts:
            raise _missing("Contact")
        self._check_active(org, contact_id)
        if body.get("account_id") and str(body["account_id"]) not in org.accounts:
            raise _invalid("Invalid value passed for account_id")
        day = _date(body.get("date", self.clock.now().date().isoformat()), "date")
        self._check_lock(org, day)
        total = _cents(_dec(body["amount"], "amount"))
        if total <= 0:
            raise _invalid("Payment amount should be greater than zero.")
        previous = {a["invoice_id"]: money(a["amount_applied"])
                    for a in (existing or {}).get("invoices", [])}
        applications, applied = [], Decimal(0)
        for entry in body.get("invoices") or []:
            invoice = self._find(org, "invoice", str(entry.get("invoice_id", "")))
            value = _cents(_dec(entry.get("amount_applied", 0), "amount_applied"))
            available = money(invoice["balance"]) + previous.get(invoice["invoice_id"],
                                                                  Decimal(0))
            if invoice["status"] == "void":
                raise _invalid(f"Payments cannot be applied to the voided invoice "
                               f"{invoice['invoice_number']}.")
            if invoice["customer_id"] != contact_id:
                raise _invalid("The invoice belongs to a different customer.")
            if value > available:
                raise _invalid(f"Amount applied to {invoice['invoice_number']} exceeds its "
                               "balance due.")
            applications.append((invoice, value))
            applied += value
        refunded = money((existing or {}).get("_refunded", 0))
        if applied + refunded > total:
            raise _invalid("The amount applied to invoices exceeds the payment amount.")
        for invoice_id, value in previous.items():  # undo the old applications
            invoice = org.invoices[invoice_id]
            invoice["balance"] = num(money(invoice["balance"]) + value)
            self._settle(invoice, "invoice")
        record: dict[str, Any] = existing if existing is not None else {
            "payment_id": org.new_id(), "created_time": self._now(), "_seq": org.seq,
            "_refunded": num(Decimal(0))}
        if existing is None:
            org.numbers["payment"] += 1
            record["payment_number"] = str(org.numbers["payment"])
        record.update({"customer_id": contact_id,
                       "customer_name": org.contacts[contact_id]["contact_name"],
                       "payment_mode": str(body["payment_mode"]), "amount": num(total),
                       "date": day.isoformat(),
                       "reference_number": str(body.get("reference_number", "")),
                       "account_id": str(body.get("account_id", "460000000003001")),
                       "bank_charges": num(_cents(_dec(body.get("bank_charges", 0),
                                                       "bank_charges"))),
                       "invoices": []})
        for invoice, value in applications:
            if invoice["status"] == "draft":
                invoice["status"] = "sent"
            invoice["balance"] = num(money(invoice["balance"]) - value)
            self._settle(invoice, "invoice")
            record["invoices"].append({"invoice_id": invoice["invoice_id"],
                                       "invoice_number": invoice["invoice_number"],
                                       "amount_applied": num(value)})
        self._payment_totals(record)
        org.payments[record["payment_id"]] = record
        return record

    def _delete_payment(self, org: Org, params: dict[str, str], _: Any, __: Request
                        ) -> tuple[int, dict[str, Any]]:
        payment = self._find(org, "payment", params["id"])
        self._check_lock(org, date.fromisoformat(payment["date"]))
        if money(payment["_refunded"]) > 0:
            raise _invalid("Payments with refunds cannot be deleted.")
        for application in payment["invoices"]:
            invoice = org.invoices[application["invoice_id"]]
            invoice["balance"] = num(money(invoice["balance"]) + money(
                application["amount_applied"]))
            self._settle(invoice, "invoice")
        del org.payments[payment["payment_id"]]
        return 200, {"code": 0, "message": "The payment has been deleted."}

    def _list_refunds(self, kind: str) -> Handler:
        def handle(org: Org, params: dict[str, str], _: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            self._find(org, kind, params["id"])
            store = org.payment_refunds if kind == "payment" else org.creditnote_refunds
            parent = "payment_id" if kind == "payment" else "creditnote_id"
            key = "payment_refunds" if kind == "payment" else "creditnote_refunds"
            found = [self.public(r) for r in store.values() if r[parent] == params["id"]]
            return 200, {"code": 0, "message": "success", key: found,
                         "page_context": {"page": 1, "per_page": 200, "has_more_page": False}}
        return handle

    def _refund(self, kind: str) -> Handler:
        def handle(org: Org, params: dict[str, str], body: Any, __: Request
                   ) -> tuple[int, dict[str, Any]]:
            parent = self._find(org, kind, params["id"])
            value = _cents(_dec(body.get("amount", 0), "amount"))
            day = _date(body.get("date", ""), "date")
            self._check_lock(org, day)
            account = str(body.get("from_account_id", ""))
            if account not in org.accounts:
                raise _invalid("Invalid value passed for from_account_id")
            if kind == "payment":
                available = money(parent["unused_amount"])
            else:
                if parent["status"] == "void":
                    raise _invalid("Voided credit notes cannot be refunded.")
                available = money(parent["balance"])
            if value <= 0 or value > available:
                raise _invalid("The refund amount exceeds the unused amount available for "
                               "refund.")
            refund = {"date": day.isoformat(), "refund_mode": str(body.get("refund_mode", "")),
                      "reference_number": str(body.get("reference_number", "")),
                      "amount_bcy": num(value), "amount_fcy": num(value),
                      "customer_name": org.contacts[parent["customer_id"]]["contact_name"],
                      "description": str(body.get("description", ""))}
            if kind == "payment":
                refund.update({"payment_refund_id": org.new_id(),
                               "payment_id": parent["payment_id"],
                               "payment_number": parent["payment_number"]})
                parent["_refunded"] = num(money(parent["_refunded"]) + value)
                self._payment_totals(parent)
                org.payment_refunds[refund["payment_refund_id"]] = refund
                return 201, {"code": 0, "message": "The refund information for this payment "
                                                   "has been saved.", "payment_refund": refund}
            refund.update({"creditnote_refund_id": org.new_id(),
                           "creditnote_id": parent["creditnote_id"],
                           "creditnote_number": parent["creditnote_number"]})
            parent["balance"] = num(money(parent["balance"]) - value)
            self._settle(parent, "creditnote")
            org.creditnote_refunds[refund["creditnote_refund_id"]] = refund
            return 201, {"code": 0, "message": "The refund information has been saved.",
                         "creditnote_refund": refund}
        return handle

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        org = self.org(tenant)
        documents: list[DocumentSummary] = []
        for store, kind, id_field, number_field in (
                (org.invoices, "invoice", "invoice_id", "invoice_number"),
                (org.creditnotes, "credit_note", "creditnote_id", "creditnote_number")):
            for doc in store.values():
                status = "VOIDED" if doc["status"] == "void" else doc["status"].upper()
                documents.append(DocumentSummary(
                    kind, doc[id_field], doc[number_field],  # type: ignore[arg-type]
                    _unique_value(doc, UNIQUE_FIELD) or doc["reference_number"] or None,
                    doc["customer_id"], status, money(doc["total"]), money(doc["balance"]),
                    doc["date"], doc["_seq"]))
        payments = [PaymentSummary(p["payment_id"], p["customer_id"], money(p["amount"]),
                                   money(p["unused_amount"]), "ACTIVE", p["date"],
                                   p["reference_number"] or None, p["_seq"])
                    for p in org.payments.values()]
        applications = [Application("payment", p["payment_id"], a["invoice_id"],
                                    money(a["amount_applied"]))
                        for p in org.payments.values() for a in p["invoices"]]
        applications += [Application("credit_note", c["creditnote_id"], c["invoice_id"],
                                     money(c["amount_applied"]))
                         for c in org.credits_applied.values()]
        customers = [CustomerSummary(c["contact_id"], c["contact_name"], c["status"] == "active")
                     for c in org.contacts.values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)
