"""Odoo 19 JSON-2 API sandbox (``account`` app subset).

Reproduces what an Odoo sink must cope with (shared/research/platforms-B.md §7):
``POST /json/2/<model>/<method>`` with ``Authorization: bearer <API key>`` and the
``X-Odoo-Database`` header (the tenant), named parameters, errors as HTTP statuses
with ``{"name": "odoo.exceptions.UserError", "message": ...}`` bodies (UserError /
ValidationError 422, MissingError 404, AccessError 403, bad key 401). Modelled:
``res.partner`` (archiving: ``active`` and the ``active_test`` context), ``account.
move`` customer invoices and credit notes (draft → ``action_post`` → posted with a
sequence name, ``button_draft`` unreconciles, ``button_cancel`` only from draft,
posted moves refuse line edits, x2many command triples, taxes computed by Odoo,
"round globally", the ``(name, journal_id)`` uniqueness of posted moves, the lock
date refusing to post on or before it), ``account.payment`` (inbound/outbound,
``memo``, post/draft/cancel), receivable journal items and ``account.partial.
reconcile`` (``js_assign_outstanding_line``, ``js_remove_outstanding_partial``,
``account.move.line.reconcile``), ``search_read`` domains (``=``, ``!=``, ``in``,
``not in``, ``ilike``, ``|``/``&``/``!``), many2one values read as ``[id, name]``.
The same models also answer Odoo <= 18's ``execute_kw`` over JSON-RPC (``POST
/jsonrpc``; database, uid and API key in the body; errors inside HTTP 200).

Odoo documents no rate limit; the throttle answer (429 + ``Retry-After``, a werkzeug
``TooManyRequests`` body) is this sandbox's assumption for Odoo Online's fair-use
limit. Write-then-drop-response comes from :class:`Sandbox`.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
    read_json,
)
from sinks.transport.rpc import READ_METHODS

CENT = Decimal("0.01")
RECEIVABLE_ACCOUNT = 121
SALE_JOURNAL = 1
BANK_JOURNAL = 6
CASH_JOURNAL = 7


class OdooError(Exception):
    """An Odoo server exception: class, message, HTTP status (JSON-2)."""

    STATUS = {"UserError": 422, "ValidationError": 422, "MissingError": 404,
              "AccessError": 403, "AccessDenied": 401}

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 422)

    @property
    def qualified(self) -> str:
        return (f"odoo.exceptions.{self.kind}" if self.kind in self.STATUS
                else f"builtins.{self.kind}")


def _user(message: str) -> OdooError:
    return OdooError("UserError", message)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0))


def _round(value: Decimal, places: int = 2) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


class Database:
    """One Odoo database with one company (the tenant)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seq = 0
        self.partners: dict[int, dict[str, Any]] = {}
        self.moves: dict[int, dict[str, Any]] = {}
        self.lines: dict[int, dict[str, Any]] = {}  # product lines and receivable items
        self.payments: dict[int, dict[str, Any]] = {}
        self.partials: dict[int, dict[str, Any]] = {}
        self.lock_date: date | None = None
        #: account.tax id → (name, percent)
        self.taxes: dict[int, tuple[str, Decimal]] = {
            1: ("8.25% Austin", Decimal("8.25")), 2: ("6.25% Texas", Decimal("6.25")),
            3: ("0% Exempt", Decimal(0))}
        self.accounts = {400: "Labor Income", 401: "Parts Income", 402: "Fees Income",
                         409: "Discounts", RECEIVABLE_ACCOUNT: "Account Receivable"}
        self.journals = {SALE_JOURNAL: ("sale", "INV"), BANK_JOURNAL: ("bank", "BNK1"),
                         CASH_JOURNAL: ("cash", "CSH1")}
        self.currencies = {1: "USD", 2: "EUR"}
        self.company_currency = 1
        self.names: dict[str, int] = {}

    def next_id(self) -> int:
        self.seq += 1
        return self.seq


class OdooSandbox(Sandbox):
    platform = "odoo"
    token_path = "/__sandbox/api-keys"

    def __init__(self, *, clock: Clock | None = None, per_minute: int = 600,
                 max_concurrent: int = 8, access_lifetime: int = 90 * 86400) -> None:
        self.databases: dict[str, Database] = {}
        super().__init__(clock=clock, windows=[Window("minute", 60, per_minute)],
                         max_concurrent=max_concurrent, access_lifetime=access_lifetime,
                         idempotency_window=1)

    # ------------------------------------------------------------------ hooks

    def database(self, name: str) -> Database:
        with self.lock:
            return self.databases.setdefault(name, Database(name))

    def lock_period(self, tenant: str, through: date | None) -> None:
        with self.lock:
            self.database(tenant).lock_date = through

    def deactivate_customer(self, tenant: str, customer_id: str) -> None:
        self.database(tenant).partners[int(customer_id)]["active"] = False

    @staticmethod
    def _error(status: int, name: str, message: str,
               headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"name": name, "message": message, "arguments": [message],
                             "context": {}, "debug": ""}, status_code=status, headers=headers)

    def auth_error(self, outcome: str) -> Response:
        return self._error(401, "werkzeug.exceptions.Unauthorized",
                           "Invalid apikey" if outcome != "expired" else "API key expired")

    def throttled(self, tenant: str, throttle: Throttle) -> Response:
        return self._error(429, "werkzeug.exceptions.TooManyRequests", "Too many requests",
                           {"Retry-After": str(throttle.retry_after or 60)})

    def server_error(self, status: int) -> Response:
        return self._error(status, "werkzeug.exceptions.InternalServerError",
                           "The server encountered an internal error")

    def token_response(self, pair: TokenPair) -> dict[str, Any]:
        return {"access_token": pair.access_token, "token_type": "bearer",
                "expires_in": pair.expires_in}

    def routes(self) -> list[BaseRoute]:
        return [Route("/json/2/{model}/{method}", self._endpoint, methods=["POST"]),
                Route("/jsonrpc", self._jsonrpc, methods=["POST"])]

    async def _jsonrpc(self, request: Request) -> Response:
        """Odoo <= 18 ``execute_kw`` over JSON-RPC: the database, user id and API key
        travel in the body; every answer is HTTP 200, errors inside ``error.data``."""
        envelope = await read_json(request)
        call_id = envelope.get("id") if isinstance(envelope, dict) else None

        def fault(name: str, message: str) -> Response:
            return JSONResponse({"jsonrpc": "2.0", "id": call_id, "error": {
                "code": 200, "message": "Odoo Server Error",
                "data": {"name": name, "message": message, "arguments": [message],
                         "context": {}, "debug": ""}}})

        try:
            params = envelope["params"]
            assert params["service"] == "object" and params["method"] == "execute_kw"
            database, _uid, secret, model, method, args, kwargs = params["args"]
        except (KeyError, TypeError, ValueError, AssertionError):
            return fault("builtins.ValueError", "malformed execute_kw call")
        if database not in self.databases:
            return fault("psycopg2.OperationalError", f'database "{database}" does not exist')
        if self.tokens.check(str(secret), database) != "ok":
            return fault("odoo.exceptions.AccessDenied", "Access Denied")
        handler = self._handlers().get((model, method))
        if handler is None:
            return fault("builtins.AttributeError",
                         f"The method '{method}' does not exist on the model '{model}'")
        body = dict(kwargs or {})
        if args:
            body["ids"] = args[0]
        throttle = self.limiter.acquire(database)
        if throttle is not None:
            return self.throttled(database, throttle)
        try:
            with self.lock:
                try:
                    result = handler(self.databases[database], body)
                except OdooError as exc:
                    return fault(exc.qualified, exc.message)
            if method not in READ_METHODS and self.faults.take("drop_after_write", database):
                raise ConnectionDropped(f"{self.platform}: response to a committed write lost")
            return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": result})
        finally:
            self.limiter.release(database)

    # ------------------------------------------------------------------ dispatch

    async def _endpoint(self, request: Request) -> Response:
        tenant = request.headers.get("x-odoo-database", "")
        model, method = request.path_params["model"], request.path_params["method"]
        body = await read_json(request)

        def run() -> Response:
            if not tenant or tenant not in self.databases:
                return self._error(404, "werkzeug.exceptions.NotFound",
                                   f"database {tenant!r} not found")
            if not isinstance(body, dict):
                return self._error(400, "werkzeug.exceptions.BadRequest",
                                   "the body must be a JSON object")
            handler = self._handlers().get((model, method))
            if handler is None:
                return self._error(404, "werkzeug.exceptions.NotFound",
                                   f"no method {method!r} on model {model!r}")
            db = self.databases[tenant]
            try:
                result = handler(db, body)
            except OdooError as exc:
                return self._error(exc.status, exc.qualified, exc.message)
            return JSONResponse(result)

        return await self.guarded(request, tenant, run, write=method not in READ_METHODS)

    def _handlers(self) -> dict[tuple[str, str], Any]:
        h: dict[tuple[str, str], Any] = {}
        for model in ("res.partner", "account.move", "account.move.line", "account.payment",
                      "account.partial.reconcile"):
            h[(model, "search_read")] = self._search_read(model)
            h[(model, "read")] = self._read(model)
        h[("res.partner", "create")] = self._create_partner
        h[("res.partner", "write")] = self._write_partner
        h[("account.move", "create")] = self._create_move
        h[("account.move", "write")] = self._write_move
        h[("account.move", "action_post")] = self._post_move
        h[("account.move", "button_draft")] = self._draft_move
        h[("account.move", "button_cancel")] = self._cancel_move
        h[("account.move", "js_assign_outstanding_line")] = self._assign
        h[("account.move", "js_remove_outstanding_partial")] = self._remove_partial
        h[("account.move.line", "reconcile")] = self._reconcile
        h[("account.payment", "create")] = self._create_payment
        h[("account.payment", "action_post")] = self._post_payment
        h[("account.payment", "action_draft")] = self._draft_payment
        h[("account.payment", "action_cancel")] = self._cancel_payment
        return h

    # ------------------------------------------------------------------ records & reads

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def _store(self, db: Database, model: str) -> dict[int, dict[str, Any]]:
        return {"res.partner": db.partners, "account.move": db.moves,
                "account.move.line": db.lines, "account.payment": db.payments,
                "account.partial.reconcile": db.partials}[model]

    def _display(self, db: Database, model: str, rid: int | None) -> Any:
        if not rid:
            return False
        names = {"res.partner": lambda: db.partners[rid]["name"],
                 "account.move": lambda: db.moves[rid]["name"],
                 "account.move.line": lambda: db.lines[rid].get("name") or "",
                 "account.account": lambda: db.accounts.get(rid, "?"),
                 "account.journal": lambda: db.journals.get(rid, ("?", "?"))[1],
                 "res.currency": lambda: db.currencies.get(rid, "?"),
                 "account.payment": lambda: db.payments[rid]["name"]}
        return [rid, names[model]()]

    def residual(self, db: Database, line_id: int) -> Decimal:
        line = db.lines[line_id]
        balance: Decimal = line["balance"]
        used = sum((p["amount"] for p in db.partials.values()
                    if line_id in (p["debit_move_id"], p["credit_move_id"])), Decimal(0))
        return balance - used if balance >= 0 else balance + used

    def _move_residual(self, db: Database, move: dict[str, Any]) -> Decimal:
        if move["state"] != "posted" or move.get("receivable") is None:
            return move["amount_total"] if move["state"] == "draft" else Decimal(0)
        return abs(self.residual(db, move["receivable"]))

    def _view(self, db: Database, model: str, rec: dict[str, Any]) -> dict[str, Any]:
        """A record as ``read`` returns it (many2one as ``[id, name]``)."""
        d = self._display
        if model == "res.partner":
            return {**{k: v for k, v in rec.items()}, "country_id": False}
        if model == "account.move":
            return {"id": rec["id"], "name": rec["name"], "ref": rec.get("ref") or False,
                    "state": rec["state"], "move_type": rec["move_type"],
                    "partner_id": d(db, "res.partner", rec["partner_id"]),
                    "invoice_date": rec.get("invoice_date") or False,
                    "invoice_date_due": rec.get("invoice_date_due") or False,
                    "date": rec.get("date") or False,
                    "currency_id": d(db, "res.currency", rec["currency_id"]),
                    "journal_id": d(db, "account.journal", rec["journal_id"]),
                    "reversed_entry_id": d(db, "account.move", rec.get("reversed_entry_id")),
                    "amount_untaxed": float(rec["amount_untaxed"]),
                    "amount_tax": float(rec["amount_tax"]),
                    "amount_total": float(rec["amount_total"]),
                    "amount_residual": float(self._move_residual(db, rec)),
                    "write_date": rec["write_date"], "payment_reference": False,
                    "narration": rec.get("narration") or False}
        if model == "account.move.line":
            receivable = rec.get("balance") is not None
            parent = (db.moves[rec["move_id"]] if rec.get("move_id")
                      else db.payments[rec["payment_id"]])
            return {"id": rec["id"], "name": rec.get("name") or False,
                    "move_id": (d(db, "account.move", rec["move_id"]) if rec.get("move_id")
                                else [rec["payment_id"] + 10**6, parent["name"]]),
                    "payment_id": d(db, "account.payment", rec.get("payment_id")),
                    "partner_id": d(db, "res.partner", parent["partner_id"]),
                    "quantity": float(rec.get("quantity", 1)),
                    "price_unit": float(rec.get("price_unit", 0)),
                    "tax_ids": list(rec.get("tax_ids", [])),
                    "account_id": d(db, "account.account", rec["account_id"]),
                    "sequence": rec.get("sequence", 10),
                    "display_type": "payment_term" if receivable else "product",
                    "account_type": "asset_receivable" if receivable else "income",
                    "amount_residual": float(self.residual(db, rec["id"])) if receivable
                    else 0.0,
                    "reconciled": receivable and self.residual(db, rec["id"]) == 0,
                    "price_subtotal": float(rec.get("subtotal", 0))}
        if model == "account.payment":
            return {"id": rec["id"], "name": rec["name"], "state": rec["state"],
                    "payment_type": rec["payment_type"], "partner_type": "customer",
                    "partner_id": d(db, "res.partner", rec["partner_id"]),
                    "amount": float(rec["amount"]), "date": rec["date"],
                    "memo": rec.get("memo") or False,
                    "journal_id": d(db, "account.journal", rec["journal_id"]),
                    "move_id": [rec["id"] + 10**6, rec["name"]] if rec["state"] != "draft"
                    else False, "write_date": rec["write_date"]}
        return {"id": rec["id"], "amount": float(rec["amount"]),
                "debit_move_id": d(db, "account.move.line", rec["debit_move_id"]),
                "credit_move_id": d(db, "account.move.line", rec["credit_move_id"])}

    @staticmethod
    def _raw_value(rec: dict[str, Any], view: dict[str, Any], field: str) -> Any:
        value = view.get(field, rec.get(field))
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) \
                and isinstance(value[1], str):
            return value[0]
        return value

    def _match(self, rec: dict[str, Any], view: dict[str, Any], domain: list[Any]) -> bool:
        def term(t: list[Any]) -> bool:
            field, op, value = t
            actual = self._raw_value(rec, view, field)
            if op == "=":
                return bool(actual == value or (value is False and not actual))
            if op == "!=":
                return bool(actual != value)
            if op == "in":
                return actual in value
            if op == "not in":
                return actual not in value
            if op == "ilike":
                return str(value).lower() in str(actual or "").lower()
            raise OdooError("ValueError", f"Invalid domain operator {op!r}")

        def evaluate(i: int) -> tuple[bool, int]:
            token = domain[i]
            if token in ("|", "&"):
                left, j = evaluate(i + 1)
                right, k = evaluate(j)
                return (left or right) if token == "|" else (left and right), k
            if token == "!":
                inner, j = evaluate(i + 1)
                return not inner, j
            if not (isinstance(token, list) and len(token) == 3):
                raise OdooError("ValueError", f"Invalid leaf {token!r}")
            return term(token), i + 1

        i, result = 0, True
        while i < len(domain):
            ok, i = evaluate(i)
            result = result and ok
        return result

    @staticmethod
    def _project(view: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if not fields:
            return view
        return {"id": view["id"], **{f: view.get(f, False) for f in fields}}

    def _search_read(self, model: str) -> Any:
        def handler(db: Database, body: dict[str, Any]) -> Any:
            domain = body.get("domain") or []
            active_test = (body.get("context") or {}).get("active_test", True)
            out = []
            for rec in sorted(self._store(db, model).values(), key=lambda r: r["id"]):
                if model == "res.partner" and active_test and not rec.get("active", True):
                    continue
                view = self._view(db, model, rec)
                if self._match(rec, view, domain):
                    out.append(self._project(view, body.get("fields")))
            limit = body.get("limit")
            return out[:limit] if limit else out
        return handler

    def _read(self, model: str) -> Any:
        def handler(db: Database, body: dict[str, Any]) -> Any:
            store = self._store(db, model)
            missing = [i for i in body.get("ids", []) if i not in store]
            if missing:
                raise OdooError("MissingError", "Record does not exist or has been deleted.\n"
                                f"(Record: {model}({missing[0]},), User: 2)")
            return [self._project(self._view(db, model, store[i]), body.get("fields"))
                    for i in body["ids"]]
        return handler

    @staticmethod
    def _ids(body: dict[str, Any], store: dict[int, Any], model: str) -> list[int]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            raise OdooError("ValueError", f"{model}: this method needs record ids")
        for i in ids:
            if i not in store:
                raise OdooError("MissingError", "Record does not exist or has been deleted.\n"
                                f"(Record: {model}({i},), User: 2)")
        return ids

    # ------------------------------------------------------------------ partners

    PARTNER_FIELDS = frozenset({"name", "ref", "email", "phone", "street", "street2", "city",
                                "zip", "country_id", "vat", "customer_rank", "active",
                                "is_company", "company_name", "comment"})

    def _check_fields(self, model: str, vals: Any, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(vals, dict):
            raise OdooError("ValueError", f"{model}: vals must be a dictionary")
        for key in vals:
            if key not in allowed:
                raise OdooError("ValueError", f"Invalid field {key!r} on model {model!r}")
        return vals

    def _create_partner(self, db: Database, body: dict[str, Any]) -> Any:
        ids = []
        for vals in body.get("vals_list") or []:
            vals = self._check_fields("res.partner", vals, self.PARTNER_FIELDS)
            if not vals.get("name"):
                raise OdooError("ValidationError", "Contacts require a name")
            pid = db.next_id()
            db.partners[pid] = {"id": pid, "active": True, "ref": False, "email": False,
                                **vals, "write_date": self._now()}
            ids.append(pid)
        return ids

    def _write_partner(self, db: Database, body: dict[str, Any]) -> Any:
        vals = self._check_fields("res.partner", body.get("vals"), self.PARTNER_FIELDS)
        for pid in self._ids(body, db.partners, "res.partner"):
            db.partners[pid].update(vals)
            db.partners[pid]["write_date"] = self._now()
        return True

    # ------------------------------------------------------------------ moves

    MOVE_FIELDS = frozenset({"move_type", "partner_id", "ref", "date", "invoice_date",
                             "invoice_date_due", "currency_id", "journal_id", "company_id",
                             "payment_reference", "narration", "invoice_line_ids",
                             "reversed_entry_id", "name"})
    LINE_FIELDS = frozenset({"name", "quantity", "price_unit", "discount", "tax_ids",
                             "account_id", "product_id", "sequence", "display_type",
                             "analytic_distribution"})
    POSTED_WRITABLE = frozenset({"ref", "narration", "payment_reference"})

    def _apply_lines(self, db: Database, move: dict[str, Any], commands: Any) -> None:
        if not isinstance(commands, list):
            raise OdooError("ValueError", "invoice_line_ids expects a list of commands")
        for command in commands:
            if not isinstance(command, list) or len(command) != 3:
                raise OdooError("ValueError", f"Invalid x2many command {command!r}")
            code = command[0]
            if code == 5:
                for lid in move["line_ids"]:
                    db.lines.pop(lid, None)
                move["line_ids"] = []
            elif code == 0:
                vals = self._check_fields("account.move.line", command[2], self.LINE_FIELDS)
                account = vals.get("account_id")
                if account not in db.accounts:
                    raise OdooError("ValidationError", f"Account {account} does not exist")
                taxes = vals.get("tax_ids", [])
                tax_ids: list[int] | None = []
                for tax_command in taxes if isinstance(taxes, list) else [taxes]:
                    if not (isinstance(tax_command, list) and len(tax_command) == 3
                            and tax_command[0] == 6 and isinstance(tax_command[2], list)):
                        raise OdooError("ValueError", f"Invalid x2many command {tax_command!r}"
                                                      " for tax_ids")
                    tax_ids = tax_command[2]
                if tax_ids is None or any(t not in db.taxes for t in tax_ids):
                    raise OdooError("ValidationError", f"Invalid taxes {taxes!r}")
                lid = db.next_id()
                quantity = _round(_dec(vals.get("quantity", 1)))
                price = _round(_dec(vals.get("price_unit", 0)))
                db.lines[lid] = {"id": lid, "move_id": move["id"], "name": vals.get("name"),
                                 "quantity": quantity, "price_unit": price,
                                 "tax_ids": list(tax_ids), "account_id": account,
                                 "sequence": 10 + len(move["line_ids"]),
                                 "subtotal": _round(quantity * price)}
                move["line_ids"].append(lid)
            else:
                raise OdooError("ValueError", f"command {code} not supported by the sandbox")
        self._compute(db, move)

    @staticmethod
    def _compute(db: Database, move: dict[str, Any]) -> None:
        """Amounts the way Odoo computes them, taxes rounded globally per tax."""
        untaxed = Decimal(0)
        bases: dict[int, Decimal] = {}
        for lid in move["line_ids"]:
            line = db.lines[lid]
            untaxed += line["subtotal"]
            for tax in line["tax_ids"]:
                bases[tax] = bases.get(tax, Decimal(0)) + line["subtotal"]
        tax = sum((_round(base * db.taxes[t][1] / 100) for t, base in bases.items()), Decimal(0))
        move["amount_untaxed"], move["amount_tax"] = untaxed, tax
        move["amount_total"] = untaxed + tax

    def _create_move(self, db: Database, body: dict[str, Any]) -> Any:
        ids = []
        for vals in body.get("vals_list") or []:
            vals = self._check_fields("account.move", vals, self.MOVE_FIELDS)
            move_type = vals.get("move_type", "entry")
            if move_type not in ("out_invoice", "out_refund"):
                raise OdooError("ValidationError",
                                f"the sandbox models customer documents, not {move_type!r}")
            if vals.get("partner_id") not in db.partners:
                raise OdooError("MissingError", "Record does not exist or has been deleted.\n"
                                f"(Record: res.partner({vals.get('partner_id')},), User: 2)")
            currency = vals.get("currency_id", db.company_currency)
            if currency not in db.currencies:
                raise OdooError("ValidationError", f"Currency {currency} does not exist")
            journal = vals.get("journal_id", SALE_JOURNAL)
            if db.journals.get(journal, ("?",))[0] != "sale":
                raise OdooError("UserError", "The selected journal is not a sale journal.")
            mid = db.next_id()
            move = {"id": mid, "move_type": move_type, "partner_id": vals["partner_id"],
                    "ref": vals.get("ref") or False, "state": "draft",
                    "name": vals.get("name") or "/", "date": vals.get("date")
                    or vals.get("invoice_date"), "invoice_date": vals.get("invoice_date"),
                    "invoice_date_due": vals.get("invoice_date_due") or vals.get("invoice_date"),
                    "currency_id": currency, "journal_id": journal,
                    "reversed_entry_id": vals.get("reversed_entry_id"),
                    "narration": vals.get("narration"), "line_ids": [], "receivable": None,
                    "write_date": self._now(), "seq": mid}
            db.moves[mid] = move
            self._apply_lines(db, move, vals.get("invoice_line_ids", []))
            ids.append(mid)
        return ids

    def _write_move(self, db: Database, body: dict[str, Any]) -> Any:
        vals = self._check_fields("account.move", body.get("vals"), self.MOVE_FIELDS)
        for mid in self._ids(body, db.moves, "account.move"):
            move = db.moves[mid]
            if move["state"] != "draft" and set(vals) - self.POSTED_WRITABLE:
                raise _user("You cannot modify a posted or cancelled entry; reset it to draft "
                            "first.")
            for key, value in vals.items():
                if key == "invoice_line_ids":
                    self._apply_lines(db, move, value)
                elif key in ("partner_id",) and value not in db.partners:
                    raise OdooError("MissingError", "Record does not exist or has been "
                                                    "deleted.")
                else:
                    move[key] = value
            move["write_date"] = self._now()
        return True

    def _check_lock(self, db: Database, when: str | None) -> None:
        if db.lock_date is not None and when is not None \
                and date.fromisoformat(when) <= db.lock_date:
            raise _user("You cannot add/modify entries prior to and inclusive of the lock date "
                        f"{db.lock_date.strftime('%m/%d/%Y')}.")

    def _sequence(self, db: Database, prefix: str, when: str | None) -> str:
        year = (when or "2025")[:4]
        existing = [n for n in db.names if n.startswith(f"{prefix}/{year}/")]
        return f"{prefix}/{year}/{len(existing) + 1:05d}"

    def _post_move(self, db: Database, body: dict[str, Any]) -> Any:
        for mid in self._ids(body, db.moves, "account.move"):
            move = db.moves[mid]
            if move["state"] == "posted":
                raise _user(f"The entry {move['name']} (id {mid}) is already posted.")
            if move["state"] == "cancel":
                raise _user("You cannot post a cancelled entry; reset it to draft first.")
            if not move["line_ids"]:
                raise _user("You need to add a line before posting.")
            if not move.get("invoice_date"):
                raise _user("The Invoice/Bill date is required to validate this document.")
            self._check_lock(db, move["date"])
            if move["name"] == "/":
                prefix = "INV" if move["move_type"] == "out_invoice" else "RINV"
                move["name"] = self._sequence(db, prefix, move["invoice_date"])
            holder = db.names.get(move["name"])
            if holder is not None and holder != mid and db.moves[holder]["journal_id"] == \
                    move["journal_id"]:
                raise OdooError("ValidationError",
                                "Another entry with the same name already exists.")
            db.names[move["name"]] = mid
            sign = 1 if move["move_type"] == "out_invoice" else -1
            if move["receivable"] is None:
                lid = db.next_id()
                db.lines[lid] = {"id": lid, "move_id": mid, "name": move["name"],
                                 "account_id": RECEIVABLE_ACCOUNT, "balance": Decimal(0),
                                 "currency_id": move["currency_id"]}
                move["receivable"] = lid
            db.lines[move["receivable"]]["balance"] = sign * move["amount_total"]
            move["state"] = "posted"
            move["write_date"] = self._now()
        return True

    def _unreconcile(self, db: Database, line_id: int | None) -> None:
        if line_id is None:
            return
        for pid in [p for p, v in db.partials.items()
                    if line_id in (v["debit_move_id"], v["credit_move_id"])]:
            del db.partials[pid]

    def _draft_move(self, db: Database, body: dict[str, Any]) -> Any:
        for mid in self._ids(body, db.moves, "account.move"):
            move = db.moves[mid]
            if move["state"] == "posted":
                self._check_lock(db, move["date"])
            self._unreconcile(db, move["receivable"])
            move["state"] = "draft"
            move["write_date"] = self._now()
        return True

    def _cancel_move(self, db: Database, body: dict[str, Any]) -> Any:
        for mid in self._ids(body, db.moves, "account.move"):
            move = db.moves[mid]
            if move["state"] != "draft":
                raise _user("Only draft journal entries can be cancelled.")
            move["state"] = "cancel"
            move["write_date"] = self._now()
        return True

    # ------------------------------------------------------------------ reconciliation

    def _posted_line(self, db: Database, line_id: Any) -> dict[str, Any]:
        line = db.lines.get(line_id) if isinstance(line_id, int) else None
        if line is None or line.get("balance") is None:
            raise OdooError("MissingError", "Record does not exist or has been deleted.")
        parent = (db.moves[line["move_id"]] if line.get("move_id")
                  else db.payments[line["payment_id"]])
        if parent["state"] != "posted":
            raise _user("You can only reconcile posted entries.")
        return line

    def _partner_of(self, db: Database, line: dict[str, Any]) -> int:
        parent = (db.moves[line["move_id"]] if line.get("move_id")
                  else db.payments[line["payment_id"]])
        return int(parent["partner_id"])

    def _pair(self, db: Database, a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Reconcile two receivable items for as much as both have open."""
        if self._partner_of(db, a) != self._partner_of(db, b):
            raise _user("Entries are not from the same partner.")
        if a["currency_id"] != b["currency_id"]:
            raise _user("Entries are not in the same currency.")
        ra, rb = self.residual(db, a["id"]), self.residual(db, b["id"])
        if ra == 0 or rb == 0:
            return False
        if (ra > 0) == (rb > 0):
            raise _user("You are trying to reconcile some entries that are already reconciled"
                        " or that are on the same side.")
        debit, credit = (a, b) if ra > 0 else (b, a)
        amount = min(abs(ra), abs(rb))
        pid = db.next_id()
        db.partials[pid] = {"id": pid, "debit_move_id": debit["id"],
                            "credit_move_id": credit["id"], "amount": amount}
        return True

    def _assign(self, db: Database, body: dict[str, Any]) -> Any:
        (mid,) = self._ids(body, db.moves, "account.move")[:1]
        move = db.moves[mid]
        if move["state"] != "posted" or move["receivable"] is None:
            raise _user("You can only reconcile posted entries.")
        own = self._posted_line(db, move["receivable"])
        other = self._posted_line(db, body.get("line_id"))
        self._pair(db, own, other)
        return True

    def _remove_partial(self, db: Database, body: dict[str, Any]) -> Any:
        (mid,) = self._ids(body, db.moves, "account.move")[:1]
        partial = db.partials.get(body.get("partial_id"))  # type: ignore[arg-type]
        if partial is None:
            raise OdooError("MissingError", "Record does not exist or has been deleted.")
        if db.moves[mid]["receivable"] not in (partial["debit_move_id"],
                                               partial["credit_move_id"]):
            raise _user("This reconciliation does not belong to the entry.")
        del db.partials[partial["id"]]
        return True

    def _reconcile(self, db: Database, body: dict[str, Any]) -> Any:
        lines = [self._posted_line(db, i) for i in self._ids(body, db.lines,
                                                             "account.move.line")]
        debits = [ln for ln in lines if self.residual(db, ln["id"]) > 0]
        credits = [ln for ln in lines if self.residual(db, ln["id"]) < 0]
        for debit in debits:
            for credit in credits:
                self._pair(db, debit, credit)
        return True

    # ------------------------------------------------------------------ payments

    PAYMENT_FIELDS = frozenset({"payment_type", "partner_type", "partner_id", "amount", "date",
                                "journal_id", "currency_id", "memo",
                                "payment_method_line_id"})

    def _create_payment(self, db: Database, body: dict[str, Any]) -> Any:
        ids = []
        for vals in body.get("vals_list") or []:
            vals = self._check_fields("account.payment", vals, self.PAYMENT_FIELDS)
            if vals.get("partner_id") not in db.partners:
                raise OdooError("MissingError", "Record does not exist or has been deleted.")
            if db.journals.get(vals.get("journal_id"), ("?",))[0] not in ("bank", "cash"):  # type: ignore[arg-type]
                raise OdooError("ValidationError", "A payment must be in a bank or cash "
                                                   "journal.")
            amount = _dec(vals.get("amount"))
            if amount < 0:
                raise OdooError("ValidationError", "The payment amount cannot be negative.")
            if vals.get("payment_type") not in ("inbound", "outbound"):
                raise OdooError("ValidationError", "payment_type must be inbound or outbound")
            currency = vals.get("currency_id", db.company_currency)
            if currency not in db.currencies:
                raise OdooError("ValidationError", f"Currency {currency} does not exist")
            pid = db.next_id()
            db.payments[pid] = {"id": pid, "name": "/", "state": "draft",
                                "payment_type": vals["payment_type"],
                                "partner_id": vals["partner_id"], "amount": _round(amount),
                                "date": vals.get("date") or self.clock.now().date().isoformat(),
                                "journal_id": vals["journal_id"], "currency_id": currency,
                                "memo": vals.get("memo") or False, "receivable": None,
                                "write_date": self._now(), "seq": pid}
            ids.append(pid)
        return ids

    def _post_payment(self, db: Database, body: dict[str, Any]) -> Any:
        for pid in self._ids(body, db.payments, "account.payment"):
            pay = db.payments[pid]
            if pay["state"] != "draft":
                raise _user("Only a draft payment can be posted.")
            self._check_lock(db, pay["date"])
            if pay["name"] == "/":
                pay["name"] = self._sequence(db, f"P{db.journals[pay['journal_id']][1]}",
                                             pay["date"])
                db.names[pay["name"]] = -pid
            sign = -1 if pay["payment_type"] == "inbound" else 1
            if pay["receivable"] is None:
                lid = db.next_id()
                db.lines[lid] = {"id": lid, "payment_id": pid, "name": pay["name"],
                                 "account_id": RECEIVABLE_ACCOUNT, "balance": Decimal(0),
                                 "currency_id": pay["currency_id"]}
                pay["receivable"] = lid
            db.lines[pay["receivable"]]["balance"] = sign * pay["amount"]
            pay["state"] = "posted"
            pay["write_date"] = self._now()
        return True

    def _draft_payment(self, db: Database, body: dict[str, Any]) -> Any:
        for pid in self._ids(body, db.payments, "account.payment"):
            pay = db.payments[pid]
            self._unreconcile(db, pay["receivable"])
            pay["state"] = "draft"
            pay["write_date"] = self._now()
        return True

    def _cancel_payment(self, db: Database, body: dict[str, Any]) -> Any:
        for pid in self._ids(body, db.payments, "account.payment"):
            pay = db.payments[pid]
            if pay["state"] != "draft":
                raise _user("Only a draft payment can be cancelled.")
            pay["state"] = "cancel"
            pay["write_date"] = self._now()
        return True

    # ------------------------------------------------------------------ ledger report

    STATUS = {"draft": "DRAFT", "posted": "POSTED", "cancel": "VOIDED"}

    def ledger_report(self, tenant: str) -> dict[str, Any]:
        db = self.database(tenant)
        documents = [
            DocumentSummary(
                "invoice" if mv["move_type"] == "out_invoice" else "credit_note",
                str(mv["id"]), None if mv["name"] == "/" else mv["name"], mv["ref"] or None,
                str(mv["partner_id"]), self.STATUS[mv["state"]], _round(mv["amount_total"]),
                _round(self._move_residual(db, mv)), mv.get("invoice_date"), mv["seq"])
            for mv in db.moves.values()]
        payments = []
        for pay in db.payments.values():
            unapplied = (-self.residual(db, pay["receivable"])
                         if pay["state"] == "posted" and pay["receivable"] else Decimal(0))
            payments.append(PaymentSummary(
                str(pay["id"]), str(pay["partner_id"]), pay["amount"], _round(unapplied),
                self.STATUS[pay["state"]], pay["date"], pay["memo"] or None, pay["seq"]))
        applications = []
        for partial in db.partials.values():
            debit, credit = db.lines[partial["debit_move_id"]], db.lines[partial["credit_move_id"]]
            if credit.get("payment_id") and debit.get("move_id"):
                applications.append(Application("payment", str(credit["payment_id"]),
                                                str(debit["move_id"]), partial["amount"]))
            elif credit.get("move_id") and debit.get("move_id"):
                applications.append(Application("credit_note", str(credit["move_id"]),
                                                str(debit["move_id"]), partial["amount"]))
        customers = [CustomerSummary(str(p["id"]), p["name"], bool(p.get("active", True)))
                     for p in db.partners.values()]
        return build_report(self.platform, tenant, documents, payments, applications,
                            customers)
