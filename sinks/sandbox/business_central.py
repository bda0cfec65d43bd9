"""Dynamics 365 Business Central API v2.0 sandbox.

Reproduces what a BC sink must cope with (shared/research/platforms-B.md §6):
Entra ID client-credentials tokens (no refresh token; ~1 h lifetime), the service
root ``/v2.0/{aadTenant}/{environment}/api/v2.0/companies({id})/…``, OData
``$filter`` (``field eq 'literal'``) and ``$expand`` of document lines, ETags with
mandatory ``If-Match`` on PATCH/DELETE and 412 ``Request_EntityChanged`` on a stale
one, deep insert of invoice and credit-memo lines, the bound actions
``Microsoft.NAV.post`` and ``Microsoft.NAV.cancel`` (posting renumbers the document;
cancel creates a corrective credit memo and refuses paid invoices), customer
payment journal lines that only touch balances once the journal is posted
(:meth:`BusinessCentralSandbox.post_payment_journal`, what a user or job queue does),
JSON ``$batch`` with atomicity groups (max 100 operations), duplicate customer numbers
(``Internal_EntityWithSameKeyExists``), closed posting periods ("Allow Posting From"),
blocked customers, 429 with ``Retry-After`` after 6,000 requests in 5 minutes or more
than 5 concurrent requests, and the error body ``{"error": {"code", "message"}}``.
There is no idempotency key: a re-sent POST creates a second document, as in BC.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

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

NAMESPACE = uuid.UUID("2b0c9a51-6d7e-4f1a-8b3c-5e9d0f1a2b3c")
MAX_BATCH = 100
SERVICE = "/v2.0/{aad}/{env}/api/v2.0"
BLOCKED_NONE = "_x0020_"
_TERM = r"(\w+)\s+eq\s+'((?:[^']|'')*)'"
_FILTER = re.compile(rf"^\s*{_TERM}(\s+and\s+{_TERM})*\s*$")
_KEY = r"\(([^)/]+)\)"


class Fail(Exception):
    """An OData error response raised from inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _filtered(records: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Records matching ``$filter`` (equality tests joined by ``and``, as BC accepts)."""
    text = query.get("$filter")
    if text is None:
        return records
    if not _FILTER.match(text):
        raise Fail(400, "BadRequest", f"Invalid filter expression '{text}'.")
    terms = [(name, value.replace("''", "'")) for name, value in re.findall(_TERM, text)]
    return [r for r in records if all(str(r.get(n, "")) == v for n, v in terms)]


def _key(raw: str) -> str:
    return raw[1:-1].replace("''", "'") if raw.startswith("'") else raw


@dataclass
class Company:
    """One BC company (the sandbox's tenant)."""

    id: str
    #: Tax group code → rate (sales tax); unknown codes are rejected.
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    #: G/L accounts and items that exist (``None``: accept any number).
    accounts: set[str] | None = None
    items: set[str] | None = None
    journals: set[str] | None = None
    allow_posting_from: date | None = None
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_memos: dict[str, dict[str, Any]] = field(default_factory=dict)
    journal_lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    posted_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    gl_entries: list[dict[str, Any]] = field(default_factory=list)
    applications: list[Application] = field(default_factory=list)
    seq: int = 0


class BusinessCentralSandbox(Sandbox):
    platform = "business-central"
    token_path = "/__sandbox/refresh-unused"

    def __init__(self, *, clock: Clock | None = None, per_five_minutes: int = 6000,
                 max_concurrent: int = 5, access_lifetime: int = 3599,
                 clients: dict[str, str] | None = None) -> None:
        self.companies: dict[str, Company] = {}
        #: client_id → client_secret accepted by the token endpoint.
        self.clients = dict(clients or {"ledgerstream": "s3cret"})
        self._batches = 0
        self._current_batch: str | None = None
        #: $batch (or single line) → payment document id ``<journal>/<first line id>``:
        #: lines created together are one payment; a second creation is a duplicate.
        self._batch_groups: dict[str, str] = {}
        super().__init__(clock=clock, windows=[Window("5min", 300, per_five_minutes)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=1)

    # ------------------------------------------------------------------ state / admin

    def company(self, company_id: str) -> Company:
        if company_id not in self.companies:
            self.companies[company_id] = Company(company_id)
        return self.companies[company_id]

    def configure(self, company_id: str, *, tax_rates: dict[str, Decimal] | None = None,
                  accounts: Iterable[str] | None = None, items: Iterable[str] | None = None,
                  journals: Iterable[str] | None = None) -> Company:
        with self.lock:
            comp = self.company(company_id)
            if tax_rates is not None:
                comp.tax_rates = dict(tax_rates)
            if accounts is not None:
                comp.accounts = set(accounts)
            if items is not None:
                comp.items = set(items)
            if journals is not None:
                comp.journals = set(journals)
            return comp

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            comp = self.company(tenant)
            comp.allow_posting_from = None if through is None else date.fromordinal(
                through.toordinal() + 1)

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        record = self.company(tenant).customers.get(customer_id)
        if record is None:
            raise KeyError(f"no customer {customer_id} in company {tenant}")
        record["blocked"] = "All"
        self._touch(record)

    def post_payment_journal(self, tenant: str, journal_id: str | None = None) -> int:
        """Post the journal's lines, as a BC user or job queue would; returns how many."""
        with self.lock:
            comp = self.company(tenant)
            posted = 0
            for line_id, line in list(comp.journal_lines.items()):
                if journal_id is not None and line["_journal"] != journal_id:
                    continue
                self._check_posting_date(comp, line["postingDate"])
                amount = money(line["amount"])
                unapplied = amount
                target = line.get("appliesToInvoiceId")
                if target and target in comp.invoices:
                    invoice = comp.invoices[target]
                    applied = min(amount, money(invoice["remainingAmount"]))
                    self._apply(comp, invoice, applied)
                    comp.applications.append(Application("payment", line["_batch"], target,
                                                         applied))
                    unapplied -= applied
                group = comp.posted_payments.setdefault(line["_batch"], {
                    "id": line["_batch"], "customerId": line["customerId"],
                    "amount": Decimal(0), "unapplied": Decimal(0),
                    "date": line["postingDate"], "reference": line["externalDocumentNumber"],
                    "seq": line["_seq"]})
                group["amount"] += amount
                group["unapplied"] += unapplied
                # The customer side of the posting; the sandbox keeps the line's id so
                # a lookup after posting yields the same payment id.
                comp.gl_entries.append({
                    "id": line_id, "entryNumber": len(comp.gl_entries) + 1,
                    "postingDate": line["postingDate"], "documentNumber":
                    line["documentNumber"], "documentType": "Payment",
                    "accountNumber": "RECEIVABLES", "description": line["description"],
                    "debitAmount": 0.0, "creditAmount": num(amount)})
                del comp.journal_lines[line_id]
                posted += 1
            return posted

    # ------------------------------------------------------------------ error shapes

    @staticmethod
    def _error(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                            headers=headers)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self._error(403, "Authorization_InsufficientPermissions",
                               "You do not have the following permissions on this company.")
        message = ("The access token has expired." if outcome == "expired"
                   else "The credentials provided are incorrect")
        return self._error(401, "Authentication_InvalidCredentials", message,
                           {"WWW-Authenticate": 'Bearer authorization_uri="https://login.'
                                                'microsoftonline.com/common/oauth2/authorize"'})

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        retry = throttle.retry_after if throttle.retry_after is not None else 1
        return self._error(429, "Application_TooManyRequests",
                           f"Too many requests reached ({throttle.problem}). Actual (6001). "
                           "Maximum (6000).", {"Retry-After": str(retry)})

    def server_error(self, status: int) -> Response:
        code = "Internal_ServiceUnavailable" if status == 503 else "Internal_ServerError"
        return self._error(status, code, "The service is temporarily unavailable.")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"token_type": "Bearer", "expires_in": pair.expires_in,
                "ext_expires_in": pair.expires_in, "access_token": pair.access_token}

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{aad}/oauth2/v2.0/token", self._client_credentials, methods=["POST"]),
            Route(SERVICE + "/{rest:path}", self._api,
                  methods=["GET", "POST", "PATCH", "DELETE"]),
        ]

    async def _client_credentials(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "AADSTS70003: The app requested an "
                                 "unsupported grant type."}, status_code=400)
        if form.get("scope") != "https://api.businesscentral.dynamics.com/.default":
            return JSONResponse({"error": "invalid_scope",
                                 "error_description": "AADSTS70011: The provided value for "
                                 "the input parameter 'scope' is not valid."}, status_code=400)
        if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
            return JSONResponse({"error": "invalid_client",
                                 "error_description": "AADSTS7000215: Invalid client secret "
                                 "provided."}, status_code=401)
        return JSONResponse(self.token_response(self.tokens.issue(None)))

    async def _api(self, request: Request) -> Response:
        rest = request.path_params["rest"]
        body = await read_json(request)
        method = request.method
        query = dict(request.query_params)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if rest == "$batch":
            requests = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(requests, list) or not requests:
                return self._error(400, "BadRequest", "The batch request body is invalid.")
            tenant = self._company_of(str(requests[0].get("url", ""))) or ""
            return await self.guarded(request, tenant,
                                      lambda: self._batch(requests), write=True)
        company = self._company_of(rest)
        if company is None:
            return self._error(404, "BadRequest_NotFound", f"No HTTP resource matches {rest}.")

        def run() -> Response:
            status, payload, extra = self._dispatch(method, rest, query, headers, body)
            if payload is None:
                return Response(status_code=status, headers=extra)
            return JSONResponse(payload, status_code=status, headers=extra)

        return await self.guarded(request, company, lambda: self._guard(run),
                                  write=method != "GET")

    def _guard(self, run: Any) -> Response:
        try:
            response: Response = run()
            return response
        except Fail as fail:
            return self._error(fail.status, fail.code, fail.message)

    @staticmethod
    def _company_of(path: str) -> str | None:
        match = re.match(r"^/?companies" + _KEY, path)
        return _key(match.group(1)) if match else None

    # ------------------------------------------------------------------ $batch

    def _batch(self, requests: list[dict[str, Any]]) -> Response:
        if len(requests) > MAX_BATCH:
            return self._error(400, "BadRequest",
                               f"The batch contains more than {MAX_BATCH} operations.")
        self._batches += 1
        self._current_batch = f"BATCH-{self._batches}"
        try:
            return self._run_batch(requests)
        finally:
            self._current_batch = None

    def _run_batch(self, requests: list[dict[str, Any]]) -> Response:
        snapshots: dict[str, Company] = {}
        failed_groups: set[str] = set()
        responses: list[dict[str, Any]] = []
        for item in requests:
            group = item.get("atomicityGroup")
            url = str(item.get("url", "")).split("?", 1)
            company = self._company_of(url[0])
            if group and company and company not in snapshots:
                snapshots[company] = copy.deepcopy(self.company(company))
            if group and group in failed_groups:
                responses.append({"id": item.get("id"), "status": 424, "body": {"error": {
                    "code": "BadRequest", "message": "Failed dependency."}}})
                continue
            query = {k: v[0] for k, v in parse_qs(url[1]).items()} if len(url) > 1 else {}
            headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
            try:
                if company is None:
                    raise Fail(404, "BadRequest_NotFound", f"No resource matches {url[0]}.")
                status, payload, extra = self._dispatch(str(item.get("method", "GET")).upper(),
                                                        url[0], query, headers,
                                                        item.get("body"))
            except Fail as fail:
                status, payload, extra = fail.status, {"error": {
                    "code": fail.code, "message": fail.message}}, {}
            responses.append({"id": item.get("id"), "status": status, "headers": extra,
                              **({"body": payload} if payload is not None else {})})
            if status >= 400 and group:
                failed_groups.add(group)
        if failed_groups:
            for company, snapshot in snapshots.items():
                self.companies[company] = snapshot
            for resp in responses:
                if resp["status"] < 400:
                    resp["status"] = 424
                    resp["body"] = {"error": {"code": "BadRequest",
                                              "message": "Failed dependency."}}
        return JSONResponse({"responses": responses})

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str, path: str, query: dict[str, str],
                  headers: dict[str, str], body: Any
                  ) -> tuple[int, Any, dict[str, str]]:
        path = path.lstrip("/")
        match = re.match(r"^companies" + _KEY + r"/(.+)$", path)
        if not match:
            raise Fail(404, "BadRequest_NotFound", f"No HTTP resource matches {path}.")
        comp = self.company(_key(match.group(1)))
        sub = match.group(2)
        if method in ("PATCH", "DELETE") and "if-match" not in headers:
            raise Fail(400, "Request_IfMatchMissing",
                       "Could not process the request because the If-Match header is missing.")
        if method in ("POST", "PATCH") and body is not None and not isinstance(body, dict):
            raise Fail(400, "BadRequest", "Invalid request body.")
        for entity, store_name, lines in (("customers", "customers", None),
                                          ("salesInvoices", "invoices", "salesInvoiceLines"),
                                          ("salesCreditMemos", "credit_memos",
                                           "salesCreditMemoLines")):
            if sub == entity:
                if method == "GET":
                    return 200, self._list(comp, store_name, query, lines), {}
                if method == "POST":
                    record = self._create(comp, entity, body or {})
                    return 201, self._public(record, lines, True), self._etag_header(record)
            m = re.match(rf"^{entity}{_KEY}(?:/(.+))?$", sub)
            if m:
                store = getattr(comp, store_name)
                record = store.get(_key(m.group(1)))
                if record is None:
                    raise Fail(404, "BadRequest_NotFound",
                               f"The {entity} with id {_key(m.group(1))} does not exist.")
                return self._on_record(comp, entity, record, m.group(2), method, query,
                                       headers, body or {}, lines)
        if sub == "generalLedgerEntries" and method == "GET":
            return 200, {"value": _filtered(list(comp.gl_entries), query)}, {}
        m = re.match(rf"^customerPaymentJournals{_KEY}/customerPayments(?:{_KEY})?$", sub)
        if m:
            return self._payments(comp, _key(m.group(1)),
                                  _key(m.group(2)) if m.group(2) else None, method, query,
                                  headers, body or {})
        raise Fail(404, "BadRequest_NotFound", f"No HTTP resource matches {sub}.")

    def _on_record(self, comp: Company, entity: str, record: dict[str, Any], rest: str | None,
                   method: str, query: dict[str, str], headers: dict[str, str],
                   body: dict[str, Any], lines: str | None) -> tuple[int, Any, dict[str, str]]:
        if rest is None:
            if method == "GET":
                expand = lines is not None and query.get("$expand") == lines
                return 200, self._public(record, lines, expand), self._etag_header(record)
            self._check_etag(record, headers)
            if method == "PATCH":
                self._patch(comp, entity, record, body)
                return 200, self._public(record, lines, False), self._etag_header(record)
            if method == "DELETE":
                if entity != "customers" and record["status"] != "Draft":
                    raise Fail(400, "Application_DialogException",
                               "You cannot delete a posted document.")
                store = {"customers": comp.customers, "salesInvoices": comp.invoices,
                         "salesCreditMemos": comp.credit_memos}[entity]
                del store[record["id"]]
                return 204, None, {}
        elif rest == "Microsoft.NAV.post" and method == "POST" and entity != "customers":
            self._post_document(comp, entity, record)
            return 204, None, {}
        elif rest == "Microsoft.NAV.cancel" and method == "POST" and entity == "salesInvoices":
            self._cancel(comp, record)
            return 204, None, {}
        elif lines is not None and rest.startswith(lines):
            return self._lines(comp, record, rest[len(lines):], method, headers, body, lines)
        raise Fail(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed here.")

    # ------------------------------------------------------------------ helpers

    def _new_id(self, comp: Company, kind: str) -> str:
        comp.seq += 1
        return str(uuid.uuid5(NAMESPACE, f"{comp.id}:{kind}:{comp.seq}"))

    def _touch(self, record: dict[str, Any]) -> None:
        record["_v"] = record.get("_v", 0) + 1
        record["lastModifiedDateTime"] = self.clock.now().isoformat().replace("+00:00", "Z")

    @staticmethod
    def _etag(record: dict[str, Any]) -> str:
        return f'W/"JzE5Ozk{record["id"][:8]}{record.get("_v", 0)}Oyc="'

    def _etag_header(self, record: dict[str, Any]) -> dict[str, str]:
        return {"ETag": self._etag(record)}

    def _check_etag(self, record: dict[str, Any], headers: dict[str, str]) -> None:
        tag = headers.get("if-match")
        if tag != "*" and tag != self._etag(record):
            raise Fail(412, "Request_EntityChanged",
                       "Could not save the changes because the record has been modified "
                       "since it was last read. Refresh and try again.")

    def _public(self, record: dict[str, Any], lines: str | None, expand: bool
                ) -> dict[str, Any]:
        out = {k: (num(v) if isinstance(v, Decimal) else v)
               for k, v in record.items() if not k.startswith("_") and k != "lines"}
        out["@odata.etag"] = self._etag(record)
        if lines is not None and expand:
            out[lines] = [self._public(line, None, False) for line in record["lines"]]
        return out

    def _list(self, comp: Company, store_name: str, query: dict[str, str],
              lines: str | None) -> dict[str, Any]:
        records = list(getattr(comp, store_name).values())
        records = _filtered(records, query)
        expand = lines is not None and query.get("$expand") == lines
        return {"value": [self._public(r, lines, expand) for r in records]}

    @staticmethod
    def _text(body: dict[str, Any], name: str, limit: int) -> str:
        value = body.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise Fail(400, "BadRequest", f"Invalid value for property '{name}'.")
        if len(value) > limit:
            raise Fail(400, "Application_StringExceededLength",
                       f"The length of the string is {len(value)}, but it must be less than "
                       f"or equal to {limit} characters. Value: {value}")
        return value

    def _check_posting_date(self, comp: Company, raw: str) -> None:
        if comp.allow_posting_from is not None and date.fromisoformat(
                raw[:10]) < comp.allow_posting_from:
            raise Fail(400, "Application_DialogException",
                       "Posting Date is not within your range of allowed posting dates.")

    # ------------------------------------------------------------------ customers & docs

    def _create(self, comp: Company, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity == "customers":
            return self._create_customer(comp, body)
        return self._create_document(comp, entity, body)

    _CUSTOMER_TEXT = {"number": 20, "displayName": 100, "addressLine1": 100,
                      "addressLine2": 50, "city": 30, "state": 30, "country": 10,
                      "postalCode": 20, "email": 80, "phoneNumber": 30,
                      "taxRegistrationNumber": 20, "type": 20, "currencyCode": 10,
                      "blocked": 10}

    def _customer_fields(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        for name, limit in self._CUSTOMER_TEXT.items():
            if name in body:
                record[name] = self._text(body, name, limit)
        if "taxLiable" in body:
            record["taxLiable"] = bool(body["taxLiable"])
        if record.get("blocked") not in (BLOCKED_NONE, "Ship", "Invoice", "All"):
            raise Fail(400, "BadRequest", f"Invalid enum value '{record.get('blocked')}' "
                                          "for property 'blocked'.")

    def _create_customer(self, comp: Company, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("displayName"):
            raise Fail(400, "BadRequest", "The property 'displayName' is required.")
        record: dict[str, Any] = {"id": self._new_id(comp, "customer"),
                                  "blocked": BLOCKED_NONE, "_seq": comp.seq}
        self._customer_fields(record, body)
        if not record.get("number"):
            record["number"] = f"C{comp.seq:05d}"
        if any(c["number"] == record["number"] for c in comp.customers.values()):
            raise Fail(400, "Internal_EntityWithSameKeyExists",
                       "The record in table Customer already exists. Identification fields "
                       f"and values: No.='{record['number']}'")
        self._touch(record)
        comp.customers[record["id"]] = record
        return record

    def _customer_ref(self, comp: Company, customer_id: Any) -> dict[str, Any]:
        customer = comp.customers.get(str(customer_id))
        if customer is None:
            raise Fail(400, "Internal_RecordNotFound",
                       "The Customer does not exist. Identification fields and values: "
                       f"Id='{customer_id}'")
        if customer.get("blocked") == "All":
            raise Fail(400, "Application_DialogException",
                       f"You cannot create this type of document when Customer "
                       f"{customer['number']} is blocked with type All")
        return customer

    def _make_line(self, comp: Company, body: dict[str, Any], seq: int) -> dict[str, Any]:
        line_type = body.get("lineType", "Item")
        number = str(body.get("lineObjectNumber", ""))
        known = comp.accounts if line_type == "Account" else comp.items
        if line_type not in ("Account", "Item", "Comment"):
            raise Fail(400, "BadRequest", f"Invalid enum value '{line_type}' for 'lineType'.")
        if line_type != "Comment" and known is not None and number not in known:
            table = "G/L Account" if line_type == "Account" else "Item"
            raise Fail(400, "Internal_RecordNotFound",
                       f"The {table} does not exist. Identification fields and values: "
                       f"No.='{number}'")
        tax_code = self._text(body, "taxCode", 50)
        if tax_code and tax_code not in comp.tax_rates:
            raise Fail(400, "Internal_RecordNotFound",
                       f"The Tax Group does not exist. Identification fields and values: "
                       f"Code='{tax_code}'")
        quantity = Decimal(str(body.get("quantity", 0))).quantize(Decimal("0.00001"),
                                                                    ROUND_HALF_UP)
        price = Decimal(str(body.get("unitPrice", 0))).quantize(Decimal("0.00001"),
                                                                  ROUND_HALF_UP)
        if price < 0:
            raise Fail(400, "Application_DialogException",
                       "Unit Price must not be negative.")
        return {"id": self._new_id(comp, "line"), "sequence": body.get("sequence", seq),
                "lineType": line_type, "lineObjectNumber": number,
                "description": self._text(body, "description", 100),
                "quantity": quantity, "unitPrice": price, "taxCode": tax_code,
                "amountExcludingTax": money(quantity * price)}

    def _create_document(self, comp: Company, entity: str, body: dict[str, Any]
                         ) -> dict[str, Any]:
        invoice = entity == "salesInvoices"
        customer = self._customer_ref(comp, body.get("customerId"))
        lines_name = "salesInvoiceLines" if invoice else "salesCreditMemoLines"
        kind = "invoice" if invoice else "creditmemo"
        doc_id = self._new_id(comp, kind)
        date_field = "invoiceDate" if invoice else "creditMemoDate"
        record: dict[str, Any] = {
            "id": doc_id, "number": f"{'S-INV' if invoice else 'S-CR'}{1000 + comp.seq}",
            "externalDocumentNumber": self._text(body, "externalDocumentNumber", 35),
            date_field: str(body.get(date_field) or self.clock.now().date().isoformat()),
            "postingDate": str(body.get("postingDate") or body.get(date_field)
                               or self.clock.now().date().isoformat()),
            "customerId": customer["id"], "customerNumber": customer["number"],
            "customerName": customer.get("displayName", ""),
            "currencyCode": self._text(body, "currencyCode", 10),
            "pricesIncludeTax": bool(body.get("pricesIncludeTax", False)),
            "status": "Draft", "_seq": comp.seq, "lines": [],
        }
        if invoice:
            record["dueDate"] = str(body.get("dueDate") or record["invoiceDate"])
            record["customerPurchaseOrderReference"] = self._text(
                body, "customerPurchaseOrderReference", 35)
        else:
            target = body.get("invoiceId")
            if target and target not in comp.invoices:
                raise Fail(400, "Internal_RecordNotFound",
                           f"The Sales Invoice Header does not exist. Id='{target}'")
            record["invoiceId"] = target or None
        for i, line in enumerate(body.get(lines_name) or [], start=1):
            if not isinstance(line, dict):
                raise Fail(400, "BadRequest", f"Invalid value for property '{lines_name}'.")
            record["lines"].append(self._make_line(comp, line, i * 10000))
        self._totals(comp, record)
        self._touch(record)
        (comp.invoices if invoice else comp.credit_memos)[doc_id] = record
        return record

    def _totals(self, comp: Company, record: dict[str, Any]) -> None:
        by_code: dict[str, Decimal] = {}
        net = Decimal(0)
        for line in record["lines"]:
            net += line["amountExcludingTax"]
            by_code[line["taxCode"]] = by_code.get(line["taxCode"], Decimal(0)) + line[
                "amountExcludingTax"]
        tax = Decimal(0)
        for code, base in by_code.items():
            rate = comp.tax_rates.get(code, Decimal(0))
            if record["pricesIncludeTax"]:
                tax += money(base - base / (1 + rate))
            else:
                tax += money(base * rate)
        if record["pricesIncludeTax"]:
            net -= tax
        record["totalAmountExcludingTax"] = money(net)
        record["totalTaxAmount"] = money(tax)
        record["totalAmountIncludingTax"] = money(net + tax)
        record["remainingAmount"] = money(net + tax)

    def _patch(self, comp: Company, entity: str, record: dict[str, Any],
               body: dict[str, Any]) -> None:
        if entity == "customers":
            self._customer_fields(record, body)
        else:
            if record["status"] != "Draft":
                raise Fail(400, "Application_DialogException",
                           f"The document {record['number']} has been posted and cannot be "
                           "modified.")
            if "customerId" in body:
                customer = self._customer_ref(comp, body["customerId"])
                record["customerId"], record["customerNumber"] = customer["id"], customer[
                    "number"]
            for name, limit in (("externalDocumentNumber", 35),
                                ("customerPurchaseOrderReference", 35), ("currencyCode", 10)):
                if name in body:
                    record[name] = self._text(body, name, limit)
            for name in ("invoiceDate", "creditMemoDate", "postingDate", "dueDate"):
                if name in body:
                    record[name] = str(body[name])
            if "pricesIncludeTax" in body:
                record["pricesIncludeTax"] = bool(body["pricesIncludeTax"])
            self._totals(comp, record)
        self._touch(record)

    def _lines(self, comp: Company, record: dict[str, Any], rest: str, method: str,
               headers: dict[str, str], body: dict[str, Any], lines: str
               ) -> tuple[int, Any, dict[str, str]]:
        if rest == "" and method == "GET":
            return 200, {"value": [self._public(x, None, False) for x in record["lines"]]}, {}
        if record["status"] != "Draft":
            raise Fail(400, "Application_DialogException",
                       f"The document {record['number']} has been posted and cannot be "
                       "modified.")
        if rest == "" and method == "POST":
            line = self._make_line(comp, body, (len(record["lines"]) + 1) * 10000)
            record["lines"].append(line)
            self._totals(comp, record)
            self._touch(record)
            return 201, self._public(line, None, False), self._etag_header(line)
        m = re.match(rf"^{_KEY}$", rest)
        if m and method == "DELETE":
            key = _key(m.group(1))
            found = [x for x in record["lines"] if x["id"] == key]
            if not found:
                raise Fail(404, "BadRequest_NotFound", f"The line {key} does not exist.")
            self._check_etag(found[0], headers)
            record["lines"].remove(found[0])
            self._totals(comp, record)
            self._touch(record)
            return 204, None, {}
        raise Fail(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed here.")

    def _post_document(self, comp: Company, entity: str, record: dict[str, Any]) -> None:
        if record["status"] != "Draft":
            raise Fail(400, "Application_DialogException",
                       f"The document {record['number']} is already posted.")
        if not record["lines"]:
            raise Fail(400, "Application_DialogException", "There is nothing to post.")
        self._customer_ref(comp, record["customerId"])
        self._check_posting_date(comp, record["postingDate"])
        record["number"] = "P" + record["number"]
        record["status"] = "Open"
        if entity == "salesCreditMemos" and record.get("invoiceId"):
            invoice = comp.invoices[record["invoiceId"]]
            applied = min(money(record["remainingAmount"]), money(invoice["remainingAmount"]))
            if invoice["status"] in ("Open",) and applied > 0:
                self._apply(comp, invoice, applied)
                record["remainingAmount"] = money(record["remainingAmount"]) - applied
                comp.applications.append(Application("credit_note", record["id"],
                                                     invoice["id"], applied))
                if record["remainingAmount"] == 0:
                    record["status"] = "Paid"
        self._touch(record)

    @staticmethod
    def _apply(comp: Company, invoice: dict[str, Any], amount: Decimal) -> None:
        invoice["remainingAmount"] = money(invoice["remainingAmount"]) - amount
        if invoice["remainingAmount"] <= 0 and invoice["status"] == "Open":
            invoice["status"] = "Paid"

    def _cancel(self, comp: Company, invoice: dict[str, Any]) -> None:
        if invoice["status"] == "Draft":
            raise Fail(400, "Application_DialogException",
                       "Only posted invoices can be canceled.")
        if invoice["status"] == "Canceled":
            raise Fail(400, "Application_DialogException",
                       f"The invoice {invoice['number']} has already been canceled.")
        if money(invoice["remainingAmount"]) != money(invoice["totalAmountIncludingTax"]):
            raise Fail(400, "Application_DialogException",
                       f"You cannot cancel this posted sales invoice {invoice['number']} "
                       "because it is fully or partially paid.")
        self._check_posting_date(comp, invoice["postingDate"])
        memo_id = self._new_id(comp, "creditmemo")
        total = money(invoice["totalAmountIncludingTax"])
        comp.credit_memos[memo_id] = {
            "id": memo_id, "number": f"PS-CR{1000 + comp.seq}",
            "externalDocumentNumber": "", "creditMemoDate": invoice["postingDate"],
            "postingDate": invoice["postingDate"], "customerId": invoice["customerId"],
            "customerNumber": invoice["customerNumber"], "customerName":
            invoice["customerName"], "currencyCode": invoice["currencyCode"],
            "pricesIncludeTax": invoice["pricesIncludeTax"], "invoiceId": invoice["id"],
            "status": "Corrective", "totalAmountExcludingTax":
            invoice["totalAmountExcludingTax"], "totalTaxAmount": invoice["totalTaxAmount"],
            "totalAmountIncludingTax": total, "remainingAmount": Decimal(0),
            "lines": copy.deepcopy(invoice["lines"]), "_seq": comp.seq}
        self._touch(comp.credit_memos[memo_id])
        comp.applications.append(Application("credit_note", memo_id, invoice["id"], total))
        invoice["remainingAmount"] = Decimal(0)
        invoice["status"] = "Canceled"
        self._touch(invoice)

    # ------------------------------------------------------------------ payments

    def _payments(self, comp: Company, journal: str, line_id: str | None, method: str,
                  query: dict[str, str], headers: dict[str, str], body: dict[str, Any]
                  ) -> tuple[int, Any, dict[str, str]]:
        if comp.journals is not None and journal not in comp.journals:
            raise Fail(404, "BadRequest_NotFound",
                       f"The customerPaymentJournal with id {journal} does not exist.")
        lines = [x for x in comp.journal_lines.values() if x["_journal"] == journal]
        if line_id is None and method == "GET":
            lines = _filtered(lines, query)
            return 200, {"value": [self._public(x, None, False) for x in lines]}, {}
        if line_id is None and method == "POST":
            customer = self._customer_ref(comp, body.get("customerId"))
            target = body.get("appliesToInvoiceId")
            if target:
                invoice = comp.invoices.get(str(target))
                if invoice is None or invoice["status"] == "Draft":
                    raise Fail(400, "Internal_RecordNotFound",
                               f"The Cust. Ledger Entry does not exist. Invoice Id='{target}'")
            posting = str(body.get("postingDate") or self.clock.now().date().isoformat())
            self._check_posting_date(comp, posting)
            line_id = self._new_id(comp, "payment")
            token = self._current_batch or line_id
            # a payment is the lines of one $batch; its id is the one the platform module
            # derives (journal / first line / document number)
            document = self._text(body, "documentNumber", 20)
            group = self._batch_groups.setdefault(token, f"{journal}/{line_id}/{document}")
            line = {"id": line_id, "journalDisplayName": journal,
                    "lineNumber": (len(lines) + 1) * 10000, "customerId": customer["id"],
                    "customerNumber": customer["number"], "postingDate": posting,
                    "documentNumber": self._text(body, "documentNumber", 20),
                    "externalDocumentNumber": self._text(body, "externalDocumentNumber", 35),
                    "amount": money(body.get("amount")), "appliesToInvoiceId": target or None,
                    "description": self._text(body, "description", 100),
                    "_journal": journal, "_seq": comp.seq, "_batch": group}
            self._touch(line)
            comp.journal_lines[line["id"]] = line
            return 201, self._public(line, None, False), self._etag_header(line)
        found = comp.journal_lines.get(line_id or "")
        if found is None or found["_journal"] != journal:
            raise Fail(404, "BadRequest_NotFound",
                       f"The customerPayment with id {line_id} does not exist.")
        line = found
        if method == "GET":
            return 200, self._public(line, None, False), self._etag_header(line)
        if method == "DELETE":
            self._check_etag(line, headers)
            del comp.journal_lines[line["id"]]
            return 204, None, {}
        raise Fail(405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed here.")

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        comp = self.company(tenant)
        documents: list[DocumentSummary] = []
        for store, kind in ((comp.invoices, "invoice"), (comp.credit_memos, "credit_note")):
            for doc in store.values():
                draft = doc["status"] == "Draft"
                # Neutral terms: a canceled invoice and the corrective credit memo BC
                # made for it are a void; its reference is free for the re-issued one.
                voided = doc["status"] in ("Canceled", "Corrective")
                documents.append(DocumentSummary(
                    kind, doc["id"], doc["number"],  # type: ignore[arg-type]
                    None if voided else doc.get("externalDocumentNumber") or None,
                    doc["customerId"], "Voided" if voided else doc["status"],
                    money(doc["totalAmountIncludingTax"]),
                    Decimal(0) if draft else money(doc["remainingAmount"]),
                    doc["postingDate"], doc["_seq"]))
        payments = [PaymentSummary(p["id"], p["customerId"], money(p["amount"]),
                                   money(p["unapplied"]), "Posted", p["date"],
                                   p["reference"] or None, p["seq"])
                    for p in comp.posted_payments.values()]
        unposted: dict[str, dict[str, Any]] = {}
        for line in comp.journal_lines.values():
            group = unposted.setdefault(line["_batch"], {
                "customer": line["customerId"], "amount": Decimal(0),
                "date": line["postingDate"], "ref": line["externalDocumentNumber"],
                "seq": line["_seq"]})
            group["amount"] += money(line["amount"])
        # Unposted journal lines do not touch BC balances: unapplied 0 keeps them out.
        payments += [PaymentSummary(key, g["customer"], g["amount"], Decimal(0), "Unposted",
                                    g["date"], g["ref"] or None, g["seq"])
                     for key, g in unposted.items()]
        customers = [CustomerSummary(c["id"], c.get("displayName", ""),
                                     c.get("blocked") != "All")
                     for c in comp.customers.values()]
        return build_report(self.platform, tenant, documents, payments,
                            list(comp.applications), customers)
