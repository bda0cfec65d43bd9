"""Oracle NetSuite sandbox: the REST record API (v1) and the SuiteTalk SOAP upsert.

Reproduces what a NetSuite sink must cope with (shared/research/platforms-A.md §8,
platforms-B.md §5):

* one account per tenant; the real host ``<account>.suitetalk.api.netsuite.com`` is
  mapped to a path prefix: ``/<account>/services/rest/record/v1/<record>/<id|eid:x>``
  and ``/<account>/services/NetSuitePort_2023_2``;
* ``PUT …/eid:<externalId>`` upsert answering ``204`` with a ``Location`` header;
  ``PATCH``, ``DELETE``, ``GET`` by internal id or ``eid:``; ``replace=item``;
* authentication by OAuth 1.0a TBA (HMAC-SHA256 signature, realm, nonce replay and
  timestamp checks) or OAuth 2.0 bearer tokens; SOAP by a signed ``tokenPassport``;
* the ``nsError`` body (``type``, ``title``, ``status``, ``o:errorDetails[]{detail,
  o:errorCode, o:errorPath}``) and SOAP faults / ``status isSuccess="false"``;
* validation against the account's items, tax codes and accounts
  (``INVALID_KEY_OR_REF`` with the path), ``MISSING_REQD_FLD``, unknown fields,
  duplicate ``tranId`` (``DUP_TRANS``), closed periods (``TRAN_PERIOD_CLOSED``),
  ``RCRD_HAS_BEEN_CHANGED`` (armable), deletes refused while applied
  (``CANT_DELETE_TRANS``), over-application and over-refund;
* the account concurrency pool (429 ``CONCURRENCY_LIMIT_EXCEEDED``, no Retry-After;
  SOAP ``ExceededConcurrentRequestLimitFault`` / ``WS_REQUEST_BLOCKED``);
* the faults of :mod:`sinks.sandbox.core`, including write-then-drop-response.

The error codes are members of ``StatusDetailCodeType`` in the 2023.2 XSD; exact
message texts are approximations (no live account was available).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from lxml import etree
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
    build_report,
    money,
    num,
    read_json,
)
from sinks.transport.auth import oauth1_signature_base_string
from sinks.transport.soap import (
    XSI,
    build_fault,
    child,
    children,
    envelope,
    local,
    parse,
    serialize,
    sub,
    text_of,
)

REST = "/services/rest/record/v1"
RECORDS = {"customer": "customer", "invoice": "invoice", "customerpayment": "customerPayment",
           "creditmemo": "creditMemo", "customerrefund": "customerRefund"}
SALES = ("invoice", "creditMemo")
TRANSACTIONS = ("invoice", "creditMemo", "customerPayment", "customerRefund")
FIELDS: dict[str, set[str]] = {
    "customer": {"companyName", "firstName", "lastName", "isPerson", "email", "phone",
                 "subsidiary", "currency", "isInactive", "resaleNumber", "externalId"},
    "invoice": {"entity", "tranDate", "dueDate", "tranId", "otherRefNum", "memo", "item",
                "currency", "subsidiary", "location", "class", "externalId"},
    "creditMemo": {"entity", "tranDate", "tranId", "memo", "item", "apply", "currency",
                   "subsidiary", "location", "class", "externalId"},
    "customerPayment": {"customer", "tranDate", "tranId", "payment", "undepFunds", "account",
                        "memo", "apply", "currency", "externalId"},
    "customerRefund": {"customer", "tranDate", "account", "memo", "apply", "currency",
                       "externalId"},
}
TITLES = {400: ("Bad Request", "rfc9110.html#section-15.5.1"),
          401: ("Unauthorized", "rfc9110.html#section-15.5.2"),
          403: ("Forbidden", "rfc9110.html#section-15.5.4"),
          404: ("Not Found", "rfc9110.html#section-15.5.5"),
          429: ("Too Many Requests", "rfc6585.html#section-4"),
          500: ("Internal Server Error", "rfc9110.html#section-15.6.1"),
          503: ("Service Unavailable", "rfc9110.html#section-15.6.4")}
TIMESTAMP_SKEW = 300
NS_SOAP = {
    "platformMsgs": "urn:messages_{v}.platform.webservices.netsuite.com",
    "platformCore": "urn:core_{v}.platform.webservices.netsuite.com",
    "platformFaults": "urn:faults_{v}.platform.webservices.netsuite.com",
}


class NsError(Exception):
    def __init__(self, status: int, code: str, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.path = status, code, detail, path


@dataclass
class TbaCredential:
    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str
    revoked: bool = False


@dataclass
class Account:
    account_id: str
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in RECORDS.values()})
    eids: dict[str, dict[str, str]] = field(
        default_factory=lambda: {name: {} for name in RECORDS.values()})
    lock_date: date | None = None
    items: set[str] = field(default_factory=lambda: {"10", "11", "12", "13"})
    tax_codes: dict[str, Decimal] = field(
        default_factory=lambda: {"-7": Decimal(0), "5": Decimal("0.0825")})
    accounts: set[str] = field(default_factory=lambda: {"1", "2", "3"})
    seq: int = 0
    tba: list[TbaCredential] = field(default_factory=list)
    #: Deleted transactions, as ``getDeleted`` reports them (record type, copy).
    deleted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _ref_id(account: Account, record: str, ref: Any, path: str) -> str:
    if not isinstance(ref, dict) or not (ref.get("id") or ref.get("externalId")):
        raise NsError(400, "MISSING_REQD_FLD",
                      f"Please enter value(s) for: {path}", path)
    if ref.get("id"):
        found = str(ref["id"])
        if found not in account.records[record] or \
                account.records[record][found].get("isInactive"):  # inactive: not selectable
            raise NsError(400, "INVALID_KEY_OR_REF",
                          f"Invalid {path} reference key {found}.", path)
        return found
    eid = str(ref["externalId"])
    if eid not in account.eids[record]:
        raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid {path} reference key {eid}.", path)
    return account.eids[record][eid]


def _dec(value: Any, path: str) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise NsError(400, "INVALID_FLD_VALUE", f"Invalid number for {path}", path) from None


class NetSuiteSandbox(Sandbox):
    platform = "netsuite"
    token_path = "/services/rest/auth/oauth2/v1/token"

    def __init__(self, *, clock: Clock | None = None, max_concurrent: int = 5,
                 access_lifetime: int = 3600) -> None:
        self.accounts: dict[str, Account] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._changed_faults = 0
        self._fault_lock = threading.Lock()
        super().__init__(clock=clock, windows=[], max_concurrent=max_concurrent,
                         access_lifetime=access_lifetime, idempotency_window=3600)

    # ------------------------------------------------------------------ admin

    def account(self, account_id: str) -> Account:
        key = account_id.lower()
        if key not in self.accounts:
            self.accounts[key] = Account(key)
        return self.accounts[key]

    def register_tba(self, account_id: str, consumer_key: str, consumer_secret: str,
                     token: str, token_secret: str) -> TbaCredential:
        credential = TbaCredential(consumer_key, consumer_secret, token, token_secret)
        with self.lock:
            self.account(account_id).tba.append(credential)
        return credential

    def revoke_tba(self, account_id: str) -> None:
        with self.lock:
            for credential in self.account(account_id).tba:
                credential.revoked = True

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.account(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        customer = self.account(tenant).records["customer"].get(customer_id)
        if customer is None:
            raise KeyError(f"no customer {customer_id} in account {tenant}")
        customer["isInactive"] = True

    def apply_fault(self, spec: dict[str, Any]) -> None:
        """Adds ``record_changed`` (next N writes fail with RCRD_HAS_BEEN_CHANGED)."""
        if spec.get("kind") == "record_changed":
            with self._fault_lock:
                self._changed_faults += int(spec.get("count", 1))
            return
        super().apply_fault(spec)

    # ------------------------------------------------------------------ error shapes

    @staticmethod
    def ns_error(status: int, code: str, detail: str, path: str | None = None) -> JSONResponse:
        title, anchor = TITLES.get(status, ("Error", "rfc9110.html"))
        item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
        if path:
            item["o:errorPath"] = path
        return JSONResponse({"type": f"https://www.rfc-editor.org/rfc/{anchor}", "title": title,
                             "status": status, "o:errorDetails": [item]}, status_code=status)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            return self.ns_error(403, "INSUFFICIENT_PERMISSION",
                                 "Permission Violation: the token is not valid for this "
                                 "account.")
        return self.ns_error(401, "INVALID_LOGIN",
                             "Invalid login attempt. See the Login Audit Trail in NetSuite.")

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        return self.ns_error(429, "CONCURRENCY_LIMIT_EXCEEDED",
                             "Request blocked: the account's concurrency limit is reached.")

    def server_error(self, status: int) -> Response:
        return self.ns_error(status, "UNEXPECTED_ERROR", "An unexpected error occurred.")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
                "expires_in": str(pair.expires_in), "token_type": "bearer"}

    # ------------------------------------------------------------------ auth

    def _tba_outcome(self, request: Request, account: Account, raw: bytes) -> str:
        header = request.headers.get("authorization", "")
        params = dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', header[6:]))
        params = {k: urllib.parse.unquote(v) for k, v in params.items()}
        if params.get("realm", "").upper() != account.account_id.upper():
            return "invalid"
        if params.get("oauth_signature_method") != "HMAC-SHA256":
            return "invalid"
        credential = next((c for c in account.tba if c.consumer_key ==
                           params.get("oauth_consumer_key") and c.token ==
                           params.get("oauth_token") and not c.revoked), None)
        if credential is None:
            return "invalid"
        try:
            stamp = int(params.get("oauth_timestamp", ""))
        except ValueError:
            return "invalid"
        if abs(stamp - self.clock.now().timestamp()) > TIMESTAMP_SKEW:
            return "invalid"
        nonce = (credential.token, params.get("oauth_nonce", ""))
        if not nonce[1] or nonce in self._nonces:
            return "invalid"  # NetSuite rejects a reused nonce
        base = oauth1_signature_base_string(
            request.method, str(request.url), params, raw,
            request.headers.get("content-type", ""))
        key = "&".join(urllib.parse.quote(s, safe="-._~")
                       for s in (credential.consumer_secret, credential.token_secret))
        expected = base64.b64encode(
            hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return "invalid"
        self._nonces.add(nonce)
        return "ok"

    def _authorized(self, request: Request, account: Account, outcome: str) -> Request | None:
        """A request the core pipeline will accept (TBA mapped onto a one-off bearer),
        or ``None`` when TBA verification failed."""
        if outcome != "ok":
            return None
        token = self.tokens.issue([account.account_id]).access_token
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
        headers.append((b"authorization", f"Bearer {token}".encode()))
        return Request({**request.scope, "headers": headers})

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{account}" + REST + "/{record}/{ident}", self._rest,
                  methods=["GET", "PUT", "PATCH", "DELETE"]),
            Route("/{account}/services/NetSuitePort_{version}", self._soap, methods=["POST"]),
        ]

    async def _rest(self, request: Request) -> Response:
        account = self.account(request.path_params["account"])
        record = RECORDS.get(request.path_params["record"].lower())
        ident = urllib.parse.unquote(request.path_params["ident"])
        raw = await request.body()
        body = await read_json(request)
        if request.headers.get("authorization", "").startswith("OAuth "):
            with self.lock:
                outcome = self._tba_outcome(request, account, raw)
            authorized = self._authorized(request, account, outcome)
            if authorized is None:
                return self.auth_error("invalid")
            request = authorized
        write = request.method != "GET"
        base = str(request.base_url).rstrip("/") + f"/{request.path_params['account']}"

        def run() -> Response:
            if record is None:
                return self.ns_error(404, "INVALID_RCRD_TYPE",
                                     f"Record type {request.path_params['record']} does "
                                     "not exist.")
            try:
                if write and raw and body is None:
                    raise NsError(400, "INVALID_CONTENT", "The request body is not valid "
                                  "JSON.")
                if request.method == "GET":
                    return JSONResponse(self.public(account, record,
                                                    self._find(account, record, ident)))
                if request.method == "DELETE":
                    self._delete(account, record, self._find(account, record, ident)["id"])
                    return Response(status_code=204)
                if write:
                    self._maybe_changed()
                if request.method == "PATCH":
                    found = self._find(account, record, ident)
                    internal = self.upsert(account, record, found.get("externalId"), body or {},
                                           existing=found["id"])
                else:
                    if not ident.startswith("eid:"):
                        raise NsError(400, "USER_ERROR", "Upsert (PUT) requires an external "
                                      "ID in the URL: eid:<externalId>.")
                    replace = set(request.query_params.get("replace", "").split(","))
                    internal = self.upsert(account, record, ident[4:], body or {},
                                           replace_items="item" in replace)
            except NsError as err:
                return self.ns_error(err.status, err.code, err.detail, err.path)
            return Response(status_code=204,
                            headers={"Location": f"{base}{REST}/{record}/{internal}"})

        return await self.guarded(request, account.account_id, run, write=write)

    def _maybe_changed(self) -> None:
        with self._fault_lock:
            if self._changed_faults > 0:
                self._changed_faults -= 1
                raise NsError(400, "RCRD_HAS_BEEN_CHANGED",
                              "Record has been changed since you loaded it.")

    # ------------------------------------------------------------------ state

    def _find(self, account: Account, record: str, ident: str) -> dict[str, Any]:
        if ident.startswith("eid:"):
            internal = account.eids[record].get(ident[4:])
        else:
            internal = ident if ident in account.records[record] else None
        if internal is None:
            raise NsError(404, "NONEXISTENT_ID", "The record instance does not exist. "
                          "Provide a valid record instance ID.")
        return account.records[record][internal]

    def _check_open(self, account: Account, day: str | None) -> None:
        if day and account.lock_date and date.fromisoformat(day) <= account.lock_date:
            raise NsError(400, "TRAN_PERIOD_CLOSED",
                          "The accounting period for this transaction date is closed.")

    def upsert(self, account: Account, record: str, external_id: str | None,
               body: dict[str, Any], *, existing: str | None = None,
               replace_items: bool = True) -> str:
        """Create or update one record; atomic (restored on any validation error)."""
        unknown = sorted(set(body) - FIELDS[record])
        if unknown:
            raise NsError(400, "USER_ERROR",
                          f"Invalid field name: {unknown[0]}.", unknown[0])
        internal = existing or (account.eids[record].get(external_id) if external_id else None)
        snapshot = copy.deepcopy((account.records, account.eids))
        try:
            current = account.records[record].get(internal) if internal else None
            if current is not None and record in TRANSACTIONS:
                self._check_open(account, current.get("tranDate"))
            merged = copy.deepcopy(current) if current else {}
            merged.update({k: copy.deepcopy(v) for k, v in body.items()
                           if not (k == "item" and not replace_items and current)})
            if not replace_items and current and "item" in body:
                merged["item"] = {"items": [*current.get("item", {}).get("items", []),
                                            *body["item"].get("items", [])]}
            if internal is None:
                account.seq += 1
                internal = str(1000 + account.seq)
                merged["_seq"] = account.seq
                merged["_created"] = self.clock.now().isoformat()
            merged["id"] = internal
            if external_id:
                merged["externalId"] = external_id
            merged["lastModifiedDate"] = self.clock.now().isoformat()
            self._validate(account, record, merged)
            account.records[record][internal] = merged
            if external_id:
                account.eids[record][external_id] = internal
            self._recompute(account)
        except NsError:
            account.records, account.eids = snapshot
            raise
        return internal

    def _validate(self, account: Account, record: str, rec: dict[str, Any]) -> None:
        if record == "customer":
            if not (rec.get("companyName") or rec.get("lastName")):
                raise NsError(400, "MISSING_REQD_FLD",
                              "Please enter value(s) for: Company Name or Last Name",
                              "companyName")
            return
        if not rec.get("tranDate"):
            raise NsError(400, "MISSING_REQD_FLD", "Please enter value(s) for: Date",
                          "tranDate")
        self._check_open(account, rec["tranDate"])
        who = "entity" if record in SALES else "customer"
        rec[who] = {"id": _ref_id(account, "customer", rec.get(who), who)}
        for name in ("currency", "subsidiary", "location", "class"):
            if name in rec and not isinstance(rec[name], dict):
                raise NsError(400, "INVALID_FLD_VALUE", f"Invalid value for {name}", name)
        if record in SALES:
            self._lines(account, rec)
        else:
            account_ref = rec.get("account")
            if not isinstance(account_ref, dict) or str(account_ref.get("id")) not in \
                    account.accounts:
                raise NsError(400, "INVALID_KEY_OR_REF",
                              f"Invalid account reference key {account_ref}.", "account")
        if rec.get("tranId"):
            for other in account.records[record].values():
                if other["id"] != rec["id"] and other.get("tranId") == rec["tranId"]:
                    raise NsError(400, "DUP_TRANS", "This transaction number is already in "
                                  "use; enter a unique number.", "tranId")
        if "apply" in rec:
            items = rec["apply"].get("items", []) if isinstance(rec["apply"], dict) else None
            if items is None:
                raise NsError(400, "INVALID_FLD_VALUE", "apply must be a sublist", "apply")
            for i, line in enumerate(items):
                doc = line.get("doc") if isinstance(line, dict) else None
                if not isinstance(doc, dict) or not doc.get("id"):
                    raise NsError(400, "MISSING_REQD_FLD", "Please enter value(s) for: doc",
                                  f"apply.items[{i}].doc")
                _dec(line.get("amount", 0), f"apply.items[{i}].amount")

    def _lines(self, account: Account, rec: dict[str, Any]) -> None:
        items = (rec.get("item") or {}).get("items") or []
        if not items:
            raise NsError(400, "USER_ERROR",
                          "You must enter at least one line item for this transaction.", "item")
        subtotal = Decimal(0)
        taxable: dict[str, Decimal] = {}
        for i, line in enumerate(items):
            if str((line.get("item") or {}).get("id")) not in account.items:
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid item reference key "
                              f"{(line.get('item') or {}).get('id')}.", f"item.items[{i}].item")
            code = str((line.get("taxCode") or {}).get("id"))
            if code not in account.tax_codes:
                raise NsError(400, "INVALID_KEY_OR_REF", f"Invalid taxcode reference key "
                              f"{code}.", f"item.items[{i}].taxCode")
            quantity = _dec(line.get("quantity", 1), f"item.items[{i}].quantity")
            rate = _dec(line.get("rate", 0), f"item.items[{i}].rate")
            amount = money(line["amount"]) if "amount" in line else money(quantity * rate)
            line["amount"] = num(amount)
            subtotal += amount
            taxable[code] = taxable.get(code, Decimal(0)) + amount
        tax = sum((money(base * account.tax_codes[code]) for code, base in taxable.items()),
                  Decimal(0))
        rec["subtotal"], rec["taxTotal"], rec["total"] = num(subtotal), num(tax), num(
            subtotal + tax)

    def _recompute(self, account: Account) -> None:
        """Re-derive every balance from the records and reject impossible states."""
        remaining = {i: money(r["total"]) for i, r in account.records["invoice"].items()}
        memos = {i: money(r["total"]) for i, r in account.records["creditMemo"].items()}
        payments = {i: money(r.get("payment", 0))
                    for i, r in account.records["customerPayment"].items()}
        for source, store, pool in (("customerPayment", payments, remaining),
                                    ("creditMemo", memos, remaining),
                                    ("customerRefund", None, None)):
            for rec in account.records[source].values():
                owner = (rec.get("customer") or rec.get("entity") or {}).get("id")
                total = Decimal(0)
                for line in (rec.get("apply") or {}).get("items", []):
                    if line.get("apply") is False:
                        continue
                    doc, amount = str(line["doc"]["id"]), money(line.get("amount", 0))
                    if source == "customerRefund":
                        target = payments if doc in payments else memos if doc in memos \
                            else None
                        kind = "customerPayment" if doc in payments else "creditMemo"
                        code = "INVALID_REFUND_AMT"
                    else:
                        target, kind, code = pool, "invoice", "INVALID_TRANS_AMT"
                    if target is None or doc not in target:
                        raise NsError(400, "INVALID_KEY_OR_REF",
                                      f"Invalid doc reference key {doc}.", "apply.items.doc")
                    doc_owner = (account.records[kind][doc].get("entity")
                                 or account.records[kind][doc].get("customer") or {}).get("id")
                    if doc_owner != owner:
                        raise NsError(400, "INVALID_KEY_OR_REF", f"Transaction {doc} belongs "
                                      "to another customer.", "apply.items.doc")
                    if amount > target[doc]:
                        raise NsError(400, code, f"The amount applied ({amount}) exceeds the "
                                      f"amount available ({target[doc]}).", "apply.items.amount")
                    target[doc] -= amount
                    total += amount
                if source == "customerRefund":
                    rec["total"] = num(total)
                    continue
                if store is not None:
                    if total > store[rec["id"]]:
                        raise NsError(400, "TRANS_APPLIED_AMTS_UNBALNCD",
                                      "The total applied exceeds the amount of the "
                                      "transaction.", "apply")
                    store[rec["id"]] -= total
        for internal, rec in account.records["invoice"].items():
            rec["amountRemaining"] = num(remaining[internal])
            rec["status"] = "Paid In Full" if remaining[internal] == 0 else "Open"
        for internal, rec in account.records["creditMemo"].items():
            rec["unapplied"] = num(memos[internal])
            rec["status"] = "Fully Applied" if memos[internal] == 0 else "Open"
        for internal, rec in account.records["customerPayment"].items():
            rec["unapplied"] = num(payments[internal])

    def _applied_to(self, account: Account, internal: str) -> bool:
        for source in ("customerPayment", "creditMemo", "customerRefund"):
            for rec in account.records[source].values():
                if rec["id"] == internal:
                    continue
                for line in (rec.get("apply") or {}).get("items", []):
                    if str(line["doc"]["id"]) == internal and line.get("apply") is not False:
                        return True
        return False

    def _delete(self, account: Account, record: str, internal: str) -> None:
        rec = account.records[record][internal]
        if record in TRANSACTIONS:
            self._check_open(account, rec.get("tranDate"))
        if record in ("invoice", "creditMemo", "customerPayment") and \
                self._applied_to(account, internal):
            raise NsError(400, "CANT_DELETE_TRANS", "This transaction cannot be deleted "
                          "because it has payments, credits or refunds applied to it.")
        del account.records[record][internal]
        account.deleted.append((record, rec))
        if rec.get("externalId"):
            account.eids[record].pop(rec["externalId"], None)
        self._recompute(account)

    def public(self, account: Account, record: str, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["links"] = [{"rel": "self", "href": f"{REST}/{record}/{rec['id']}"}]
        return out

    # ------------------------------------------------------------------ SOAP

    async def _soap(self, request: Request) -> Response:
        account = self.account(request.path_params["account"])
        version = request.path_params["version"]
        raw = await request.body()
        root = parse(raw)
        ns = {k: v.format(v=version) for k, v in NS_SOAP.items()}
        if root is None:
            return Response(build_fault("soapenv:Client", "The request is not XML."),
                            status_code=500, media_type="text/xml")
        header = child(root, "Header")
        with self.lock:
            outcome = self._passport_outcome(account, child(header, "tokenPassport"))
        if outcome != "ok":
            return self._soap_fault(ns, "invalidSessionFault", "INVALID_LOGIN_ATTEMPT",
                                    "Invalid login attempt.")
        operation = child(root, "Body")
        op = operation[0] if operation is not None and len(operation) else None
        authorized = self._authorized(request, account, "ok")
        assert authorized is not None

        def run() -> Response:
            if op is None or local(op.tag) not in ("upsert", "delete", "get"):
                return self._soap_fault(ns, "invalidArgumentFault", "INVALID_REQUEST",
                                        "Unsupported operation.")
            name = local(op.tag)
            record_el = child(op, "record" if name == "upsert" else "baseRef")
            eid: str | None = None
            try:
                if record_el is None:
                    raise NsError(400, "MISSING_REQD_FLD", "record is required")
                xsi_type = record_el.get(f"{{{XSI}}}type", "")
                record = RECORDS.get(xsi_type.rsplit(":", 1)[-1].lower()) or RECORDS.get(
                    (record_el.get("type") or "").lower())
                if record is None:
                    raise NsError(400, "INVALID_RCRD_TYPE", f"Unknown record {xsi_type}")
                eid = record_el.get("externalId")
                ident = record_el.get("internalId") or f"eid:{eid}"
                if name == "upsert":
                    self._maybe_changed()
                    internal = self.upsert(account, record, eid,
                                           soap_record_to_rest(record, record_el))
                else:
                    try:
                        found = self._find(account, record, ident)
                    except NsError:
                        raise NsError(400, "RCRD_DSNT_EXIST", "That record does not exist.")\
                            from None
                    internal = found["id"]
                    eid = found.get("externalId")
                    if name == "delete":
                        self._delete(account, record, internal)
            except NsError as err:
                return self._soap_status(ns, name, False, err.code, err.detail, None, None, None)
            return self._soap_status(ns, name, True, None, None, internal, eid, record)

        response = await self.guarded(authorized, account.account_id, run, write=True)
        if response.status_code == 429:
            return self._soap_fault(ns, "exceededConcurrentRequestLimitFault",
                                    "WS_REQUEST_BLOCKED", "Request blocked: the account's "
                                    "concurrency limit is reached.")
        if response.status_code >= 500 and response.media_type != "text/xml":
            return self._soap_fault(ns, "unexpectedErrorFault", "UNEXPECTED_ERROR",
                                    "An unexpected error occurred.")
        return response

    def _passport_outcome(self, account: Account, passport: etree._Element | None) -> str:
        if passport is None:
            return "invalid"
        values = {local(c.tag): (c.text or "") for c in passport}
        signature = child(passport, "signature")
        if values.get("account", "").upper() != account.account_id.upper() or \
                signature is None or signature.get("algorithm") != "HMAC-SHA256":
            return "invalid"
        credential = next((c for c in account.tba if c.consumer_key == values.get(
            "consumerKey") and c.token == values.get("token") and not c.revoked), None)
        if credential is None:
            return "invalid"
        try:
            stamp = int(values.get("timestamp", ""))
        except ValueError:
            return "invalid"
        nonce = (credential.token, values.get("nonce", ""))
        if abs(stamp - self.clock.now().timestamp()) > TIMESTAMP_SKEW or nonce in self._nonces:
            return "invalid"
        base = "&".join((values["account"], credential.consumer_key, credential.token,
                         nonce[1], str(stamp)))
        key = f"{credential.consumer_secret}&{credential.token_secret}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(),
                                             hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, (signature.text or "").strip()):
            return "invalid"
        self._nonces.add(nonce)
        return "ok"

    def _soap_fault(self, ns: dict[str, str], kind: str, code: str, message: str) -> Response:
        detail = etree.Element(f"{{{ns['platformFaults']}}}{kind}")
        sub(detail, ns["platformFaults"], "code", code)
        sub(detail, ns["platformFaults"], "message", message)
        return Response(build_fault("soapenv:Server." + kind, message, detail),
                        status_code=500, media_type="text/xml")

    def _soap_status(self, ns: dict[str, str], operation: str, ok: bool, code: str | None,
                     message: str | None, internal: str | None, eid: str | None,
                     record: str | None) -> Response:
        msgs, core = ns["platformMsgs"], ns["platformCore"]
        reply = etree.Element(f"{{{msgs}}}{operation}Response",
                              nsmap={"platformMsgs": msgs, "platformCore": core, "xsi": XSI})
        outer = sub(reply, msgs, "readResponse" if operation == "get" else "writeResponse")
        status = sub(outer, core, "status", attrib={"isSuccess": "true" if ok else "false"})
        if not ok:
            detail = sub(status, core, "statusDetail", attrib={"type": "ERROR"})
            sub(detail, core, "code", code)
            sub(detail, core, "message", message)
        elif operation == "get":
            kind = {"invoice": "tranSales:Invoice"}.get(record or "", f"tranCust:{record}")
            sub(outer, msgs, "record", attrib={"internalId": internal or "",
                                               "externalId": eid or "",
                                               f"{{{XSI}}}type": kind})
        else:
            sub(outer, msgs, "baseRef", attrib={
                "internalId": internal or "", "externalId": eid or "",
                "type": record or "", f"{{{XSI}}}type": "platformCore:RecordRef"})
        return Response(serialize(envelope([reply])), status_code=200, media_type="text/xml")

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        account = self.account(tenant)
        documents, payments, applications = [], [], []
        doc_kinds: tuple[tuple[str, Literal["invoice", "credit_note"]], ...] = (
            ("invoice", "invoice"), ("creditMemo", "credit_note"))
        for record, kind in doc_kinds:
            for rec in account.records[record].values():
                balance = rec.get("amountRemaining") if record == "invoice" else rec.get(
                    "unapplied")
                documents.append(DocumentSummary(
                    kind, rec["id"], rec.get("tranId"), rec.get("externalId"),
                    rec["entity"]["id"], rec.get("status", "Open"), money(rec["total"]),
                    money(balance), rec.get("tranDate"), rec["_seq"]))
        for record, rec in account.deleted:  # getDeleted: tombstones, nothing open
            if record in ("invoice", "creditMemo"):
                documents.append(DocumentSummary(
                    "invoice" if record == "invoice" else "credit_note", rec["id"],
                    rec.get("tranId"), rec.get("externalId"), rec["entity"]["id"], "Deleted",
                    money(rec["total"]), Decimal(0), rec.get("tranDate"), rec["_seq"]))
        for rec in account.records["customerPayment"].values():
            payments.append(PaymentSummary(
                rec["id"], rec["customer"]["id"], money(rec["payment"]),
                money(rec.get("unapplied", 0)), "Deposited", rec.get("tranDate"),
                rec.get("externalId"), rec["_seq"]))
        sources: tuple[tuple[str, Literal["payment", "credit_note"]], ...] = (
            ("customerPayment", "payment"), ("creditMemo", "credit_note"))
        for source, source_kind in sources:
            for rec in account.records[source].values():
                for line in (rec.get("apply") or {}).get("items", []):
                    if line.get("apply") is not False:
                        applications.append(Application(
                            source_kind, rec["id"], str(line["doc"]["id"]),
                            money(line["amount"])))
        customers = [CustomerSummary(c["id"], c.get("companyName") or
                                     f"{c.get('firstName', '')} {c.get('lastName', '')}".strip(),
                                     not c.get("isInactive", False))
                     for c in account.records["customer"].values()]
        report = build_report(self.platform, tenant, documents, payments, applications,
                              customers)
        report["refunds"] = [
            {"id": r["id"], "customer_id": r["customer"]["id"], "amount": str(money(r["total"])),
             "reference": r.get("externalId")}
            for r in account.records["customerRefund"].values()]
        return report


def soap_record_to_rest(record: str, element: etree._Element) -> dict[str, Any]:
    """A SOAP ``record`` element as the REST-shaped dict the sandbox stores."""
    out: dict[str, Any] = {}

    def ref(el: etree._Element) -> dict[str, str]:
        return {"id": el.get("internalId")} if el.get("internalId") else {
            "externalId": el.get("externalId") or ""}

    scalar: dict[str, Callable[[str], Any]] = {
        "companyName": str, "firstName": str, "lastName": str, "email": str, "phone": str,
        "tranId": str, "tranDate": lambda v: v[:10], "dueDate": lambda v: v[:10], "memo": str,
        "otherRefNum": str, "payment": float, "isPerson": lambda v: v == "true",
        "isInactive": lambda v: v == "true", "undepFunds": lambda v: v == "true",
        "resaleNumber": str}
    for el in element:
        name = local(el.tag)
        if name in scalar and el.text is not None:
            out[name] = scalar[name](el.text)
        elif name in ("entity", "customer", "account", "currency", "subsidiary", "location",
                      "class"):
            out[name] = ref(el)
        elif name == "itemList":
            out["item"] = {"items": [{
                "item": ref(_must(child(line, "item"))),
                "description": text_of(line, "description"),
                "quantity": float(text_of(line, "quantity") or 1),
                "rate": float(text_of(line, "rate") or 0),
                "amount": float(text_of(line, "amount") or 0),
                "taxCode": ref(_must(child(line, "taxCode"))),
            } for line in children(el, "item")]}
        elif name == "applyList":
            out["apply"] = {"items": [{
                "doc": {"id": text_of(line, "doc")}, "apply": text_of(line, "apply") == "true",
                "amount": float(text_of(line, "amount") or 0)} for line in children(el, "apply")]}
    return out



def _must(element: etree._Element | None) -> etree._Element:
    if element is None:
        raise NsError(400, "MISSING_REQD_FLD", "Please enter value(s) for: item / taxCode")
    return element
