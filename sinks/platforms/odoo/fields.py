"""The Odoo field table requests are validated against (there is no vendor spec file).

Derived from ``shared/research/platforms-B.md`` §7, which summarises odoo/odoo
``addons/account/models/account_move.py`` (``account.move`` fields, ``move_type`` and
``state`` selections, the ``(name, journal_id)`` constraint) and the standard ORM for
``account.move.line``, ``res.partner`` and ``account.payment`` (marked [K] there:
not verified against a live database). :func:`validate_request` checks a JSON-2 call:
the model and method are ones the sink may call, every written field exists, is
writable and has the right JSON type, selections hold a listed value, x2many values
are command triples, and search domains / read field lists name real fields.
Raises :class:`FieldTableViolation` listing every problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sinks.core.contract import PlatformRequest

__all__ = ["FIELDS", "METHODS", "FieldTableViolation", "validate_request", "validate_vals"]

#: field → type; ``"selection:a|b"`` lists the values; a leading ``~`` marks a
#: field the sink may read and search but never write (computed / read-only).
FIELDS: dict[str, dict[str, str]] = {
    "account.move": {
        "id": "~integer", "name": "char", "ref": "char", "date": "date",
        "move_type": "selection:entry|out_invoice|out_refund|in_invoice|in_refund|"
                     "out_receipt|in_receipt",
        "state": "~selection:draft|posted|cancel",
        "invoice_date": "date", "invoice_date_due": "date", "partner_id": "many2one",
        "currency_id": "many2one", "journal_id": "many2one", "company_id": "many2one",
        "payment_reference": "char", "narration": "html", "invoice_origin": "~char",
        "invoice_line_ids": "one2many:account.move.line", "reversed_entry_id": "many2one",
        "amount_untaxed": "~float", "amount_tax": "~float", "amount_total": "~float",
        "amount_residual": "~float", "payment_state": "~char", "write_date": "~datetime",
        "line_ids": "~one2many",
    },
    "account.move.line": {
        "id": "~integer", "name": "char", "quantity": "float", "price_unit": "float",
        "discount": "float", "tax_ids": "many2many", "account_id": "many2one",
        "product_id": "many2one", "sequence": "integer",
        "display_type": "selection:product|line_section|line_note",
        "analytic_distribution": "json", "move_id": "~many2one", "partner_id": "~many2one",
        "amount_residual": "~float", "reconciled": "~boolean", "payment_id": "~many2one",
        "account_type": "~char", "price_subtotal": "~float",
    },
    "res.partner": {
        "id": "~integer", "name": "char", "ref": "char", "email": "char", "phone": "char",
        "street": "char", "street2": "char", "city": "char", "zip": "char",
        "country_id": "many2one", "vat": "char", "customer_rank": "integer",
        "active": "boolean", "is_company": "boolean", "company_name": "char",
        "comment": "html", "write_date": "~datetime",
    },
    "account.payment": {
        "id": "~integer", "payment_type": "selection:inbound|outbound",
        "partner_type": "selection:customer|supplier", "partner_id": "many2one",
        "amount": "float", "date": "date", "journal_id": "many2one",
        "currency_id": "many2one", "memo": "char", "ref": "char",
        "state": "~char", "move_id": "~many2one", "write_date": "~datetime",
    },
    "account.partial.reconcile": {
        "id": "~integer", "debit_move_id": "~many2one", "credit_move_id": "~many2one",
        "amount": "~float",
    },
}

#: model → method → named parameters it accepts (``ids`` is separate).
METHODS: dict[str, dict[str, frozenset[str]]] = {
    "account.move": {
        "create": frozenset({"vals_list"}), "write": frozenset({"vals"}),
        "search_read": frozenset({"domain", "fields", "limit", "order"}),
        "read": frozenset({"fields"}), "action_post": frozenset(),
        "button_draft": frozenset(), "button_cancel": frozenset(),
        "js_assign_outstanding_line": frozenset({"line_id"}),
        "js_remove_outstanding_partial": frozenset({"partial_id"}),
    },
    "account.move.line": {
        "search_read": frozenset({"domain", "fields", "limit", "order"}),
        "reconcile": frozenset(),
    },
    "res.partner": {
        "create": frozenset({"vals_list"}), "write": frozenset({"vals"}),
        "search_read": frozenset({"domain", "fields", "limit", "order"}),
        "read": frozenset({"fields"}),
    },
    "account.payment": {
        "create": frozenset({"vals_list"}),
        "search_read": frozenset({"domain", "fields", "limit", "order"}),
        "read": frozenset({"fields"}), "action_post": frozenset(),
        "action_draft": frozenset(), "action_cancel": frozenset(),
    },
    "account.partial.reconcile": {
        "search_read": frozenset({"domain", "fields", "limit", "order"}),
    },
}

_RECORD_METHODS = frozenset({"write", "read", "action_post", "button_draft", "button_cancel",
                             "js_assign_outstanding_line", "js_remove_outstanding_partial",
                             "reconcile", "action_draft", "action_cancel"})
_DOMAIN_OPS = frozenset({"=", "!=", "in", "not in", "<", "<=", ">", ">=", "ilike", "=like"})


class FieldTableViolation(AssertionError):
    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__(f"{where} violates the Odoo field table:\n  " + "\n  ".join(problems))
        self.problems = problems


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_value(model: str, name: str, kind: str, value: Any, path: str) -> list[str]:
    base = kind.lstrip("~")
    if value is False and base not in ("boolean",):
        return []  # Odoo's "empty"
    if base == "char" or base == "html" or base == "datetime":
        return [] if isinstance(value, str) else [f"{path}: expected a string"]
    if base == "date":
        ok = isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-"
        return [] if ok else [f"{path}: expected YYYY-MM-DD, got {value!r}"]
    if base == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r}"]
    if base == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r}"]
    if base == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if base == "many2one":
        return [] if _is_id(value) else [f"{path}: expected a record id, got {value!r}"]
    if base == "json":
        return [] if isinstance(value, dict) else [f"{path}: expected an object"]
    if base.startswith("selection:"):
        allowed = base.split(":", 1)[1].split("|")
        return [] if value in allowed else [f"{path}: {value!r} not in {allowed}"]
    if base == "many2many":
        return _commands(value, path, None)
    if base.startswith("one2many"):
        comodel = base.split(":", 1)[1] if ":" in base else None
        return _commands(value, path, comodel)
    return [f"{path}: unknown field type {kind!r}"]


def _commands(value: Any, path: str, comodel: str | None) -> list[str]:
    if not isinstance(value, list):
        return [f"{path}: x2many values are lists of command triples"]
    problems: list[str] = []
    for i, command in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(command, list) or len(command) != 3 or command[0] not in range(7):
            problems.append(f"{where}: not an ORM command triple: {command!r}")
            continue
        code, _, payload = command
        if code == 0:
            if comodel is None:
                problems.append(f"{where}: create commands are not allowed here")
            else:
                problems += validate_vals(comodel, payload, where)
        elif code == 6 and not (isinstance(payload, list) and all(map(_is_id, payload))):
            problems.append(f"{where}: (6, 0, ids) needs a list of record ids")
        elif code in (1, 2, 3, 4) and not _is_id(command[1]):
            problems.append(f"{where}: command {code} needs a record id")
    return problems


def validate_vals(model: str, vals: Any, path: str = "vals") -> list[str]:
    """Problems of one ``create``/``write`` vals dict for ``model``."""
    table = FIELDS.get(model)
    if table is None:
        return [f"{path}: model {model!r} is not in the field table"]
    if not isinstance(vals, Mapping):
        return [f"{path}: expected an object of field values"]
    problems: list[str] = []
    for name, value in vals.items():
        kind = table.get(name)
        if kind is None:
            problems.append(f"{path}.{name}: {model} has no field {name!r}")
        elif kind.startswith("~"):
            problems.append(f"{path}.{name}: {model}.{name} is read-only / computed")
        else:
            problems += _check_value(model, name, kind, value, f"{path}.{name}")
    return problems


def _field_path(model: str, dotted: str) -> str | None:
    first = dotted.split(".", 1)[0]
    return None if first in FIELDS[model] else f"{model} has no field {first!r}"


def _check_domain(model: str, domain: Any) -> list[str]:
    if not isinstance(domain, list):
        return ["domain: expected a list"]
    problems: list[str] = []
    for term in domain:
        if term in ("&", "|", "!"):
            continue
        if not (isinstance(term, list) and len(term) == 3 and isinstance(term[0], str)):
            problems.append(f"domain: bad term {term!r}")
            continue
        if term[1] not in _DOMAIN_OPS:
            problems.append(f"domain: unknown operator {term[1]!r}")
        missing = _field_path(model, term[0])
        if missing:
            problems.append(f"domain: {missing}")
    return problems


def validate_request(request: PlatformRequest) -> None:
    """Raise :class:`FieldTableViolation` unless ``request`` is a valid JSON-2 call."""
    where = f"{request.method} {request.path} ({request.purpose})"
    parts = request.path.strip("/").split("/")
    if request.method != "POST" or len(parts) != 4 or parts[:2] != ["json", "2"]:
        raise FieldTableViolation(where, ["not a JSON-2 call (POST /json/2/<model>/<method>)"])
    model, method = parts[2], parts[3]
    params = METHODS.get(model, {}).get(method)
    if params is None:
        raise FieldTableViolation(where, [f"{model}.{method} is not a method the sink calls"])
    body = request.json
    if not isinstance(body, dict):
        raise FieldTableViolation(where, ["body must be a JSON object"])
    problems: list[str] = []
    for key in body:
        if key not in params and key not in ("ids", "context"):
            problems.append(f"{model}.{method} takes no parameter {key!r}")
    if method in _RECORD_METHODS:
        ids = body.get("ids")
        if not (isinstance(ids, list) and ids and all(map(_is_id, ids))):
            problems.append(f"{model}.{method} is a record method: 'ids' must list record ids")
    elif "ids" in body:
        problems.append(f"{model}.{method} is a model method: no 'ids'")
    if method == "create":
        vals_list = body.get("vals_list")
        if not isinstance(vals_list, list) or not vals_list:
            problems.append("create: 'vals_list' must be a non-empty list")
        else:
            for i, vals in enumerate(vals_list):
                problems += validate_vals(model, vals, f"vals_list[{i}]")
    if method == "write":
        problems += validate_vals(model, body.get("vals"), "vals")
    if method == "search_read":
        problems += _check_domain(model, body.get("domain", []))
    if method in ("search_read", "read"):
        for name in body.get("fields", []):
            if name not in FIELDS[model]:
                problems.append(f"fields: {model} has no field {name!r}")
    for key in ("line_id", "partial_id"):
        if key in body and not _is_id(body[key]):
            problems.append(f"{key}: expected a record id")
    if problems:
        raise FieldTableViolation(where, problems)
