"""Xero Accounting API 2.0 sandbox.

Reproduces what a Xero sink must cope with (shared/research/platforms-A.md
section 2): the ``xero-tenant-id`` header, array-wrapped bodies, PUT = create /
POST = create-or-update, ``summarizeErrors=false`` per-element errors, the
``ValidationException`` shape, the ``Idempotency-Key`` header, per-tenant
limits (60/min, 5 concurrent, 5000/day) with ``Retry-After`` and
``X-Rate-Limit-Problem``, invoice status rules (no edits once PAID/VOIDED, void
only after payments are removed), credit-note allocations, ``where`` and
``If-Modified-Since`` lookups, OAuth2 with rotating refresh tokens.

Field names follow ``shared/specs/xero/xero_accounting.yaml``; the tests
validate responses against its component schemas.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sinks.sandbox.core import (
    Application,
    Clock,
    CustomerSummary,
    DocumentSummary,
    IdempotencyStore,
    PaymentSummary,
    Sandbox,
    Throttle,
    TokenPair,
    Window,
    build_report,
    money,
    num,
    read_json,
    replay,
)
from sinks.sandbox.xero_where import WhereError, compile_where

NAMESPACE = uuid.UUID("6f1c5d0e-8a8e-4d0c-9c57-1e0b7f6a9a01")
IDEMPOTENCY_KEY_MAX = 128
PAGE_SIZE = 100
EDITABLE = ("DRAFT", "SUBMITTED", "AUTHORISED")
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")

MSG_NOT_VALID_STATUS = "Invoice not of valid status for modification"
MSG_HAS_PAYMENTS = ("This document cannot be edited as it has a payment or credit note "
                    "allocated to it.")


class Invalid(Exception):
    """Validation errors for one element of a request."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


def msdate(moment: datetime | date) -> str:
    """Xero's WCF JSON date, e.g. ``/Date(1552262400000+0000)/``."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def _parse_date(raw: Any, field_name: str) -> date:
    text = str(raw)
    if text.startswith("/Date("):
        millis = int(text[6:].split("+")[0].split(")")[0])
        return datetime.fromtimestamp(millis / 1000, UTC).date()
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise Invalid(f"{field_name} '{raw}' is not a valid date") from exc


def _parse_since(raw: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Org:
    """One Xero organisation (tenant): its documents plus seeded settings."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.contacts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.allocations: dict[str, dict[str, Any]] = {}
        #: RECEIVE-OVERPAYMENT bank transactions and the overpayments (customer credit)
        #: they create; overpayment allocations to invoices are kept apart from credit
        #: notes' (``allocations``).
        self.bank_transactions: dict[str, dict[str, Any]] = {}
        self.overpayments: dict[str, dict[str, Any]] = {}
        self.overpayment_allocations: dict[str, dict[str, Any]] = {}
        self.lock_date: date | None = None
        self.counter = 0
        self.numbers = {"INV": 0, "CN": 0}
        self.tax_rates = {
            "OUTPUT": {"Name": "GST on Income", "TaxType": "OUTPUT", "EffectiveRate": 15.0},
            "NONE": {"Name": "No GST", "TaxType": "NONE", "EffectiveRate": 0.0},
            "EXEMPTOUTPUT": {"Name": "Zero Rated", "TaxType": "EXEMPTOUTPUT",
                             "EffectiveRate": 0.0},
        }
        for rate in self.tax_rates.values():
            rate.update({"Status": "ACTIVE", "CanApplyToRevenue": True,
                         "DisplayTaxRate": rate["EffectiveRate"], "ReportTaxType": "OUTPUT"})
        self.accounts = {}
        for code, name, kind, klass, payments in (
                ("090", "Business Bank Account", "BANK", "ASSET", False),
                ("200", "Sales", "REVENUE", "REVENUE", False),
                ("260", "Other Revenue", "REVENUE", "REVENUE", False),
                ("610", "Accounts Receivable", "CURRENT", "ASSET", False),
                ("880", "Owner Drawings", "EQUITY", "EQUITY", True)):
            self.accounts[code] = {"AccountID": self.new_id("account"), "Code": code,
                                   "Name": name, "Type": kind, "Class": klass,
                                   "Status": "ACTIVE", "EnablePaymentsToAccount": payments,
                                   "TaxType": "NONE" if kind != "REVENUE" else "OUTPUT"}
            if kind == "BANK":
                self.accounts[code]["BankAccountType"] = "BANK"

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(NAMESPACE, f"{self.tenant}:{kind}:{self.counter}"))

    def account(self, ref: Any) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            return None
        if ref.get("Code") is not None:
            return self.accounts.get(str(ref["Code"]))
        return next((a for a in self.accounts.values() if a["AccountID"] == ref.get("AccountID")),
                    None)


class XeroSandbox(Sandbox):
    """Stateful Xero Accounting API simulator; see the module docstring."""

    platform = "xero"
    token_path = "/connect/token"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 60,
                 per_day: int = 5000, max_concurrent: int = 5, access_lifetime: int = 1800,
                 idempotency_window: int = 24 * 3600, refresh_grace_seconds: int = 0) -> None:
        self.orgs: dict[str, Org] = {}
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute),
                                               Window("day", 86400, per_day)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=idempotency_window,
                         refresh_grace_seconds=refresh_grace_seconds)
        self.idempotency = IdempotencyStore(self.clock, idempotency_window)

    # ------------------------------------------------------------------ state

    def org(self, tenant: str) -> Org:
        if tenant not in self.orgs:
            self.orgs[tenant] = Org(tenant)
        return self.orgs[tenant]

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.org(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        contact = self.org(tenant).contacts.get(customer_id)
        if contact is None:
            raise KeyError(f"no contact {customer_id} in tenant {tenant}")
        contact["ContactStatus"] = "ARCHIVED"
        contact["_updated"] = self.clock.now()

    # ------------------------------------------------------------------ error shapes

    def _problem(self, status: int, title: str, detail: str) -> JSONResponse:
        return JSONResponse({"Type": None, "Title": title, "Status": status, "Detail": detail,
                             "Instance": str(uuid.uuid5(NAMESPACE, f"{self.clock.now()}")),
                             "Extensions": {}}, status_code=status)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
        if outcome == "expired":
            return self._problem(401, "Unauthorized", "TokenExpired: token expired")
        return self._problem(401, "Unauthorized", "AuthenticationUnsuccessful")

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        headers = {"X-Rate-Limit-Problem": throttle.problem}
        if throttle.retry_after is not None:
            headers["Retry-After"] = str(throttle.retry_after)
        response = self._problem(429, "Too Many Requests",
                                 f"Rate limit exceeded: {throttle.problem} limit")
        response.headers.update(headers)
        return response

    def server_error(self, status: int) -> Response:
        return self._problem(status, "An error occurred",
                             "An error occurred in Xero. Check the API Status page for "
                             "current service status.")

    def decorate(self, tenant: str, response: Response) -> Response:
        remaining = self.limiter.remaining(tenant)
        response.headers["X-MinLimit-Remaining"] = str(max(0, remaining["minute"]))
        response.headers["X-DayLimit-Remaining"] = str(max(0, remaining["day"]))
        return response

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "expires_in": pair.expires_in, "token_type": "Bearer",
                "scope": "offline_access accounting.transactions accounting.contacts "
                         "accounting.settings"}

    def _envelope(self, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Id": str(uuid.uuid5(NAMESPACE, f"resp:{self.clock.now()}:{key}")),
                "Status": "OK", "ProviderName": "ledgerstream sandbox",
                "DateTimeUTC": msdate(self.clock.now()), key: items}

    def _validation_exception(self, elements: list[dict[str, Any]],
                              message: str = "A validation exception occurred") -> JSONResponse:
        return JSONResponse({"ErrorNumber": 10, "Type": "ValidationException",
                             "Message": message, "Elements": elements}, status_code=400)

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        base = "/api.xro/2.0"
        return [
            Route(base + "/Contacts", self._collection("Contacts"), methods=["GET", "PUT", "POST"]),
            Route(base + "/Contacts/{ident}", self._single("Contacts"), methods=["GET", "POST"]),
            Route(base + "/Invoices", self._collection("Invoices"), methods=["GET", "PUT", "POST"]),
            Route(base + "/Invoices/{ident}", self._single("Invoices"), methods=["GET", "POST"]),
            Route(base + "/CreditNotes", self._collection("CreditNotes"),
                  methods=["GET", "PUT", "POST"]),
            Route(base + "/CreditNotes/{ident}/Allocations", self._allocations,
                  methods=["PUT"]),
            Route(base + "/CreditNotes/{ident}", self._single("CreditNotes"),
                  methods=["GET", "POST"]),
            Route(base + "/BankTransactions", self._collection("BankTransactions"),
                  methods=["GET", "PUT", "POST"]),
            Route(base + "/BankTransactions/{ident}", self._single("BankTransactions"),
                  methods=["GET", "POST"]),
            Route(base + "/Overpayments", self._collection("Overpayments"), methods=["GET"]),
            Route(base + "/Overpayments/{ident}/Allocations", self._allocations,
                  methods=["PUT"]),
            Route(base + "/Overpayments/{ident}", self._single("Overpayments"),
                  methods=["GET"]),
            Route(base + "/Payments", self._collection("Payments"), methods=["GET", "PUT", "POST"]),
            Route(base + "/Payments/{ident}", self._single("Payments"), methods=["GET", "POST"]),
            Route(base + "/TaxRates", self._settings("TaxRates"), methods=["GET"]),
            Route(base + "/Accounts", self._settings("Accounts"), methods=["GET"]),
        ]

    async def _api(self, request: Request, handle: Callable[[str, Any], Response]) -> Response:
        """Common wrapper: tenant header, idempotency key, pipeline."""
        tenant = request.headers.get("xero-tenant-id", "")
        if not tenant:
            return self._problem(403, "Forbidden", "AuthenticationUnsuccessful: "
                                 "missing xero-tenant-id header")
        raw = await request.body()
        body = await read_json(request)
        write = request.method in ("PUT", "POST")
        key = request.headers.get("idempotency-key") if write else None
        fingerprint = IdempotencyStore.fingerprint(request.method, request.url.path,
                                                   str(request.query_params), raw)

        def run() -> Response:
            if key is not None:
                if len(key) > IDEMPOTENCY_KEY_MAX:
                    return self._validation_exception(
                        [], f"Idempotency-Key exceeds {IDEMPOTENCY_KEY_MAX} characters")
                stored = self.idempotency.get(tenant, key)
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        return self._validation_exception(
                            [], "The Idempotency-Key has already been used for a different "
                                "request")
                    return replay(stored)
            if write and raw and body is None:
                return self._validation_exception([], "The request body is not valid JSON")
            response = handle(tenant, body)
            if key is not None and response.status_code < 300:
                self.idempotency.put(tenant, key, fingerprint, response)
            return response

        return await self.guarded(request, tenant, run, write=write)

    def _collection(self, name: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                return await self._api(request, lambda tenant, _: self._list(
                    tenant, name, request))
            summarize = request.query_params.get("summarizeErrors", "true").lower() != "false"
            mode = "create" if request.method == "PUT" else "upsert"
            return await self._api(request, lambda tenant, body: self._write(
                tenant, name, body, mode, summarize, None))
        return endpoint

    def _single(self, name: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            ident = request.path_params["ident"]
            if request.method == "GET":
                return await self._api(request, lambda tenant, _: self._get_one(
                    tenant, name, ident))
            return await self._api(request, lambda tenant, body: self._write(
                tenant, name, body, "update", True, ident))
        return endpoint

    def _settings(self, name: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            def handle(tenant: str, _: Any) -> Response:
                org = self.org(tenant)
                source = org.tax_rates if name == "TaxRates" else org.accounts
                return JSONResponse(self._envelope(name, [dict(v) for v in source.values()]))
            return await self._api(request, handle)
        return endpoint

    # ------------------------------------------------------------------ reads

    def _store(self, org: Org, name: str) -> dict[str, dict[str, Any]]:
        return {"Contacts": org.contacts, "Invoices": org.invoices,
                "CreditNotes": org.credit_notes, "Payments": org.payments,
                "BankTransactions": org.bank_transactions, "Overpayments": org.overpayments}[name]

    def _get_one(self, tenant: str, name: str, ident: str) -> Response:
        org = self.org(tenant)
        store = self._store(org, name)
        record = store.get(ident) or next(
            (r for r in store.values()
             if ident in (r.get("InvoiceNumber"), r.get("CreditNoteNumber"))), None)
        if record is None:
            return self._problem(404, "Not Found", f"The resource {ident} was not found")
        return JSONResponse(self._envelope(name, [self.public(org, name, record)]))

    def _list(self, tenant: str, name: str, request: Request) -> Response:
        org = self.org(tenant)
        params = request.query_params
        records = [self.public(org, name, r) for r in self._store(org, name).values()]
        since_raw = request.headers.get("if-modified-since")
        if since_raw:
            since = _parse_since(since_raw)
            if since is not None:
                internal = self._store(org, name)
                records = [r for r in records if internal[r[_id_field(name)]]["_updated"] > since]
        id_field = _id_field(name)
        filters = {"IDs": id_field, "InvoiceNumbers": "InvoiceNumber", "Statuses": "Status"}
        for param, field_name in filters.items():
            if params.get(param):
                wanted = {v.strip().upper() for v in params[param].split(",")}
                records = [r for r in records if str(r.get(field_name, "")).upper() in wanted]
        if params.get("ContactIDs"):
            wanted = {v.strip() for v in params["ContactIDs"].split(",")}
            records = [r for r in records if r.get("Contact", {}).get("ContactID") in wanted]
        if params.get("where"):
            try:
                predicate = compile_where(params["where"])
            except WhereError as exc:
                return self._validation_exception([], str(exc))
            records = [r for r in records if predicate(r)]
        payload = self._envelope(name, records)
        if params.get("page"):
            page, size = int(params["page"]), int(params.get("pageSize", PAGE_SIZE))
            payload[name] = records[(page - 1) * size: page * size]
            payload["pagination"] = {"page": page, "pageSize": size,
                                     "pageCount": max(1, -(-len(records) // size)),
                                     "itemCount": len(records)}
        return JSONResponse(payload)

    # ------------------------------------------------------------------ writes

    def _write(self, tenant: str, name: str, body: Any, mode: str, summarize: bool,
               ident: str | None) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get(name), list):
            return self._validation_exception(
                [], f"The request body must be an object with a '{name}' array")
        elements: list[dict[str, Any]] = body[name]
        org = self.org(tenant)
        snapshot = self._snapshot(org)
        results: list[dict[str, Any]] = []
        failed = False
        for element in elements:
            try:
                if not isinstance(element, dict):
                    raise Invalid("Each element must be an object")
                record = self._save(org, name, dict(element), mode, ident)
                self._recompute(org)
                results.append(self.public(org, name, record))
            except Invalid as error:
                failed = True
                flag = "HasErrors" if name in ("Invoices", "CreditNotes") else \
                    "HasValidationErrors"
                results.append({**(element if isinstance(element, dict) else {}), flag: True,
                                "ValidationErrors": [{"Message": m} for m in error.messages]})
        if failed and summarize:
            self._restore(org, snapshot)
            return self._validation_exception(results)
        return JSONResponse(self._envelope(name, results))

    @staticmethod
    def _snapshot(org: Org) -> dict[str, Any]:
        return copy.deepcopy({k: getattr(org, k) for k in (
            "contacts", "invoices", "credit_notes", "payments", "allocations",
            "bank_transactions", "overpayments", "overpayment_allocations", "counter",
            "numbers")})

    @staticmethod
    def _restore(org: Org, snapshot: dict[str, Any]) -> None:
        for key, value in snapshot.items():
            setattr(org, key, value)

    def _save(self, org: Org, name: str, element: dict[str, Any], mode: str,
              ident: str | None) -> dict[str, Any]:
        store = self._store(org, name)
        id_field = _id_field(name)
        target = ident or element.get(id_field)
        existing = None
        if target:
            existing = store.get(str(target))
            if existing is None:
                raise Invalid(f"{id_field} '{target}' could not be found")
        elif mode == "upsert" and name == "Invoices" and element.get("InvoiceNumber"):
            existing = next((r for r in store.values()
                             if r.get("InvoiceNumber") == element["InvoiceNumber"]), None)
        if existing is not None and mode == "create":
            raise Invalid(f"{id_field} '{target}' already exists; use POST to update")
        handler = {"Contacts": self._save_contact, "Invoices": self._save_document,
                   "CreditNotes": self._save_document, "Payments": self._save_payment,
                   "BankTransactions": self._save_bank_transaction}[name]
        record = handler(org, name, element, existing)
        record["_updated"] = self.clock.now()
        if existing is None:
            record["_seq"] = org.counter
            store[record[id_field]] = record
        return record

    def _check_lock(self, org: Org, day: date) -> None:
        if org.lock_date is not None and day <= org.lock_date:
            raise Invalid(f"The document date cannot be before the period lock date of "
                          f"{org.lock_date.isoformat()}")

    def _save_contact(self, org: Org, name: str, element: dict[str, Any],
                      existing: dict[str, Any] | None) -> dict[str, Any]:
        record = {**(existing or {}), **element}
        contact_name = str(record.get("Name") or "").strip()
        if not contact_name:
            raise Invalid("The contact name must be specified")
        if len(contact_name) > 255:
            raise Invalid("The contact name must not exceed 255 characters")
        for other in org.contacts.values():
            if other is not existing and other.get("ContactStatus") == "ACTIVE" and \
                    other["Name"].lower() == contact_name.lower():
                raise Invalid(f"The contact name {contact_name} is already assigned to another "
                              f"contact. The contact name must be unique across all active "
                              f"contacts.")
        record["Name"] = contact_name
        record.setdefault("ContactStatus", "ACTIVE")
        record.setdefault("IsCustomer", True)
        record.setdefault("IsSupplier", False)
        if existing is None:
            record["ContactID"] = org.new_id("contact")
        else:
            existing.update(record)
            return existing
        return record

    def _resolve_contact(self, org: Org, ref: Any) -> dict[str, Any]:
        if not isinstance(ref, dict) or not (ref.get("ContactID") or ref.get("Name")
                                             or ref.get("ContactNumber")):
            raise Invalid("A Contact must be specified for this type of transaction")
        contact = None
        if ref.get("ContactID"):
            contact = org.contacts.get(str(ref["ContactID"]))
            if contact is None:
                raise Invalid(f"Contact ID {ref['ContactID']} could not be found")
        elif ref.get("ContactNumber"):
            contact = next((c for c in org.contacts.values()
                            if c.get("ContactNumber") == ref["ContactNumber"]), None)
        if contact is None and ref.get("Name"):
            contact = next((c for c in org.contacts.values()
                            if c["Name"].lower() == str(ref["Name"]).lower()), None)
            if contact is None:  # Xero creates a contact named on a document
                contact = self._save_contact(org, "Contacts", {"Name": ref["Name"]}, None)
                contact["_updated"] = self.clock.now()
                contact["_seq"] = org.counter
                org.contacts[contact["ContactID"]] = contact
        if contact is None:
            raise Invalid("A Contact must be specified for this type of transaction")
        if contact.get("ContactStatus") == "ARCHIVED":
            raise Invalid(f"The contact {contact['Name']} has been archived. Restore it "
                          f"before using it on a transaction.")
        return contact

    def _save_document(self, org: Org, name: str, element: dict[str, Any],
                       existing: dict[str, Any] | None) -> dict[str, Any]:
        is_invoice = name == "Invoices"
        number_field = "InvoiceNumber" if is_invoice else "CreditNoteNumber"
        status = element.get("Status")
        if existing is not None:
            current = existing["Status"]
            if current in ("PAID", "VOIDED", "DELETED"):
                raise Invalid(MSG_HAS_PAYMENTS if current == "PAID" else MSG_NOT_VALID_STATUS)
            has_money = money(existing.get("AmountPaid", 0)) + money(
                existing.get("AmountCredited", 0)) > 0 if is_invoice else money(
                existing["Total"]) != money(existing["RemainingCredit"])
            if status == "VOIDED":
                if current != "AUTHORISED":
                    raise Invalid(MSG_NOT_VALID_STATUS)
                if has_money:
                    raise Invalid(MSG_HAS_PAYMENTS)
                self._check_lock(org, date.fromisoformat(existing["_date"]))
                existing.update(Status="VOIDED")
                return existing
            if status == "DELETED":
                if current not in ("DRAFT", "SUBMITTED"):
                    raise Invalid(MSG_NOT_VALID_STATUS)
                existing.update(Status="DELETED")
                return existing
            if has_money and any(k in element for k in ("LineItems", "LineAmountTypes")):
                raise Invalid(MSG_HAS_PAYMENTS)
            if status in EDITABLE and EDITABLE.index(status) < EDITABLE.index(current):
                raise Invalid(MSG_NOT_VALID_STATUS)
            record = {**existing, **element}
        else:
            record = dict(element)
            record.setdefault("Status", "DRAFT")
            if record["Status"] not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
                raise Invalid("Invoice not of valid status for creation" if is_invoice else
                              "Credit note not of valid status for creation")
        expected_type = "ACCREC" if is_invoice else "ACCRECCREDIT"
        if not record.get("Type"):
            raise Invalid(f"{'Invoice' if is_invoice else 'Credit note'} Type must be specified")
        if record["Type"] != expected_type:
            raise Invalid(f"Type {record['Type']} is not supported by this sandbox "
                          f"(sales only: {expected_type})")
        if record["Status"] not in EDITABLE:
            raise Invalid(MSG_NOT_VALID_STATUS)
        contact = self._resolve_contact(org, record.get("Contact"))
        record["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        day = _parse_date(record["Date"], "Date") if record.get("Date") else (
            date.fromisoformat(existing["_date"]) if existing else self.clock.now().date())
        self._check_lock(org, day)
        if existing is not None:
            self._check_lock(org, date.fromisoformat(existing["_date"]))
        record["_date"] = day.isoformat()
        if record.get("DueDate"):
            record["_due"] = _parse_date(record["DueDate"], "DueDate").isoformat()
        if len(str(record.get("Reference") or "")) > 255:
            raise Invalid("Reference must not exceed 255 characters")
        self._compute_lines(org, record)
        number = record.get(number_field)
        if number:
            for other in self._store(org, name).values():
                if other is not existing and other.get(number_field) == number:
                    raise Invalid("Invoice # must be unique." if is_invoice else
                                  "Credit Note Number must be unique.")
        else:
            prefix = "INV" if is_invoice else "CN"
            org.numbers[prefix] += 1
            record[number_field] = f"{prefix}-{org.numbers[prefix]:04d}"
        if existing is None:
            record[_id_field(name)] = org.new_id(name)
            return record
        existing.update(record)
        return existing

    def _compute_lines(self, org: Org, record: dict[str, Any]) -> None:
        """Xero computes LineAmount, TaxAmount, SubTotal, TotalTax and Total."""
        kind = record.setdefault("LineAmountTypes", "Exclusive")
        if kind not in LINE_AMOUNT_TYPES:
            raise Invalid(f"LineAmountTypes '{kind}' is not valid")
        lines = record.get("LineItems") or []
        if not lines and record["Status"] != "DRAFT":
            raise Invalid("A line item must be specified for a document that is not a draft")
        computed, errors = [], []
        subtotal = tax_total = Decimal(0)
        for index, line in enumerate(lines):
            line = dict(line)
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = Decimal(str(line.get("UnitAmount", 0)))
            discount = Decimal(str(line.get("DiscountRate", 0)))
            expected = money(quantity * unit * (1 - discount / 100))
            if line.get("LineAmount") is not None and money(line["LineAmount"]) != expected \
                    and line.get("UnitAmount") is not None:
                errors.append(f"The line total {money(line['LineAmount'])} does not match the "
                              f"expected line total {expected}")
            amount = money(line["LineAmount"]) if line.get("UnitAmount") is None and \
                line.get("LineAmount") is not None else expected
            code = line.get("AccountCode")
            if code is not None and str(code) not in org.accounts:
                errors.append(f"Account code '{code}' is not a valid code for this document.")
            if code is None and record["Status"] != "DRAFT":
                errors.append("An account code must be specified for each line item")
            tax_type = line.get("TaxType") or ("NONE" if kind == "NoTax" else "OUTPUT")
            if tax_type not in org.tax_rates:
                errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be used "
                              f"for this type of transaction.")
                continue
            rate = Decimal(str(org.tax_rates[tax_type]["EffectiveRate"])) / 100
            if kind == "NoTax":
                tax = Decimal(0)
            elif line.get("TaxAmount") is not None:
                tax = money(line["TaxAmount"])
            elif kind == "Exclusive":
                tax = money(amount * rate)
            else:
                tax = money(amount - amount / (1 + rate))
            subtotal += amount - tax if kind == "Inclusive" else amount
            tax_total += tax
            line.update(Quantity=float(quantity), UnitAmount=float(unit), LineAmount=num(amount),
                        TaxAmount=num(tax), TaxType=tax_type,
                        LineItemID=line.get("LineItemID") or str(uuid.uuid5(
                            NAMESPACE, f"{org.tenant}:line:{org.counter}:{index}")))
            computed.append(line)
        if errors:
            raise Invalid(*errors)
        record["LineItems"] = computed
        record["SubTotal"] = num(subtotal)
        record["TotalTax"] = num(tax_total)
        record["Total"] = num(subtotal + tax_total)

    def _save_payment(self, org: Org, name: str, element: dict[str, Any],
                      existing: dict[str, Any] | None) -> dict[str, Any]:
        if existing is not None:
            if element.get("Status") != "DELETED":
                raise Invalid("Payments can only be deleted (Status DELETED), not edited")
            if existing["Status"] == "DELETED":
                raise Invalid("Payment has already been deleted")
            self._check_lock(org, date.fromisoformat(existing["_date"]))
            existing["Status"] = "DELETED"
            return existing
        target, kind = self._payment_target(org, element)
        account = org.account(element.get("Account"))
        if account is None:
            raise Invalid("Account could not be found")
        if account["Type"] != "BANK" and not account["EnablePaymentsToAccount"]:
            raise Invalid("Payments can only be made to BANK accounts or accounts with "
                          "payments enabled")
        if element.get("Amount") is None or money(element["Amount"]) <= 0:
            raise Invalid("Payment amount must be greater than zero")
        amount = money(element["Amount"])
        outstanding = money(target["AmountDue"] if kind == "Invoice"
                            else target["RemainingCredit"])
        if target["Status"] != "AUTHORISED":
            raise Invalid("Payments can only be made against Authorised documents")
        if amount > outstanding:
            raise Invalid("Payment amount exceeds the amount outstanding on this document")
        day = _parse_date(element["Date"], "Date") if element.get("Date") \
            else self.clock.now().date()
        self._check_lock(org, day)
        ref_field, id_field, payment_type = _PAYMENT_TARGETS[kind]
        reference = {id_field: target[id_field]}
        if ref_field:
            reference[ref_field] = target[ref_field]
        return {"PaymentID": org.new_id("payment"), "_date": day.isoformat(),
                "Amount": num(amount), "Reference": element.get("Reference"),
                "IsReconciled": bool(element.get("IsReconciled", False)), "Status": "AUTHORISED",
                "PaymentType": payment_type, kind: reference,
                "Account": {"AccountID": account["AccountID"], "Code": account["Code"]}}

    def _payment_target(self, org: Org, element: dict[str, Any]) -> tuple[dict[str, Any], str]:
        for kind, store, id_field, number_field in (
                ("Invoice", org.invoices, "InvoiceID", "InvoiceNumber"),
                ("CreditNote", org.credit_notes, "CreditNoteID", "CreditNoteNumber")):
            ref = element.get(kind)
            if isinstance(ref, dict):
                found = store.get(str(ref.get(id_field))) or next(
                    (d for d in store.values() if ref.get(number_field)
                     and d.get(number_field) == ref.get(number_field)), None)
                if found is None:
                    raise Invalid(f"{kind} could not be found")
                return found, kind
        ref = element.get("Overpayment")
        if isinstance(ref, dict):  # a refund of a customer's overpayment (money out)
            found = org.overpayments.get(str(ref.get("OverpaymentID")))
            if found is None:
                raise Invalid("Overpayment could not be found")
            return found, "Overpayment"
        raise Invalid("An Invoice, CreditNote or Overpayment must be specified for the payment")

    # ------------------------------------------------------------------ bank transactions

    def _save_bank_transaction(self, org: Org, name: str, element: dict[str, Any],
                               existing: dict[str, Any] | None) -> dict[str, Any]:
        """RECEIVE-OVERPAYMENT only: money received from a customer that pays no invoice
        yet. It creates an Overpayment (customer credit, ``RemainingCredit``) that
        allocations to invoices and refund payments draw on. An existing one can only
        be deleted, and only while none of its credit is used."""
        if existing is not None:
            if element.get("Status") != "DELETED" or set(element) - {
                    "Status", "BankTransactionID"}:
                raise Invalid("An overpayment bank transaction cannot be edited; delete it "
                              "(Status DELETED) and enter it again")
            if existing["Status"] == "DELETED":
                raise Invalid("The bank transaction has already been deleted")
            overpayment = org.overpayments.get(str(existing.get("OverpaymentID")))
            if overpayment is not None:
                if money(overpayment["RemainingCredit"]) != money(overpayment["Total"]):
                    raise Invalid("This overpayment cannot be deleted as it has been "
                                  "allocated or refunded; remove the allocations and refunds "
                                  "first")
                overpayment["Status"] = "VOIDED"
                overpayment["_updated"] = self.clock.now()
            self._check_lock(org, date.fromisoformat(existing["_date"]))
            existing["Status"] = "DELETED"
            return existing
        kind = element.get("Type")
        if not kind:
            raise Invalid("Bank transaction Type must be specified")
        if kind not in _BANK_TRANSACTION_TYPES:
            raise Invalid(f"Type {kind} is not a valid bank transaction type")
        if kind != "RECEIVE-OVERPAYMENT":
            raise Invalid(f"Type {kind} is not supported by this sandbox (customer "
                          f"overpayments only: RECEIVE-OVERPAYMENT)")
        if element.get("Status", "AUTHORISED") != "AUTHORISED":
            raise Invalid("A bank transaction can only be created AUTHORISED")
        contact = self._resolve_contact(org, element.get("Contact"))
        account = org.account(element.get("BankAccount"))
        if account is None:
            raise Invalid("BankAccount could not be found")
        if account["Type"] != "BANK":
            raise Invalid("The BankAccount must be an account of type BANK")
        mode = element.get("LineAmountTypes", "NoTax")
        if mode not in LINE_AMOUNT_TYPES:
            raise Invalid(f"LineAmountTypes '{mode}' is not valid")
        lines = element.get("LineItems")
        if not isinstance(lines, list) or not lines:
            raise Invalid("A line item must be specified for a bank transaction")
        computed, total = [], Decimal(0)
        for index, raw_line in enumerate(lines):
            line = dict(raw_line) if isinstance(raw_line, dict) else {}
            if line.get("AccountCode") is not None:
                raise Invalid("An account code cannot be specified on an overpayment line "
                              "item (Xero posts it to Accounts Receivable)")
            if line.get("LineAmount") is not None:
                amount = money(line["LineAmount"])
            else:
                amount = money(Decimal(str(line.get("Quantity", 1)))
                               * Decimal(str(line.get("UnitAmount", 0))))
            total += amount
            line.update(LineAmount=num(amount), TaxAmount=0, LineItemID=str(uuid.uuid5(
                NAMESPACE, f"{org.tenant}:bankline:{org.counter}:{index}")))
            computed.append(line)
        if total <= 0:
            raise Invalid("The total of an overpayment must be greater than zero")
        day = _parse_date(element["Date"], "Date") if element.get("Date") \
            else self.clock.now().date()
        self._check_lock(org, day)
        reference = str(element.get("Reference") or "")
        if len(reference) > 255:
            raise Invalid("Reference must not exceed 255 characters")
        now = self.clock.now()
        common = {"Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
                  "_date": day.isoformat(), "CurrencyCode": element.get("CurrencyCode")
                  or contact.get("DefaultCurrency") or "USD", "LineAmountTypes": mode,
                  "LineItems": computed, "SubTotal": num(total), "TotalTax": 0,
                  "Total": num(total), "Status": "AUTHORISED", "Reference": reference or None}
        overpayment_id = org.new_id("overpayment")
        org.overpayments[overpayment_id] = {
            **copy.deepcopy(common), "OverpaymentID": overpayment_id,
            "Type": "RECEIVE-OVERPAYMENT", "RemainingCredit": num(total), "AppliedAmount": 0,
            "_updated": now, "_seq": org.counter}
        return {**common, "BankTransactionID": org.new_id("banktransaction"), "Type": kind,
                "BankAccount": {"AccountID": account["AccountID"], "Code": account["Code"],
                                "Name": account["Name"]},
                "IsReconciled": bool(element.get("IsReconciled", False)),
                "OverpaymentID": overpayment_id}

    async def _allocations(self, request: Request) -> Response:
        ident = request.path_params["ident"]
        source = "Overpayment" if "/Overpayments/" in request.url.path else "CreditNote"

        def handle(tenant: str, body: Any) -> Response:
            org = self.org(tenant)
            note = (org.overpayments if source == "Overpayment" else org.credit_notes).get(ident)
            if note is None:
                return self._problem(404, "Not Found", f"The resource {ident} was not found")
            items = body.get("Allocations") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                return self._validation_exception([], "Allocations must be provided")
            snapshot = self._snapshot(org)
            results, errors = [], []
            for item in items:
                try:
                    results.append(self._allocate(org, note, item, source))
                    self._recompute(org)
                except Invalid as error:
                    errors.append({**item, "ValidationErrors": [{"Message": m}
                                                                for m in error.messages]})
            if errors:
                self._restore(org, snapshot)
                return self._validation_exception(errors)
            return JSONResponse(self._envelope("Allocations", results))

        return await self._api(request, handle)

    def _allocate(self, org: Org, note: dict[str, Any], item: dict[str, Any],
                  source: str = "CreditNote") -> dict[str, Any]:
        """Apply a credit note's or an overpayment's remaining credit to an invoice."""
        label = "Credit note" if source == "CreditNote" else "Overpayment"
        if note["Status"] != "AUTHORISED":
            raise Invalid(f"{label} must be AUTHORISED before it can be allocated")
        ref = item.get("Invoice") or {}
        invoice = org.invoices.get(str(ref.get("InvoiceID")))
        if invoice is None:
            raise Invalid("Invoice could not be found")
        if item.get("Amount") is None or item.get("Date") is None:
            raise Invalid("Allocation requires Amount, Invoice and Date")
        amount = money(item["Amount"])
        if invoice["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
            raise Invalid(f"The {label.lower()} and invoice must be for the same contact")
        if invoice["Status"] != "AUTHORISED":
            raise Invalid(f"Invoice must be AUTHORISED to allocate a {label.lower()}")
        if amount <= 0 or amount > money(note["RemainingCredit"]) or \
                amount > money(invoice["AmountDue"]):
            raise Invalid("The amount allocated exceeds the remaining credit or the amount due")
        day = _parse_date(item["Date"], "Date")
        self._check_lock(org, day)
        allocation: dict[str, Any] = {
                      "AllocationID": org.new_id("allocation"), "Amount": num(amount),
                      "_date": day.isoformat(), "_seq": org.counter,
                      "Invoice": {"InvoiceID": invoice["InvoiceID"],
                                  "InvoiceNumber": invoice["InvoiceNumber"]}}
        if source == "CreditNote":
            allocation["CreditNote"] = {"CreditNoteID": note["CreditNoteID"],
                                        "CreditNoteNumber": note["CreditNoteNumber"]}
            org.allocations[allocation["AllocationID"]] = allocation
        else:
            allocation["Overpayment"] = {"OverpaymentID": note["OverpaymentID"]}
            org.overpayment_allocations[allocation["AllocationID"]] = allocation
        now = self.clock.now()
        invoice["_updated"] = note["_updated"] = now
        return self._public_allocation(allocation)

    # ------------------------------------------------------------------ derived amounts

    def _recompute(self, org: Org) -> None:
        """AmountPaid/AmountCredited/AmountDue, RemainingCredit and PAID transitions."""
        paid: dict[str, Decimal] = {}
        refunded: dict[str, Decimal] = {}
        credited: dict[str, Decimal] = {}
        allocated: dict[str, Decimal] = {}
        for payment in org.payments.values():
            if payment["Status"] == "DELETED":
                continue
            if "Invoice" in payment:
                key = payment["Invoice"]["InvoiceID"]
                paid[key] = paid.get(key, Decimal(0)) + money(payment["Amount"])
            elif "Overpayment" in payment:  # a refund of the overpayment
                key = payment["Overpayment"]["OverpaymentID"]
                refunded[key] = refunded.get(key, Decimal(0)) + money(payment["Amount"])
            else:
                key = payment["CreditNote"]["CreditNoteID"]
                refunded[key] = refunded.get(key, Decimal(0)) + money(payment["Amount"])
        for allocation in org.allocations.values():
            inv_id = str(allocation["Invoice"]["InvoiceID"])
            note_id = str(allocation["CreditNote"]["CreditNoteID"])
            credited[inv_id] = credited.get(inv_id, Decimal(0)) + money(allocation["Amount"])
            allocated[note_id] = allocated.get(note_id, Decimal(0)) + money(allocation["Amount"])
        for allocation in org.overpayment_allocations.values():
            inv_id = str(allocation["Invoice"]["InvoiceID"])
            over_id = str(allocation["Overpayment"]["OverpaymentID"])
            credited[inv_id] = credited.get(inv_id, Decimal(0)) + money(allocation["Amount"])
            allocated[over_id] = allocated.get(over_id, Decimal(0)) + money(allocation["Amount"])
        for invoice in org.invoices.values():
            ident = invoice["InvoiceID"]
            amount_paid, amount_credited = paid.get(ident, Decimal(0)), credited.get(
                ident, Decimal(0))
            due = money(invoice.get("Total", 0)) - amount_paid - amount_credited
            if invoice["Status"] in ("VOIDED", "DELETED"):
                due = Decimal(0)
            invoice.update(AmountPaid=num(amount_paid), AmountCredited=num(amount_credited),
                           AmountDue=num(due))
            self._settle(invoice, due, amount_paid + amount_credited)
        for note in org.credit_notes.values():
            ident = note["CreditNoteID"]
            used = allocated.get(ident, Decimal(0)) + refunded.get(ident, Decimal(0))
            remaining = money(note.get("Total", 0)) - used
            if note["Status"] in ("VOIDED", "DELETED"):
                remaining = Decimal(0)
            note.update(RemainingCredit=num(remaining), AppliedAmount=num(used))
            self._settle(note, remaining, used)
        for over in org.overpayments.values():
            ident = over["OverpaymentID"]
            used = allocated.get(ident, Decimal(0)) + refunded.get(ident, Decimal(0))
            remaining = money(over.get("Total", 0)) - used
            if over["Status"] == "VOIDED":
                remaining = Decimal(0)
            over.update(RemainingCredit=num(remaining), AppliedAmount=num(used))
            self._settle(over, remaining, used)

    def _settle(self, document: dict[str, Any], outstanding: Decimal, settled: Decimal) -> None:
        before = document["Status"]
        if before == "AUTHORISED" and outstanding == 0 and settled > 0:
            document["Status"] = "PAID"
            document["FullyPaidOnDate"] = msdate(self.clock.now().date())
        elif before == "PAID" and outstanding > 0:
            document["Status"] = "AUTHORISED"
            document.pop("FullyPaidOnDate", None)
        if document["Status"] != before:
            document["_updated"] = self.clock.now()

    # ------------------------------------------------------------------ public shapes

    def public(self, org: Org, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the API serialises it (MS dates, no private keys)."""
        out = {k: copy.deepcopy(v) for k, v in record.items()
               if not k.startswith("_") and v is not None}
        out["UpdatedDateUTC"] = msdate(record["_updated"])
        if "_date" in record:
            out["Date"] = msdate(date.fromisoformat(record["_date"]))
            out["DateString"] = f"{record['_date']}T00:00:00"
        if "_due" in record:
            out["DueDate"] = msdate(date.fromisoformat(record["_due"]))
            out["DueDateString"] = f"{record['_due']}T00:00:00"
        if name == "Invoices":
            out["Payments"] = [
                {"PaymentID": p["PaymentID"], "Date": msdate(date.fromisoformat(p["_date"])),
                 "Amount": p["Amount"], "Reference": p.get("Reference") or ""}
                for p in org.payments.values()
                if p["Status"] != "DELETED" and p.get("Invoice", {}).get("InvoiceID")
                == record["InvoiceID"]]
        if name == "CreditNotes":
            out["Allocations"] = [self._public_allocation(a) for a in org.allocations.values()
                                  if a["CreditNote"]["CreditNoteID"] == record["CreditNoteID"]]
        if name == "Overpayments":
            ident = record["OverpaymentID"]
            out["Allocations"] = [self._public_allocation(a)
                                  for a in org.overpayment_allocations.values()
                                  if a["Overpayment"]["OverpaymentID"] == ident]
            out["Payments"] = [
                {"PaymentID": p["PaymentID"], "Date": msdate(date.fromisoformat(p["_date"])),
                 "Amount": p["Amount"], "Reference": p.get("Reference") or ""}
                for p in org.payments.values()
                if p["Status"] != "DELETED" and p.get("Overpayment", {}).get("OverpaymentID")
                == ident]
        if name == "Contacts":
            out["IsCustomer"] = bool(out.get("IsCustomer", True))
        return out

    @staticmethod
    def _public_allocation(allocation: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in allocation.items() if not k.startswith("_")}
        out["Date"] = msdate(date.fromisoformat(allocation["_date"]))
        return out

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        org = self.org(tenant)
        documents: list[DocumentSummary] = []
        for store, kind, id_field, number_field, balance_field in (
                (org.invoices, "invoice", "InvoiceID", "InvoiceNumber", "AmountDue"),
                (org.credit_notes, "credit_note", "CreditNoteID", "CreditNoteNumber",
                 "RemainingCredit")):
            for doc in store.values():
                if doc["Status"] == "DELETED":
                    continue
                documents.append(DocumentSummary(
                    kind, doc[id_field], doc.get(number_field),  # type: ignore[arg-type]
                    doc.get("Reference") or None, doc["Contact"]["ContactID"], doc["Status"],
                    money(doc.get("Total")), money(doc.get(balance_field)), doc["_date"],
                    doc.get("_seq", 0)))
        payments = [PaymentSummary(
            p["PaymentID"], self._payment_contact(org, p), money(p["Amount"]), Decimal(0),
            p["Status"], p["_date"], p.get("Reference") or None, p.get("_seq", 0))
            for p in org.payments.values()]
        applications = [Application("payment", p["PaymentID"], p["Invoice"]["InvoiceID"],
                                    money(p["Amount"]))
                        for p in org.payments.values()
                        if p["Status"] != "DELETED" and "Invoice" in p]
        applications += [Application("credit_note", a["CreditNote"]["CreditNoteID"],
                                     a["Invoice"]["InvoiceID"], money(a["Amount"]))
                         for a in org.allocations.values()]
        # An overpayment is money received and held as the customer's credit: a payment
        # whose unapplied part is its RemainingCredit (allocations and refunds draw it
        # down; the refund payments themselves apply nothing).
        payments += [PaymentSummary(
            o["OverpaymentID"], o["Contact"]["ContactID"], money(o["Total"]),
            money(o["RemainingCredit"]), o["Status"], o["_date"], o.get("Reference") or None,
            o.get("_seq", 0)) for o in org.overpayments.values()]
        applications += [Application("payment", a["Overpayment"]["OverpaymentID"],
                                     a["Invoice"]["InvoiceID"], money(a["Amount"]))
                         for a in org.overpayment_allocations.values()]
        customers = [CustomerSummary(c["ContactID"], c["Name"], c["ContactStatus"] == "ACTIVE")
                     for c in org.contacts.values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)

    @staticmethod
    def _payment_contact(org: Org, payment: dict[str, Any]) -> str:
        if "Invoice" in payment:
            return str(org.invoices[payment["Invoice"]["InvoiceID"]]["Contact"]["ContactID"])
        if "Overpayment" in payment:
            over = org.overpayments[payment["Overpayment"]["OverpaymentID"]]
            return str(over["Contact"]["ContactID"])
        return str(org.credit_notes[payment["CreditNote"]["CreditNoteID"]]["Contact"]["ContactID"])


_PAYMENT_TARGETS = {
    "Invoice": ("InvoiceNumber", "InvoiceID", "ACCRECPAYMENT"),
    "CreditNote": ("CreditNoteNumber", "CreditNoteID", "ARCREDITPAYMENT"),
    "Overpayment": (None, "OverpaymentID", "AROVERPAYMENTPAYMENT"),
}
_BANK_TRANSACTION_TYPES = ("RECEIVE", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "SPEND",
                           "SPEND-OVERPAYMENT", "SPEND-PREPAYMENT", "RECEIVE-TRANSFER",
                           "SPEND-TRANSFER")


def _id_field(name: str) -> str:
    return {"Contacts": "ContactID", "Invoices": "InvoiceID", "CreditNotes": "CreditNoteID",
            "Payments": "PaymentID", "BankTransactions": "BankTransactionID",
            "Overpayments": "OverpaymentID"}[name]

