"""Sage Business Cloud Accounting v3.1 sandbox.

Reproduces what a Sage sink must cope with (shared/research/platforms-A.md section 3,
swagger ``shared/specs/sage-accounting/swagger-2.0.0.json``): resource-wrapped bodies
(``{"sales_invoice": {...}}``), the ``X-Business`` header (absent: the lead business),
``idempotency_id`` inside the resource (same id → the first response again), the error
shape ``[{"$severity", "$dataCode", "$message", "$source"}]`` with 422 for validation,
duplicate ``invoice_number`` rejection, unknown ledger/tax/bank ids, a lock date,
void via ``DELETE ?void_reason=`` (refused while payments are allocated), receipts and
refunds with ``allocated_artefacts`` and ``payment_on_account``, contact allocations of
credit notes, ``$items`` list envelopes with ``search``, 429 with ``Retry-After`` and
OAuth2 with rotating refresh tokens (strict rotation, 5-minute access tokens).

Sage has no optimistic-concurrency token, so no stale-version conflict is invented;
:meth:`SageSandbox.edit_document` simulates a bookkeeper's edit (new ``updated_at``) so
the sink's own ``updated_at`` check can be tested.
"""

from __future__ import annotations

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
    StoredResponse,
    Throttle,
    TokenPair,
    Window,
    build_report,
    money,
    num,
    read_json,
    replay,
)

NAMESPACE = uuid.UUID("0b8d6c1e-52a4-4f3b-9e7d-5a6c2f1e8d33")
BASE = "/v3.1"
LEAD = "lead"
PAGE_SIZE = 20

Entry = dict[str, Any]


class Rejected(Exception):
    """A Sage error response: status plus ``(dataCode, message, source)`` entries."""

    def __init__(self, status: int, *entries: tuple[str, str, str]) -> None:
        super().__init__("; ".join(e[1] for e in entries))
        self.status = status
        self.entries = entries


def invalid(source: str, message: str) -> Rejected:
    return Rejected(422, ("RecordInvalid", message, source))


class Business:
    """One Sage business: its records plus seeded settings."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.contacts: dict[str, Entry] = {}
        self.sales_invoices: dict[str, Entry] = {}
        self.sales_credit_notes: dict[str, Entry] = {}
        self.contact_payments: dict[str, Entry] = {}
        self.contact_allocations: dict[str, Entry] = {}
        self.other_payments: dict[str, Entry] = {}
        self.idempotent: dict[str, StoredResponse] = {}
        self.lock_date: date | None = None
        self.seq = 0
        self.ledger_accounts = {"LA-LABOR", "LA-PARTS", "LA-FEES", "LA-DISCOUNTS", "LA-TIPS",
                                "LA-CARDFEES"}
        self.tax_rates = {"US_AUSTIN": Decimal("0.0825"), "US_TX_STATE": Decimal("0.0625"),
                          "US_EXEMPT": Decimal(0),
                          "US_NO_TAX": Decimal(0)}
        self.bank_accounts = {"BA-CHECKING", "BA-UNDEPOSITED"}
        self.numbers = {"SI": 0, "SCN": 0}

    def new_id(self, kind: str) -> str:
        self.seq += 1
        return uuid.uuid5(NAMESPACE, f"{self.tenant}:{kind}:{self.seq}").hex


class SageSandbox(Sandbox):
    """Stateful Sage Accounting v3.1 simulator; see the module docstring."""

    platform = "sage-accounting"
    token_path = "/token"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 200,
                 access_lifetime: int = 300, max_concurrent: int = 10,
                 idempotency_window: int = 24 * 3600) -> None:
        self.businesses: dict[str, Business] = {}
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=idempotency_window)

    # ------------------------------------------------------------------ state

    def business(self, tenant: str) -> Business:
        if tenant not in self.businesses:
            self.businesses[tenant] = Business(tenant)
        return self.businesses[tenant]

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.business(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        contact = self.business(tenant).contacts.get(customer_id)
        if contact is None:
            raise KeyError(f"no contact {customer_id} in business {tenant}")
        contact["deleted_at"] = None
        contact["active"] = False
        contact["updated_at"] = self._now()

    def edit_document(self, tenant: str, invoice_id: str, **fields: Any) -> None:
        """A bookkeeper edits an invoice in Sage's UI (bumps ``updated_at``)."""
        with self.lock:
            record = self.business(tenant).sales_invoices[invoice_id]
            record.update(fields)
            self.clock_tick()
            record["updated_at"] = self._now()

    def clock_tick(self) -> None:
        advance = getattr(self.clock, "advance", None)
        if advance is not None:
            advance(1)

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    # ------------------------------------------------------------------ error shapes

    @staticmethod
    def errors(status: int, *entries: tuple[str, str, str],
               headers: dict[str, str] | None = None) -> JSONResponse:
        body = [{"$severity": "error", "$dataCode": code, "$message": message, "$source": source}
                for code, message, source in entries]
        return JSONResponse(body, status_code=status, headers=headers)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self.errors(403, ("AccessDenied", "You do not have access to this business",
                                     ""))
        if outcome == "expired":
            return self.errors(401, ("AuthorizationFailure", "Token expired", ""))
        return self.errors(401, ("AuthorizationFailure", "Invalid token", ""))

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        headers = {"Retry-After": str(throttle.retry_after)} if throttle.retry_after else {}
        return self.errors(429, ("TooManyRequests",
                                 f"Too many requests ({throttle.problem} limit)", ""),
                           headers=headers)

    def server_error(self, status: int) -> Response:
        code = "ServiceUnavailable" if status == 503 else "UnexpectedError"
        return self.errors(status, (code, "An unexpected error occurred", ""))

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "expires_in": pair.expires_in, "token_type": "bearer",
                "refresh_token_expires_in": 2678400, "scope": "full_access"}

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        out: list[BaseRoute] = []
        for collection in ("contacts", "sales_invoices", "sales_credit_notes",
                           "contact_payments", "contact_allocations", "other_payments"):
            out.append(Route(f"{BASE}/{collection}", self._collection(collection),
                             methods=["GET", "POST"]))
            out.append(Route(f"{BASE}/{collection}/{{key}}", self._single(collection),
                             methods=["GET", "PUT", "DELETE"]))
        return out

    async def _api(self, request: Request, handle: Callable[[Business, Any], Response],
                   *, resource: str | None = None) -> Response:
        tenant = request.headers.get("x-business") or LEAD
        body = await read_json(request)
        raw = await request.body()
        write = request.method in ("POST", "PUT", "DELETE")

        def run() -> Response:
            biz = self.business(tenant)
            if request.method in ("POST", "PUT"):
                if body is None and raw:
                    return self.errors(400, ("InvalidJson", "The request body is not JSON", ""))
                if resource is not None and not isinstance((body or {}).get(resource), dict):
                    return self.errors(422, ("RecordInvalid", f"{resource} is missing",
                                             resource))
            key = None
            if request.method == "POST" and resource is not None:
                key = body[resource].get("idempotency_id")
                if key is not None:
                    stored = biz.idempotent.get(str(key))
                    if stored is not None:
                        return replay(stored)
            try:
                response = handle(biz, body)
            except Rejected as exc:
                return self.errors(exc.status, *exc.entries)
            if key is not None and response.status_code < 300:
                headers = {k: v for k, v in response.headers.items()
                           if k.lower() != "content-length"}
                biz.idempotent[str(key)] = StoredResponse(
                    "", response.status_code, bytes(response.body), headers, self.clock.now())
            return response

        return await self.guarded(request, tenant, run, write=write)

    def _collection(self, collection: str) -> Callable[[Request], Any]:
        resource = collection[:-1]

        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                return await self._api(request, lambda biz, _: self._list(
                    biz, collection, request))
            return await self._api(request, lambda biz, body: self._create(
                biz, collection, body[resource]), resource=resource)
        return endpoint

    def _single(self, collection: str) -> Callable[[Request], Any]:
        resource = collection[:-1]

        async def endpoint(request: Request) -> Response:
            key = request.path_params["key"]
            if request.method == "GET":
                return await self._api(request, lambda biz, _: JSONResponse(
                    self.public(self._get(biz, collection, key))))
            if request.method == "DELETE":
                reason = request.query_params.get("void_reason")
                return await self._api(request, lambda biz, _: self._delete(
                    biz, collection, key, reason))
            return await self._api(request, lambda biz, body: self._update(
                biz, collection, key, body[resource]), resource=resource)
        return endpoint

    # ------------------------------------------------------------------ handlers

    def _store(self, biz: Business, collection: str) -> dict[str, Entry]:
        store: dict[str, Entry] = getattr(biz, collection)
        return store

    def _get(self, biz: Business, collection: str, key: str) -> Entry:
        record = self._store(biz, collection).get(key)
        if record is None:
            raise Rejected(404, ("RecordNotFound", f"No {collection[:-1]} with id {key}", ""))
        return record

    def _list(self, biz: Business, collection: str, request: Request) -> Response:
        search = (request.query_params.get("search") or "").lower()
        records = list(self._store(biz, collection).values())
        if search:
            records = [r for r in records if any(
                search in str(r.get(f) or "").lower()
                for f in ("reference", "name", "invoice_number", "credit_note_number",
                          "contact_name"))]
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(200, int(request.query_params.get("items_per_page", str(PAGE_SIZE))))
        chunk = records[(page - 1) * per_page: page * per_page]
        has_next = page * per_page < len(records)
        return JSONResponse({
            "$total": len(records), "$page": page, "$items_per_page": per_page,
            "$next": f"{BASE}/{collection}?page={page + 1}" if has_next else None,
            "$back": f"{BASE}/{collection}?page={page - 1}" if page > 1 else None,
            "$items": [self.public(r) for r in chunk]})

    def public(self, record: Entry) -> Entry:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    def _stamp(self, biz: Business, record: Entry, kind: str) -> Entry:
        record.setdefault("id", biz.new_id(kind))
        record["_seq"] = biz.seq
        now = self._now()
        record.setdefault("created_at", now)
        record["updated_at"] = now
        return record

    def _create(self, biz: Business, collection: str, data: Entry) -> Response:
        data = {k: v for k, v in data.items() if k != "idempotency_id"}
        builder = {
            "contacts": self._contact,
            "sales_invoices": self._document,
            "sales_credit_notes": self._document,
            "contact_payments": self._payment,
            "contact_allocations": self._allocation,
            "other_payments": self._other_payment,
        }[collection]
        record = builder(biz, collection, data, None)
        self._store(biz, collection)[record["id"]] = record
        return JSONResponse(self.public(record), status_code=201)

    def _update(self, biz: Business, collection: str, key: str, data: Entry) -> Response:
        current = self._get(biz, collection, key)
        if collection in ("contact_allocations", "other_payments"):
            raise Rejected(405, ("MethodNotAllowed", "Update is not supported", ""))
        if _status(current) == "VOID":
            raise invalid("base", "A void document cannot be edited")
        merged = {**self.public(current), **data}
        builder = {"contacts": self._contact, "sales_invoices": self._document,
                   "sales_credit_notes": self._document,
                   "contact_payments": self._payment}[collection]
        if collection == "contact_payments":
            self._release_payment(biz, current)
            try:
                record = builder(biz, collection, merged, current)
            except Rejected:
                for item in current.get("allocated_artefacts", []):
                    self._apply(self._artefact(biz, item["artefact"]["id"])[1],
                                money(item["amount"]))
                raise
        else:
            record = builder(biz, collection, merged, current)
        self._store(biz, collection)[key] = record
        return JSONResponse(self.public(record))

    def _delete(self, biz: Business, collection: str, key: str, reason: str | None) -> Response:
        record = self._get(biz, collection, key)
        if collection in ("sales_invoices", "sales_credit_notes"):
            if _status(record) == "VOID":
                raise invalid("base", "The document is already void")
            if _status(record) != "DRAFT" and not reason:
                raise invalid("void_reason", "can't be blank")
            if Decimal(str(record["outstanding_amount"])) != Decimal(str(record["total_amount"])):
                raise invalid("base", "The document has payments or allocations; remove them "
                                      "before voiding")
            self._check_lock(biz, record["date"])
            record["status"] = {"id": "VOID", "displayed_as": "Void"}
            record["void_reason"] = reason
            record["outstanding_amount"] = 0.0
            record["updated_at"] = self._now()
            return JSONResponse(self.public(record))
        if collection == "contact_payments":
            self._check_lock(biz, record["date"])
            self._release_payment(biz, record)
            del biz.contact_payments[key]
            return Response(status_code=204)
        if collection == "contacts":
            if any(d["contact"]["id"] == key for d in [*biz.sales_invoices.values(),
                                                      *biz.sales_credit_notes.values()]):
                raise invalid("base", "The contact has transactions and cannot be deleted")
            del biz.contacts[key]
            return Response(status_code=204)
        raise Rejected(405, ("MethodNotAllowed", "Delete is not supported", ""))

    # ------------------------------------------------------------------ builders

    def _check_lock(self, biz: Business, day: Any) -> None:
        if biz.lock_date is not None and date.fromisoformat(str(day)) <= biz.lock_date:
            raise invalid("date", f"is on or before the lock date "
                                  f"({biz.lock_date.isoformat()})")

    def _require(self, data: Entry, *fields: str) -> None:
        missing = [f for f in fields if data.get(f) in (None, "", [])]
        if missing:
            raise Rejected(422, *(("RecordInvalid", "can't be blank", f) for f in missing))

    def _contact_ref(self, biz: Business, contact_id: Any) -> Entry:
        contact = biz.contacts.get(str(contact_id))
        if contact is None:
            raise invalid("contact_id", "is invalid")
        if contact.get("active") is False:
            raise invalid("contact_id", "The contact is inactive")
        return {"id": contact["id"], "displayed_as": contact["name"]}

    def _contact(self, biz: Business, _: str, data: Entry, current: Entry | None) -> Entry:
        self._require(data, "name", "contact_type_ids")
        reference = data.get("reference")
        if reference and any(c.get("reference") == reference and c["id"] != data.get("id")
                             for c in biz.contacts.values()):
            raise invalid("reference", "has already been taken")
        record = {**data, "displayed_as": data["name"],
                  "contact_types": [{"id": t} for t in data["contact_type_ids"]]}
        record.setdefault("active", True)
        return self._stamp(biz, record, "contact")

    def _document(self, biz: Business, collection: str, data: Entry,
                  current: Entry | None) -> Entry:
        invoice = collection == "sales_invoices"
        lines_key = "invoice_lines" if invoice else "credit_note_lines"
        number_key = "invoice_number" if invoice else "credit_note_number"
        self._require(data, "contact_id" if current is None else "date", "date", lines_key)
        contact = self._contact_ref(biz, data.get("contact_id") or (current and
                                    current["contact"]["id"]))
        self._check_lock(biz, data["date"])
        if current is not None and Decimal(str(current["outstanding_amount"])) != Decimal(
                str(current["total_amount"])):
            raise invalid("base", "The document has payments or allocations and its amounts "
                                  "cannot be changed")
        lines, net, tax = [], Decimal(0), Decimal(0)
        for index, line in enumerate(data[lines_key]):
            for field in ("description", "ledger_account_id", "unit_price"):
                if line.get(field) in (None, ""):
                    raise invalid(f"{lines_key}[{index}].{field}", "can't be blank")
            if line["ledger_account_id"] not in biz.ledger_accounts:
                raise invalid("ledger_account_id", "is invalid")
            rate_id = line.get("tax_rate_id")
            if rate_id is not None and rate_id not in biz.tax_rates:
                raise invalid("tax_rate_id", "is invalid")
            line_net = money(Decimal(str(line.get("quantity", 1))) *
                             Decimal(str(line["unit_price"])))
            if line.get("net_amount") is not None and money(line["net_amount"]) != line_net:
                raise invalid(f"{lines_key}[{index}].net_amount",
                              "does not equal quantity x unit_price")
            rate = biz.tax_rates.get(rate_id or "", Decimal(0))
            line_tax = (money(line["tax_amount"]) if line.get("tax_amount") is not None
                        else money(line_net * rate))
            net += line_net
            tax += line_tax
            lines.append({**line, "id": f"{index + 1}", "net_amount": num(line_net),
                          "tax_amount": num(line_tax), "total_amount": num(line_net + line_tax)})
        number = data.get(number_key)
        prefix = "SI" if invoice else "SCN"
        if not number:
            biz.numbers[prefix] += 1
            number = f"{prefix}-{biz.numbers[prefix]}"
        store = self._store(biz, collection)
        if any(d.get(number_key) == number and (current is None or d["id"] != current["id"])
               for d in store.values()):
            raise invalid(number_key, "has already been taken")
        total = net + tax
        record = {k: v for k, v in data.items() if k not in ("contact_id", "status_id")}
        record.update({
            number_key: number, "contact": contact, lines_key: lines,
            "displayed_as": number, "net_amount": num(net), "tax_amount": num(tax),
            "total_amount": num(total), "outstanding_amount": num(total),
            "currency": {"id": data.get("currency_id") or "USD"},
            "status": {"id": data.get("status_id") or "UNPAID"},
        })
        if current is not None:
            record["id"] = current["id"]
            record["created_at"] = current["created_at"]
            self.clock_tick()
        return self._stamp(biz, record, collection)

    def _artefact(self, biz: Business, artefact_id: str) -> tuple[str, Entry]:
        for collection in ("sales_invoices", "sales_credit_notes"):
            record = self._store(biz, collection).get(artefact_id)
            if record is not None:
                return collection, record
        raise invalid("artefact_id", f"{artefact_id} is invalid")

    def _apply(self, record: Entry, amount: Decimal) -> None:
        outstanding = money(record["outstanding_amount"]) - amount
        if outstanding < 0:
            raise invalid("amount", "exceeds the outstanding amount of "
                                    f"{record.get('displayed_as')}")
        if _status(record) == "VOID":
            raise invalid("artefact_id", "is void")
        record["outstanding_amount"] = num(outstanding)
        total = money(record["total_amount"])
        record["status"] = {"id": "PAID" if outstanding == 0 else
                            "PART_PAID" if outstanding < total else "UNPAID"}

    def _payment(self, biz: Business, _: str, data: Entry, current: Entry | None) -> Entry:
        self._require(data, "transaction_type_id", "contact_id", "bank_account_id", "date",
                      "total_amount")
        if data["transaction_type_id"] not in ("CUSTOMER_RECEIPT", "CUSTOMER_REFUND"):
            raise invalid("transaction_type_id", "is invalid")
        if data["bank_account_id"] not in biz.bank_accounts:
            raise invalid("bank_account_id", "is invalid")
        contact = self._contact_ref(biz, data["contact_id"])
        self._check_lock(biz, data["date"])
        total = money(data["total_amount"])
        allocated = Decimal(0)
        applied = []
        targets: list[tuple[Entry, Decimal]] = []
        for item in data.get("allocated_artefacts") or []:
            collection, target = self._artefact(biz, str(item.get("artefact_id")))
            amount = money(item.get("amount"))
            refund = data["transaction_type_id"] == "CUSTOMER_REFUND"
            if refund != (collection == "sales_credit_notes"):
                raise invalid("artefact_id", "does not match the transaction type")
            if amount > money(target["outstanding_amount"]) or _status(target) == "VOID":
                raise invalid("amount", "exceeds the outstanding amount of "
                                        f"{target.get('displayed_as')}")
            allocated += amount
            applied.append({"artefact": {"id": target["id"]}, "amount": num(amount)})
            targets.append((target, amount))
        on_account = data.get("payment_on_account") or {}
        unapplied = money(on_account.get("total_amount", 0)) if on_account else Decimal(0)
        if applied and allocated + unapplied != total:
            raise invalid("total_amount", "does not equal the allocated amount plus the "
                                          "payment on account")
        if not applied:
            unapplied = total
        for target, amount in targets:
            self._apply(target, amount)
        record = {k: v for k, v in data.items() if k not in ("contact_id", "allocated_artefacts",
                                                              "payment_on_account")}
        record.update({"contact": contact, "allocated_artefacts": applied,
                       "transaction_type": {"id": data["transaction_type_id"]},
                       "_unapplied": str(unapplied), "displayed_as": data.get("reference")})
        if current is not None:
            record["id"] = current["id"]
            record["created_at"] = current["created_at"]
            self.clock_tick()
        return self._stamp(biz, record, "payment")

    def _release_payment(self, biz: Business, payment: Entry) -> None:
        for item in payment.get("allocated_artefacts", []):
            _, target = self._artefact(biz, item["artefact"]["id"])
            self._apply(target, -money(item["amount"]))

    def _allocation(self, biz: Business, _: str, data: Entry, current: Entry | None) -> Entry:
        self._require(data, "transaction_type_id", "contact_id", "allocated_artefacts")
        self._contact_ref(biz, data["contact_id"])
        items = [(self._artefact(biz, str(i.get("artefact_id")))[1], money(i.get("amount")))
                 for i in data["allocated_artefacts"]]
        if sum((amount for _, amount in items), Decimal(0)) != 0:
            raise invalid("allocated_artefacts", "must balance to zero")
        for record, amount in items:
            self._apply(record, abs(amount))
        record = {**data, "allocated_artefacts": [
            {"artefact": {"id": r["id"]}, "amount": num(a)} for r, a in items]}
        return self._stamp(biz, record, "allocation")

    def _other_payment(self, biz: Business, _: str, data: Entry, current: Entry | None
                       ) -> Entry:
        self._require(data, "transaction_type_id", "date", "total_amount", "payment_lines")
        if data.get("bank_account_id") not in biz.bank_accounts:
            raise invalid("bank_account_id", "is invalid")
        for line in data["payment_lines"]:
            if line.get("ledger_account_id") not in biz.ledger_accounts:
                raise invalid("ledger_account_id", "is invalid")
        self._check_lock(biz, data["date"])
        return self._stamp(biz, dict(data), "other")

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        biz = self.business(tenant)
        documents: list[DocumentSummary] = []
        for store, kind, number_field in ((biz.sales_invoices, "invoice", "invoice_number"),
                                          (biz.sales_credit_notes, "credit_note",
                                           "credit_note_number")):
            for doc in store.values():
                status = "VOIDED" if _status(doc) == "VOID" else str(_status(doc))
                documents.append(DocumentSummary(
                    kind, doc["id"], doc.get(number_field),  # type: ignore[arg-type]
                    doc.get("reference") or None, doc["contact"]["id"], status,
                    money(doc["total_amount"]), money(doc["outstanding_amount"]), doc["date"],
                    doc["_seq"]))
        payments = [PaymentSummary(
            p["id"], p["contact"]["id"], money(p["total_amount"]), money(p["_unapplied"]),
            p["transaction_type"]["id"], p["date"], p.get("reference") or None, p["_seq"])
            for p in biz.contact_payments.values()
            if p["transaction_type"]["id"] == "CUSTOMER_RECEIPT"]
        applications = [
            Application("payment", p["id"], item["artefact"]["id"], money(item["amount"]))
            for p in biz.contact_payments.values()
            if p["transaction_type"]["id"] == "CUSTOMER_RECEIPT"
            for item in p["allocated_artefacts"]]
        for allocation in biz.contact_allocations.values():
            items = allocation["allocated_artefacts"]
            notes = [i["artefact"]["id"] for i in items
                     if i["artefact"]["id"] in biz.sales_credit_notes]
            for item in items:
                if item["artefact"]["id"] in biz.sales_invoices and notes:
                    applications.append(Application("credit_note", notes[0],
                                                    item["artefact"]["id"],
                                                    money(item["amount"])))
        customers = [CustomerSummary(c["id"], c["name"], c.get("active", True) is not False)
                     for c in biz.contacts.values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)


def _status(record: Entry) -> Any:
    status = record.get("status")
    return status.get("id") if isinstance(status, dict) else status
