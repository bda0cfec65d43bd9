"""QuickBooks Online Accounting API v3 (JSON) sandbox.

Reproduces what a QBO sink must cope with (see shared/research/platforms-A.md
section 1): ``requestid`` replay, SyncToken optimistic locking (5010),
duplicate names (6240) and document numbers (6140), validation faults in
QBO's ``Fault`` shape, server-computed totals and balances, payments and
credit-memo application through ``LinkedTxn``, cash refunds (``RefundReceipt``,
which settle themselves), void/delete, inactive
customers, a closed books date, OAuth2 expiry (3200) and throttling (429).

Entity field names follow the v3 XSD (``Finance.xsd``/``IntuitNamesTypes.xsd``);
``tests/sinks/sandbox`` checks every key the sandbox emits against it.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sinks.sandbox import qbo_query
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
    replay,
)

# path segment -> entity name (QBO paths are the lower-cased entity name)
ENTITIES = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment",
            "creditmemo": "CreditMemo", "refundreceipt": "RefundReceipt", "taxcode": "TaxCode"}
TRANSACTIONS = ("Invoice", "Payment", "CreditMemo", "RefundReceipt")
SALES_FORMS = ("Invoice", "CreditMemo", "RefundReceipt")
MAX_BATCH = 30
DOC_NUMBER_MAX = 21
DISPLAY_NAME_MAX = 500
REQUEST_ID_MAX = 50
PACIFIC = timezone(timedelta(hours=-8))


class QboFault(Exception):
    """A fault to be rendered in QBO's ``Fault`` shape."""

    def __init__(self, code: str, message: str, detail: str, element: str = "",
                 kind: str = "ValidationFault", status: int = 400) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail = code, message, detail
        self.element, self.kind, self.status = element, kind, status

    def body(self) -> dict[str, Any]:
        return {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                           "element": self.element}], "type": self.kind}


def _required(element: str) -> QboFault:
    return QboFault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {element} is missing in the request", element)


def _too_long(element: str, maximum: int) -> QboFault:
    return QboFault("2050", "String length is either shorter or longer than supported by "
                    "specification", f"{element} length exceeds the maximum supported: "
                    f"Min:0 Max:{maximum} supported.", element)


def _not_found(entity: str, ident: Any) -> QboFault:
    return QboFault("610", "Object Not Found",
                    f"Object Not Found : Something you're trying to use has been made inactive "
                    f"or deleted. Check the fields with {entity} Id={ident}.", entity)


def _business(detail: str, element: str = "") -> QboFault:
    return QboFault("6000", "A business validation error has occurred while processing your "
                    "request", f"Business Validation Error: {detail}", element)


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("value") not in (None, ""):
        return str(value["value"])
    return None


class Realm:
    """One QBO company: entities by type and id, plus company preferences."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in ENTITIES.values()}
        self.closing_date: date | None = None
        self.custom_txn_numbers = True
        self.duplicate_doc_number_check = True
        self.next_id = 0
        self.seq: dict[tuple[str, str], int] = {}

    def new_id(self, entity: str) -> str:
        self.next_id += 1
        self.seq[(entity, str(self.next_id))] = self.next_id
        return str(self.next_id)


class QuickBooksSandbox(Sandbox):
    """Stateful QBO v3 simulator; see module docstring for what it reproduces.

    ``send_retry_after``: Intuit documents "429, wait 60 s" but no Retry-After
    header, so by default none is sent (sinks must cope without one).
    """

    platform = "quickbooks"
    token_path = "/oauth2/v1/tokens/bearer"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 500,
                 max_concurrent: int = 10, access_lifetime: int = 3600,
                 requestid_window: int = 24 * 3600, send_retry_after: bool = False) -> None:
        self.realms: dict[str, Realm] = {}
        self.send_retry_after = send_retry_after
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=requestid_window)

    # ------------------------------------------------------------------ state

    def realm(self, realm_id: str) -> Realm:
        """The company, created with seeded tax codes and a service item on first use."""
        realm = self.realms.get(realm_id)
        if realm is None:
            realm = self.realms[realm_id] = Realm()
            stamp = self._meta()
            for code, name, taxable in (("TAX", "TAX", True), ("NON", "NON", False)):
                realm.entities["TaxCode"][code] = {
                    "Id": code, "Name": name, "Description": name, "Taxable": taxable,
                    "Active": True, "SyncToken": "0", "domain": "QBO", "sparse": False,
                    "MetaData": stamp}
            item_id = realm.new_id("Item")
            realm.entities["Item"][item_id] = {
                "Id": item_id, "Name": "Services", "Type": "Service", "Active": True,
                "SyncToken": "0", "domain": "QBO", "sparse": False, "MetaData": stamp,
                "IncomeAccountRef": {"value": "1", "name": "Services"}}
        return realm

    def set_preferences(self, realm_id: str, *, custom_txn_numbers: bool | None = None,
                        duplicate_doc_number_check: bool | None = None) -> None:
        with self.lock:
            realm = self.realm(realm_id)
            if custom_txn_numbers is not None:
                realm.custom_txn_numbers = custom_txn_numbers
            if duplicate_doc_number_check is not None:
                realm.duplicate_doc_number_check = duplicate_doc_number_check

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.realm(tenant).closing_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        customer = self.realm(tenant).entities["Customer"].get(customer_id)
        if customer is None:
            raise KeyError(f"no customer {customer_id} in realm {tenant}")
        customer["Active"] = False
        self._touch(customer)

    def _now_str(self) -> str:
        return self.clock.now().astimezone(PACIFIC).isoformat(timespec="milliseconds")

    def _meta(self) -> dict[str, str]:
        now = self._now_str()
        return {"CreateTime": now, "LastUpdatedTime": now}

    def _touch(self, record: dict[str, Any]) -> None:
        record["SyncToken"] = str(int(record.get("SyncToken", "0")) + 1)
        record["MetaData"] = {**record.get("MetaData", {}), "LastUpdatedTime": self._now_str()}

    # ------------------------------------------------------------------ errors

    def fault_response(self, fault: QboFault) -> JSONResponse:
        return JSONResponse({"Fault": fault.body(), "time": self._now_str()},
                            status_code=fault.status)

    def auth_error(self, outcome: str) -> Response:
        if outcome == "forbidden":
            code, message, status, kind = "3100", "ApplicationAuthorizationFailed", 403, \
                "AUTHORIZATION"
            detail = "Token not authorized for this company"
        else:
            code, message, status, kind = "3200", "AuthenticationFailed", 401, "AUTHENTICATION"
            detail = "Token expired" if outcome == "expired" else "Token invalid"
        error = {"message": f"message={message}; errorDetail={detail}; statusCode={status}",
                 "detail": detail, "code": code, "element": None}
        return JSONResponse({"warnings": None, "intuitObject": None,
                             "fault": {"error": [error], "type": kind}, "report": None,
                             "queryResponse": None, "batchItemResponse": [],
                             "attachableResponse": [], "syncErrorResponse": None,
                             "requestId": None, "time": self.clock.now().timestamp() * 1000,
                             "status": None, "cdcresponse": []},
                            status_code=status, headers={"WWW-Authenticate": "Bearer"})

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        headers = {}
        if self.send_retry_after and throttle.retry_after:
            headers["Retry-After"] = str(throttle.retry_after)
        error = {"message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                 "detail": "The request limit was reached." if throttle.problem != "concurrent"
                 else "Too many concurrent requests.", "code": "003001"}
        return JSONResponse({"fault": {"error": [error], "type": "SERVICE"},
                             "time": self._now_str()}, status_code=429, headers=headers)

    def server_error(self, status: int) -> Response:
        fault = QboFault("10000", "An application error has occurred while processing your "
                         "request", "System Failure Error: An unknown error has occurred.",
                         kind="SystemFault", status=status)
        return self.fault_response(fault)

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"token_type": "bearer", "access_token": pair.access_token,
                "refresh_token": pair.refresh_token, "expires_in": pair.expires_in,
                "x_refresh_token_expires_in": 8726400}

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        base = "/v3/company/{realm}"
        return [
            Route(base + "/query", self._query_endpoint, methods=["GET", "POST"]),
            Route(base + "/batch", self._batch_endpoint, methods=["POST"]),
            Route(base + "/{entity}/{ident}", self._read_endpoint, methods=["GET"]),
            Route(base + "/{entity}", self._write_endpoint, methods=["POST"]),
        ]

    async def _write_endpoint(self, request: Request) -> Response:
        realm_id = request.path_params["realm"]
        entity = ENTITIES.get(request.path_params["entity"].lower())
        body = await read_json(request)
        operation = request.query_params.get("operation", "")
        if request.query_params.get("include") == "void":
            operation = "void"
        request_id = request.query_params.get("requestid")

        def handle() -> Response:
            if entity is None:
                return self.fault_response(QboFault(
                    "4001", "Invalid Request", "Unsupported entity "
                    f"{request.path_params['entity']}", kind="ValidationFault"))
            if request_id:
                if len(request_id) > REQUEST_ID_MAX:
                    return self.fault_response(_too_long("requestid", REQUEST_ID_MAX))
                stored = self.idempotency.get(realm_id, request_id)
                if stored is not None:
                    return replay(stored)
            if not isinstance(body, dict):
                return self.fault_response(QboFault(
                    "2310", "Invalid Reference Id", "Request has invalid or unsupported "
                    "property", kind="ValidationFault"))
            try:
                record = self.operate(realm_id, entity, operation or None, body)
            except QboFault as fault:
                return self.fault_response(fault)
            response = JSONResponse({entity: record, "time": self._now_str()})
            if request_id:
                self.idempotency.put(realm_id, request_id, "", response)
            return response

        return await self.guarded(request, realm_id, handle, write=True)

    async def _read_endpoint(self, request: Request) -> Response:
        realm_id = request.path_params["realm"]
        entity = ENTITIES.get(request.path_params["entity"].lower())
        ident = request.path_params["ident"]

        def handle() -> Response:
            record = self.realm(realm_id).entities.get(entity or "", {}).get(ident)
            if entity is None or record is None:
                return self.fault_response(_not_found(entity or "Entity", ident))
            return JSONResponse({entity: self.public(realm_id, entity, record),
                                 "time": self._now_str()})

        return await self.guarded(request, realm_id, handle, write=False)

    async def _query_endpoint(self, request: Request) -> Response:
        realm_id = request.path_params["realm"]
        text = request.query_params.get("query")
        if text is None and request.method == "POST":
            text = (await request.body()).decode()

        def handle() -> Response:
            try:
                return JSONResponse({"QueryResponse": self.query(realm_id, text or ""),
                                     "time": self._now_str()})
            except QboFault as fault:
                return self.fault_response(fault)

        return await self.guarded(request, realm_id, handle, write=False)

    async def _batch_endpoint(self, request: Request) -> Response:
        realm_id = request.path_params["realm"]
        body = await read_json(request)
        request_id = request.query_params.get("requestid")

        def handle() -> Response:
            if request_id:
                stored = self.idempotency.get(realm_id, request_id)
                if stored is not None:
                    return replay(stored)
            items = body.get("BatchItemRequest") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                return self.fault_response(_required("BatchItemRequest"))
            if len(items) > MAX_BATCH:
                return self.fault_response(QboFault(
                    "1000", "Batch size limit exceeded",
                    f"The number of batch items {len(items)} exceeds the maximum of "
                    f"{MAX_BATCH}", "BatchItemRequest"))
            response = JSONResponse({"BatchItemResponse": [self._batch_item(realm_id, item)
                                                           for item in items],
                                     "time": self._now_str()})
            if request_id:
                self.idempotency.put(realm_id, request_id, "", response)
            return response

        return await self.guarded(request, realm_id, handle, write=True)

    def _batch_item(self, realm_id: str, item: dict[str, Any]) -> dict[str, Any]:
        bid = item.get("bId")
        try:
            if "Query" in item:
                return {"bId": bid, "QueryResponse": self.query(realm_id, str(item["Query"]))}
            entity = next((e for e in ENTITIES.values() if e in item), None)
            if entity is None:
                raise _required("entity")
            operation = item.get("operation", "create")
            record = self.operate(realm_id, entity, None if operation == "create"
                                  else operation, item[entity])
            return {"bId": bid, entity: record}
        except QboFault as fault:
            return {"bId": bid, "Fault": fault.body()}

    # ------------------------------------------------------------------ operations

    def operate(self, realm_id: str, entity: str, operation: str | None,
                body: dict[str, Any]) -> dict[str, Any]:
        """Apply one create/update/void/delete atomically; returns the public record."""
        realm = self.realm(realm_id)
        creating = operation in (None, "create") and not body.get("Id")
        # A create validates everything before it inserts, so a fault leaves the realm
        # untouched and needs no snapshot; updates, voids and deletes may touch other
        # records (unlinking payments) before failing, so they keep the full snapshot.
        # Copying the whole realm on every create made each write O(realm size).
        snapshot = None if creating else copy.deepcopy(realm.entities)
        try:
            record = self._operate(realm, entity, operation, body)
        except QboFault:
            if snapshot is not None:
                realm.entities = snapshot
            raise
        if creating and entity in ("Customer", "Item"):
            pass  # names only: no balance depends on them
        elif creating and entity in ("Invoice", "CreditMemo"):
            self._recompute_new_document(entity, record)
        else:
            self._recompute(realm)
        if record.get("status") == "Deleted":
            return record
        return self.public(realm_id, entity, record)

    def _operate(self, realm: Realm, entity: str, operation: str | None,
                 body: dict[str, Any]) -> dict[str, Any]:
        if entity == "TaxCode":
            raise QboFault("500", "Unsupported Operation",
                           "Operation Create/Update is not supported for TaxCode.")
        existing = None
        if operation in ("update", "delete", "void") or (operation is None and body.get("Id")):
            existing = self._current(realm, entity, body)
            operation = operation or "update"
        if operation == "delete" and existing is not None:
            return self._delete(realm, entity, existing)
        if operation == "void" and existing is not None:
            return self._void(realm, entity, existing)
        if operation not in (None, "create", "update"):
            raise QboFault("4001", "Invalid Request", f"Unsupported operation {operation}")
        if existing is not None:
            merged = {**existing, **body} if body.get("sparse") else {
                **{k: existing[k] for k in ("Id", "SyncToken", "MetaData", "domain")},
                **body}
            merged["sparse"] = False
            return self._save(realm, entity, merged, existing)
        return self._save(realm, entity, dict(body), None)

    def _current(self, realm: Realm, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        ident = body.get("Id")
        if not ident:
            raise _required("Id")
        record = realm.entities[entity].get(str(ident))
        if record is None:
            raise _not_found(entity, ident)
        token = body.get("SyncToken")
        if token is None:
            raise _required("SyncToken")
        if str(token) != record["SyncToken"]:
            raise QboFault("5010", "Stale Object Error",
                           f"Stale Object Error : You and another user were working on the "
                           f"same thing. Id={ident}, SyncToken {token} is not the current "
                           f"SyncToken {record['SyncToken']}.", "SyncToken")
        return record

    def _check_period(self, realm: Realm, *txn_dates: str | None) -> None:
        if realm.closing_date is None:
            return
        for raw in txn_dates:
            if raw and date.fromisoformat(raw[:10]) <= realm.closing_date:
                raise QboFault("6210", "The account period has closed",
                               f"The account period has closed and the books are locked "
                               f"through {realm.closing_date.isoformat()}. TxnDate={raw}",
                               "TxnDate")

    def _save(self, realm: Realm, entity: str, record: dict[str, Any],
              existing: dict[str, Any] | None) -> dict[str, Any]:
        if entity == "Customer":
            self._validate_customer(realm, record, existing)
        elif entity == "Item":
            self._validate_item(realm, record, existing)
        else:
            record.setdefault("TxnDate", self.clock.now().date().isoformat())
            self._check_period(realm, record["TxnDate"],
                               existing.get("TxnDate") if existing else None)
            if existing is not None and existing.get("PrivateNote") == "Voided":
                raise _business("A voided transaction cannot be edited.")
            self._validate_customer_ref(realm, record)
            if entity in SALES_FORMS:
                self._validate_sales_form(realm, entity, record, existing)
            else:
                self._validate_payment(realm, record, existing)
        if existing is None:
            record["Id"] = realm.new_id(entity)
            record["SyncToken"] = "0"
            record["MetaData"] = self._meta()
            record["domain"] = "QBO"
            record["sparse"] = False
            realm.entities[entity][record["Id"]] = record
        else:
            existing.clear()
            existing.update(record)
            self._touch(existing)
            record = existing
        return record

    # ---- validation per entity

    def _validate_customer(self, realm: Realm, record: dict[str, Any],
                           existing: dict[str, Any] | None) -> None:
        if not record.get("DisplayName"):
            parts = [record.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                              "Suffix")]
            derived = " ".join(p for p in parts if p) or record.get("CompanyName")
            if not derived:
                raise _required("DisplayName")
            record["DisplayName"] = derived
        name = str(record["DisplayName"])
        if len(name) > DISPLAY_NAME_MAX:
            raise _too_long("DisplayName", DISPLAY_NAME_MAX)
        for other in realm.entities["Customer"].values():
            if other is not existing and other["DisplayName"].lower() == name.lower():
                raise QboFault("6240", "Duplicate Name Exists Error",
                               f"The name supplied already exists. : Another customer, vendor "
                               f"or employee is already using this name. Please use a different "
                               f"name. Id={other['Id']}", "DisplayName")
        record.setdefault("Active", True)
        record.setdefault("Taxable", False)
        record.setdefault("FullyQualifiedName", name)
        record["FullyQualifiedName"] = name

    def _validate_item(self, realm: Realm, record: dict[str, Any],
                       existing: dict[str, Any] | None) -> None:
        if not record.get("Name"):
            raise _required("Name")
        for other in realm.entities["Item"].values():
            if other is not existing and other["Name"].lower() == str(record["Name"]).lower():
                raise QboFault("6240", "Duplicate Name Exists Error",
                               f"The name supplied already exists. : Id={other['Id']}", "Name")
        record.setdefault("Type", "Service")
        record.setdefault("Active", True)

    def _validate_customer_ref(self, realm: Realm, record: dict[str, Any]) -> None:
        customer_id = _ref(record.get("CustomerRef"))
        if customer_id is None:
            raise _required("CustomerRef")
        customer = realm.entities["Customer"].get(customer_id)
        if customer is None or not customer.get("Active", True):
            raise QboFault("610", "Object Not Found",
                           "Object Not Found : Something you're trying to use has been made "
                           "inactive. Check the fields with accounts, customers, items, "
                           "vendors or employees.", "CustomerRef")

    def _validate_sales_form(self, realm: Realm, entity: str, record: dict[str, Any],
                             existing: dict[str, Any] | None) -> None:
        lines = record.get("Line")
        if not isinstance(lines, list) or not lines:
            raise _required("Line")
        doc_number = record.get("DocNumber")
        if doc_number is not None:
            if len(str(doc_number)) > DOC_NUMBER_MAX:
                raise _too_long("DocNumber", DOC_NUMBER_MAX)
            if realm.custom_txn_numbers and realm.duplicate_doc_number_check:
                for other in realm.entities[entity].values():
                    if other is not existing and other.get("DocNumber") == doc_number:
                        raise QboFault("6140", "Duplicate Document Number Error",
                                       f"Duplicate Document Number Error : You must specify a "
                                       f"different number. This number has already been used. "
                                       f"DocNumber={doc_number} is assigned to TxnType={entity} "
                                       f"with TxnId={other['Id']}", "DocNumber")
        elif not realm.custom_txn_numbers:
            record["DocNumber"] = str(1000 + len(realm.entities[entity]) + 1)
        subtotal, taxable, discount = Decimal(0), Decimal(0), Decimal(0)
        kept = []
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict) or not line.get("DetailType"):
                raise _required("Line.DetailType")
            kind = line["DetailType"]
            if kind == "SubTotalLineDetail":
                continue  # recomputed below, as QBO does
            if line.get("Amount") is None and kind != "DescriptionOnly":
                raise _required("Line.Amount")
            amount = money(line.get("Amount"))
            if kind == "SalesItemLineDetail":
                detail = line.get("SalesItemLineDetail") or {}
                item_id = _ref(detail.get("ItemRef"))
                if item_id is None or item_id not in realm.entities["Item"]:
                    raise _not_found("Item", item_id)
                subtotal += amount
                if _ref(detail.get("TaxCodeRef")) == "TAX":
                    taxable += amount
            elif kind == "DiscountLineDetail":
                discount += amount
            line = {**line, "Amount": num(amount), "Id": str(number), "LineNum": number}
            kept.append(line)
        kept.append({"Amount": num(subtotal), "DetailType": "SubTotalLineDetail",
                     "SubTotalLineDetail": {}})
        tax_detail = dict(record.get("TxnTaxDetail") or {})
        total_tax = money(tax_detail.get("TotalTax", 0))
        tax_detail["TotalTax"] = num(total_tax)
        record["Line"] = kept
        record["TxnTaxDetail"] = tax_detail
        total = subtotal - discount + total_tax
        if total < 0:
            raise _business("Transaction amount must be 0 or more.", "TotalAmt")
        record["TotalAmt"] = num(total)
        if entity == "RefundReceipt":
            # Money out at once: settles itself, never touches the receivable.
            if _ref(record.get("DepositToAccountRef")) is None:
                raise _required("DepositToAccountRef")
            record["Balance"] = 0.0
            return
        if existing is not None:
            applied = money(existing.get("TotalAmt")) - money(
                existing.get("Balance" if entity == "Invoice" else "RemainingCredit"))
            if total < applied:
                raise _business("The invoice total is less than the amount already paid.",
                                "TotalAmt")

    def _validate_payment(self, realm: Realm, record: dict[str, Any],
                          existing: dict[str, Any] | None) -> None:
        if record.get("TotalAmt") is None:
            raise _required("TotalAmt")
        total = money(record["TotalAmt"])
        customer_id = _ref(record.get("CustomerRef"))
        applied = Decimal(0)
        lines = record.get("Line") or []
        for line in lines:
            amount = money(line.get("Amount"))
            for link in line.get("LinkedTxn") or []:
                txn_type = link.get("TxnType")
                target_entity = "Invoice" if txn_type == "Invoice" else (
                    "CreditMemo" if txn_type == "CreditMemo" else None)
                if target_entity is None:
                    raise _business(f"Unsupported LinkedTxn TxnType {txn_type}", "LinkedTxn")
                target = realm.entities[target_entity].get(str(link.get("TxnId")))
                if target is None:
                    raise _not_found(target_entity, link.get("TxnId"))
                if _ref(target.get("CustomerRef")) != customer_id:
                    raise _business("The linked transaction belongs to a different customer.",
                                    "LinkedTxn")
                open_amount = money(target.get("Balance" if target_entity == "Invoice"
                                                else "RemainingCredit"))
                if existing is not None:
                    open_amount += self._linked_amount(existing, target["Id"], txn_type)
                if amount > open_amount:
                    raise _business(f"The amount applied ({amount}) exceeds the open balance "
                                    f"({open_amount}) of {txn_type} {target['Id']}.", "Line")
                applied += amount if target_entity == "Invoice" else -amount
        unapplied = total - applied
        if unapplied < 0:
            raise _business("The payment amount must be at least the total applied.",
                            "TotalAmt")
        record["TotalAmt"] = num(total)
        record["UnappliedAmt"] = num(unapplied)

    @staticmethod
    def _linked_amount(payment: dict[str, Any], txn_id: str, txn_type: str | None) -> Decimal:
        total = Decimal(0)
        for line in payment.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                if str(link.get("TxnId")) == txn_id and link.get("TxnType") == txn_type:
                    total += money(line.get("Amount"))
        return total

    # ---- void / delete

    def _void(self, realm: Realm, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise QboFault("500", "Unsupported Operation",
                           f"Operation Void is not supported for {entity}.")
        self._check_period(realm, record.get("TxnDate"))
        if entity == "Payment":
            record["Line"] = []
            record["UnappliedAmt"] = 0.0
        else:
            self._unlink(realm, record["Id"], entity)
            record["Line"] = [{**line, "Amount": 0.0} for line in record.get("Line", [])]
            record["TxnTaxDetail"] = {**record.get("TxnTaxDetail", {}), "TotalTax": 0.0}
        record["TotalAmt"] = 0.0
        record["PrivateNote"] = "Voided"
        self._touch(record)
        return record

    def _delete(self, realm: Realm, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        if entity not in TRANSACTIONS:
            raise QboFault("500", "Unsupported Operation",
                           f"Operation Delete is not supported for {entity}. Make it inactive "
                           f"(Active=false) instead.")
        self._check_period(realm, record.get("TxnDate"))
        if entity != "Payment":
            self._unlink(realm, record["Id"], entity)
        del realm.entities[entity][record["Id"]]
        return {"status": "Deleted", "domain": "QBO", "Id": record["Id"]}

    def _unlink(self, realm: Realm, txn_id: str, entity: str) -> None:
        """Remove payment lines applied to a voided/deleted document (they become unapplied)."""
        for payment in realm.entities["Payment"].values():
            lines = payment.get("Line") or []
            kept = [line for line in lines
                    if not any(str(link.get("TxnId")) == txn_id and link.get("TxnType") == entity
                               for link in line.get("LinkedTxn") or [])]
            if len(kept) != len(lines):
                payment["Line"] = kept
                self._touch(payment)

    # ---- derived amounts

    def _recompute(self, realm: Realm) -> None:
        """Recompute invoice Balance, credit memo RemainingCredit and payment UnappliedAmt."""
        applied: dict[tuple[str, str], Decimal] = {}
        links: dict[tuple[str, str], list[dict[str, str]]] = {}
        for payment in realm.entities["Payment"].values():
            net = Decimal(0)
            for line in payment.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    key = (str(link.get("TxnType")), str(link.get("TxnId")))
                    amount = money(line.get("Amount"))
                    applied[key] = applied.get(key, Decimal(0)) + amount
                    links.setdefault(key, []).append({"TxnId": payment["Id"],
                                                      "TxnType": "Payment"})
                    net += amount if key[0] == "Invoice" else -amount
            payment["UnappliedAmt"] = num(money(payment.get("TotalAmt")) - net)
        for entity, field_name in (("Invoice", "Balance"), ("CreditMemo", "RemainingCredit")):
            for doc in realm.entities[entity].values():
                remaining = money(doc.get("TotalAmt")) - applied.get((entity, doc["Id"]),
                                                                     Decimal(0))
                doc[field_name] = num(remaining)
                if entity == "CreditMemo":
                    doc["Balance"] = num(remaining)
                if links.get((entity, doc["Id"])):
                    doc["LinkedTxn"] = links[(entity, doc["Id"])]
                else:
                    doc.pop("LinkedTxn", None)

    @staticmethod
    def _recompute_new_document(entity: str, doc: dict[str, Any]) -> None:
        """What :meth:`_recompute` would derive for a just-created invoice or credit
        memo: nothing is applied to it yet, so it is open for its whole total."""
        remaining = money(doc.get("TotalAmt"))
        doc["Balance" if entity == "Invoice" else "RemainingCredit"] = num(remaining)
        if entity == "CreditMemo":
            doc["Balance"] = num(remaining)
        doc.pop("LinkedTxn", None)

    def public(self, realm_id: str, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the API returns it (customer Balance is derived on read)."""
        out = copy.deepcopy(record)
        if entity == "Customer":
            out["Balance"] = num(self._customer_balance(self.realm(realm_id), record["Id"]))
        return out

    def _customer_balance(self, realm: Realm, customer_id: str) -> Decimal:
        total = Decimal(0)
        for invoice in realm.entities["Invoice"].values():
            if _ref(invoice.get("CustomerRef")) == customer_id:
                total += money(invoice.get("Balance"))
        for memo in realm.entities["CreditMemo"].values():
            if _ref(memo.get("CustomerRef")) == customer_id:
                total -= money(memo.get("RemainingCredit"))
        for payment in realm.entities["Payment"].values():
            if _ref(payment.get("CustomerRef")) == customer_id:
                total -= money(payment.get("UnappliedAmt"))
        return total

    # ------------------------------------------------------------------ query

    def query(self, realm_id: str, text: str) -> dict[str, Any]:
        try:
            parsed = qbo_query.parse(text)
        except qbo_query.QueryError as exc:
            raise QboFault("4000", "Error parsing query", f"QueryParserError: {exc}",
                           kind="ValidationFault") from exc
        entity = next((e for e in ENTITIES.values() if e.lower() == parsed.entity.lower()), None)
        if entity is None:
            raise QboFault("4000", "Error parsing query",
                           f"QueryParserError: Invalid entity {parsed.entity}")
        realm = self.realm(realm_id)
        derived = entity == "Customer" and any(
            "balance" in name.lower()
            for name in [c.field for c in parsed.conditions] + [parsed.order_by or ""])
        if derived:
            # A customer's Balance exists only in its public form: filter on that.
            records = [self.public(realm_id, entity, r) for r in realm.entities[entity].values()]
            page, total = qbo_query.run(parsed, records)
        else:
            # Filter the stored records and copy only the page: copying (and, for
            # customers, summing the balance of) every record made each query O(realm).
            page, total = qbo_query.run(parsed, list(realm.entities[entity].values()))
            page = [self.public(realm_id, entity, r) for r in page]
        if parsed.count:
            return {"totalCount": total}
        if not page:
            return {}
        return {entity: page, "startPosition": parsed.start, "maxResults": len(page)}

    # ------------------------------------------------------------------ report

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        realm = self.realm(tenant)
        documents: list[DocumentSummary] = []
        # A RefundReceipt is the credit document of a cash refund; its id is reported
        # with the entity name ("RefundReceipt:7"), as a reader must know which entity
        # to fetch (and as the QBO sink keys it in its id map).
        for entity, kind, field_name, prefix in (
                ("Invoice", "invoice", "Balance", ""),
                ("CreditMemo", "credit_note", "RemainingCredit", ""),
                ("RefundReceipt", "credit_note", "Balance", "RefundReceipt:")):
            for doc in realm.entities[entity].values():
                documents.append(DocumentSummary(
                    kind, prefix + doc["Id"], doc.get("DocNumber"), None,  # type: ignore[arg-type]
                    _ref(doc.get("CustomerRef")) or "",
                    "Voided" if doc.get("PrivateNote") == "Voided" else (
                        "Paid" if money(doc.get(field_name)) == 0 else "Open"),
                    money(doc.get("TotalAmt")), money(doc.get(field_name)), doc.get("TxnDate"),
                    realm.seq.get((entity, doc["Id"]), 0)))
        payments: list[PaymentSummary] = []
        applications: list[Application] = []
        for pay in realm.entities["Payment"].values():
            payments.append(PaymentSummary(
                pay["Id"], _ref(pay.get("CustomerRef")) or "", money(pay.get("TotalAmt")),
                money(pay.get("UnappliedAmt")),
                "Voided" if pay.get("PrivateNote") == "Voided" else "Active", pay.get("TxnDate"),
                pay.get("PaymentRefNum"), realm.seq.get(("Payment", pay["Id"]), 0)))
            credits = [link for line in pay.get("Line") or []
                       for link in line.get("LinkedTxn") or [] if link.get("TxnType")
                       == "CreditMemo"]
            for line in pay.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    if link.get("TxnType") != "Invoice":
                        continue
                    source_kind, source_id = ("credit_note", str(credits[0]["TxnId"])) \
                        if credits and money(pay.get("TotalAmt")) == 0 else ("payment", pay["Id"])
                    applications.append(Application(source_kind,  # type: ignore[arg-type]
                                                    source_id, str(link["TxnId"]),
                                                    money(line.get("Amount"))))
        customers = [CustomerSummary(c["Id"], c["DisplayName"], bool(c.get("Active", True)))
                     for c in realm.entities["Customer"].values()]
        return build_report(self.platform, tenant, documents, payments, applications, customers)
