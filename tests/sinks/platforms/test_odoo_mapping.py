"""Odoo: pure mapping (rounding, quantities, taxes, currencies), RPC envelopes, the
field-table validator, and error classification from real-shaped Odoo bodies."""

from __future__ import annotations

import json
import xmlrpc.client
from decimal import Decimal as D
from typing import Any

import pytest

from schemas.examples import sample_customer, sample_invoice, sample_payment
from schemas.models import DocumentLine, LineKind
from sinks.core.contract import PlatformRequest, PlatformResponse
from sinks.core.errors import (
    Action,
    AuthExpiredError,
    ConfigurationError,
    PayloadRejectedError,
    RateLimitedError,
    ReferenceMissingError,
    TransientError,
)
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.text import Notes
from sinks.platforms.odoo import Odoo, OdooSettings
from sinks.platforms.odoo import mapping as m
from sinks.platforms.odoo.fields import FieldTableViolation, validate_request
from sinks.transport.rpc import (
    SECRET_PLACEHOLDER,
    RpcProtocol,
    RpcTarget,
    fill_secret,
    rpc_call,
    rpc_fault,
    rpc_result,
)

SETTINGS = OdooSettings(base_url="https://shop.odoo.com", database="shop",
                        currency_ids={"EUR": 2})
MAPPING = TenantMapping.model_validate({
    "income_accounts": {"labor": "400", "parts": "401", "fees": "402", "discounts": "409"},
    "tax_codes": {"TX-AUSTIN": "1", "TX-STATE": "2"}, "exempt_tax_code": "3",
    "deposit_accounts": {"default": "6"},
})


def line(quantity: str, unit: str, amount: str, tax: str | None = "TX-AUSTIN",
         kind: LineKind = LineKind.LABOR) -> DocumentLine:
    return DocumentLine(line_id="l1", kind=kind, description="Labor", quantity=D(quantity),
                        unit_price=D(unit), tax_code=tax, amount=D(amount))


def lines_of(vals: dict[str, Any]) -> list[dict[str, Any]]:
    return [c[2] for c in vals["invoice_line_ids"] if c[0] == 0]


# --------------------------------------------------------------------------- mapping


def test_invoice_vals_are_valid_against_the_field_table() -> None:
    invoice = sample_invoice("inv1", "c1")
    vals = m.move_vals(invoice, 7, MAPPING, SETTINGS, Notes())
    assert vals["move_type"] == "out_invoice" and vals["ref"] == invoice.number
    assert vals["date"] == vals["invoice_date"] == invoice.issue_date.isoformat()
    validate_request(rpc_call(SETTINGS.target, "account.move", "create", purpose="t",
                              params={"vals_list": [vals]}))
    taxed = [ln["tax_ids"] for ln in lines_of(vals)]
    assert all(isinstance(t, list) and t[0][0] == 6 for t in taxed)  # [(6, 0, ids)]


def test_quantity_times_price_mismatch_is_sent_as_one_times_amount() -> None:
    notes = Notes()
    invoice = sample_invoice("inv1", "c1").model_copy(
        update={"lines": (line("0.333", "95.00", "31.60"),)})
    (sent,) = lines_of(m.move_vals(invoice, 7, MAPPING, SETTINGS, notes))
    assert (sent["quantity"], sent["price_unit"]) == (1.0, 31.6)
    assert notes.items and "31.60" in notes.items[0]


def test_quantity_beyond_uom_accuracy_is_collapsed() -> None:
    notes = Notes()
    invoice = sample_invoice("inv1", "c1").model_copy(
        update={"lines": (line("0.125", "80.00", "10.00"),)})
    (sent,) = lines_of(m.move_vals(invoice, 7, MAPPING, SETTINGS, notes))
    assert (sent["quantity"], sent["price_unit"]) == (1.0, 10.0)
    assert "accuracy" in notes.items[0]


def test_price_is_rounded_half_up_to_price_digits() -> None:
    invoice = sample_invoice("inv1", "c1").model_copy(
        update={"lines": (line("2", "10.005", "20.02"),)})
    (sent,) = lines_of(m.move_vals(invoice, 7, MAPPING, SETTINGS, Notes()))
    assert sent["price_unit"] == 10.01 and sent["quantity"] == 2.0


def test_taxes_follow_the_crm_tax_lines_and_exempt_code() -> None:
    base = sample_invoice("inv1", "c1")
    untaxed = base.model_copy(update={"tax_lines": ()})
    taxed_ids = [ln["tax_ids"][0][2] for ln in lines_of(
        m.move_vals(base, 7, MAPPING, SETTINGS, Notes())) if ln["tax_ids"][0][2]]
    exempt_ids = [ln["tax_ids"][0][2] for ln in lines_of(
        m.move_vals(untaxed, 7, MAPPING, SETTINGS, Notes())) if ln["tax_ids"][0][2]]
    assert taxed_ids and all(ids == [1] for ids in taxed_ids)
    assert exempt_ids and all(ids == [3] for ids in exempt_ids)


def test_discount_line_goes_to_the_discount_account() -> None:
    invoice = sample_invoice("inv1", "c1").model_copy(update={"lines": (
        line("1", "-25.00", "-25.00", tax=None, kind=LineKind.DISCOUNT),)})
    (sent,) = lines_of(m.move_vals(invoice, 7, MAPPING, SETTINGS, Notes()))
    assert sent["account_id"] == 409 and sent["price_unit"] == -25.0
    assert sent["tax_ids"] == [[6, 0, []]]


def test_foreign_currency_needs_a_mapped_id() -> None:
    eur = sample_invoice("inv1", "c1", currency="EUR")
    assert m.move_vals(eur, 7, MAPPING, SETTINGS, Notes())["currency_id"] == 2
    gbp = sample_invoice("inv1", "c1", currency="GBP")
    with pytest.raises(ConfigurationError, match="currency_ids"):
        m.move_vals(gbp, 7, MAPPING, SETTINGS, Notes())


def test_non_numeric_mapping_value_is_a_configuration_error() -> None:
    bad = MAPPING.model_copy(update={"income_accounts": {**MAPPING.income_accounts,
                                                          "labor": "LABOR-INCOME"}})
    with pytest.raises(ConfigurationError, match="Odoo record id"):
        m.move_vals(sample_invoice("inv1", "c1"), 7, bad, SETTINGS, Notes())


def test_replacing_lines_starts_with_a_clear_command() -> None:
    vals = m.move_vals(sample_invoice("inv1", "c1"), 7, MAPPING, SETTINGS, Notes(),
                       replace_lines=True)
    assert vals["invoice_line_ids"][0] == [5, 0, 0]


def test_line_keys_of_vals_and_records_agree() -> None:
    vals = m.move_vals(sample_invoice("inv1", "c1"), 7, MAPPING, SETTINGS, Notes())
    records = [{"id": i, "sequence": 10 + i, "name": ln["name"], "quantity": ln["quantity"],
                "price_unit": ln["price_unit"], "tax_ids": ln["tax_ids"][0][2],
                "account_id": [ln["account_id"], "Income"]}
               for i, ln in enumerate(lines_of(vals))]
    assert m.line_keys_of_records(records) == m.line_keys_of_vals(vals)
    records[0]["price_unit"] += 1
    assert m.line_keys_of_records(records) != m.line_keys_of_vals(vals)


def test_partner_and_payment_vals() -> None:
    partner = m.partner_vals(sample_customer("c1"), SETTINGS)
    assert partner["ref"] == "c1" and partner["customer_rank"] == 1
    payment = sample_payment("pay1", "c1", amount=D("100.00"))
    vals = m.payment_vals(payment, 7, D("100.00"), 6, SETTINGS, outbound=False)
    assert vals["memo"] == payment.number and vals["payment_type"] == "inbound"
    old = SETTINGS.model_copy(update={"version": 17, "protocol": RpcProtocol.XMLRPC, "uid": 2})
    assert "ref" in m.payment_vals(payment, 7, D("100.00"), 6, old, outbound=True)
    for model, v in (("res.partner", partner), ("account.payment", vals)):
        validate_request(rpc_call(SETTINGS.target, model, "create", purpose="t",
                                  params={"vals_list": [v]}))


def test_settings_refuse_json2_before_odoo_19() -> None:
    with pytest.raises(ValueError, match="JSON-2"):
        OdooSettings(base_url="https://x", database="d", version=18)
    with pytest.raises(ValueError, match="uid"):
        OdooSettings(base_url="https://x", database="d", version=18, protocol="xmlrpc")


# --------------------------------------------------------------------------- field table


@pytest.mark.parametrize(("model", "method", "body", "problem"), [
    ("account.move", "create", {"vals_list": [{"amount_total": 5}]}, "read-only"),
    ("account.move", "create", {"vals_list": [{"invoice_lines": []}]}, "no field"),
    ("account.move", "create", {"vals_list": [{"move_type": "invoice"}]}, "not in"),
    ("account.move", "create", {"vals_list": [{"invoice_date": "31/01/2025"}]}, "YYYY-MM-DD"),
    ("account.move", "create", {"vals_list": [{"invoice_line_ids": [
        [0, 0, {"tax_ids": [6, 0, [1]]}]]}]}, "command triple"),
    ("account.move", "action_post", {}, "record method"),
    ("account.move", "unlink", {"ids": [1]}, "not a method"),
    ("account.move", "search_read", {"domain": [["reff", "=", "x"]]}, "no field"),
    ("account.payment", "create", {"vals_list": [{"amount": "10.00"}]}, "number"),
])
def test_field_table_rejects(model: str, method: str, body: dict[str, Any],
                             problem: str) -> None:
    request = PlatformRequest("POST", f"/json/2/{model}/{method}", "t", json=body)
    with pytest.raises(FieldTableViolation, match=problem):
        validate_request(request)


# --------------------------------------------------------------------------- envelopes


def test_json2_envelope_and_read_keys() -> None:
    read = rpc_call(SETTINGS.target, "res.partner", "search_read", purpose="find",
                    params={"domain": [["ref", "=", "c1"]]}, context={"active_test": False})
    assert read.path == "/json/2/res.partner/search_read"
    assert read.headers["X-Odoo-Database"] == "shop"
    assert read.json == {"domain": [["ref", "=", "c1"]], "context": {"active_test": False}}
    assert read.idempotency_key is not None  # safe to re-send
    write = rpc_call(SETTINGS.target, "res.partner", "create", purpose="create",
                     params={"vals_list": [{"name": "A"}]})
    assert write.idempotency_key is None  # never blindly re-sent


def test_execute_kw_envelopes_carry_a_placeholder_secret() -> None:
    target = RpcTarget(RpcProtocol.JSONRPC, "shop", 2)
    request = rpc_call(target, "account.move", "action_post", purpose="post", ids=[5])
    args = request.json["params"]["args"]
    assert args[:5] == ["shop", 2, SECRET_PLACEHOLDER, "account.move", "action_post"]
    assert args[5] == [[5]]
    filled = fill_secret(request, "s3cret")
    assert filled.json["params"]["args"][2] == "s3cret"
    xml = rpc_call(RpcTarget(RpcProtocol.XMLRPC, "shop", 2), "res.partner", "search_read",
                   purpose="find", params={"domain": []})
    assert xml.path == "/xmlrpc/2/object" and xml.content is not None
    params, method = xmlrpc.client.loads(fill_secret(xml, "k").content.decode())  # type: ignore[union-attr]
    assert method == "execute_kw" and params[2] == "k" and params[6] == {"domain": []}


def test_results_of_each_envelope() -> None:
    assert rpc_result(PlatformResponse.from_json(200, [42])) == [42]
    assert rpc_result(PlatformResponse.from_json(
        200, {"jsonrpc": "2.0", "id": 1, "result": [42]})) == [42]
    xml = xmlrpc.client.dumps(([42],), methodresponse=True).encode()
    assert rpc_result(PlatformResponse(200, {"content-type": "text/xml"}, xml)) == [42]


# --------------------------------------------------------------------------- errors


def json2(status: int, name: str, message: str,
          headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse.from_json(status, {"name": name, "message": message,
                                               "arguments": [message], "context": {},
                                               "debug": "Traceback ..."}, headers)


LOCK = ("You cannot add/modify entries prior to and inclusive of the lock date "
        "12/31/2025.")


@pytest.mark.parametrize(("response", "kind", "action"), [
    (json2(422, "odoo.exceptions.UserError", LOCK), ConfigurationError, Action.PAUSE_TENANT),
    (json2(422, "odoo.exceptions.ValidationError",
           "Another entry with the same name already exists."), PayloadRejectedError,
     Action.DEAD_LETTER),
    (json2(404, "odoo.exceptions.MissingError",
           "Record does not exist or has been deleted."), ReferenceMissingError,
     Action.DEAD_LETTER),
    (json2(403, "odoo.exceptions.AccessError", "You are not allowed to modify 'Journal "
           "Entry' (account.move) records."), ConfigurationError, Action.PAUSE_TENANT),
    (json2(401, "werkzeug.exceptions.Unauthorized", "Invalid apikey"), AuthExpiredError,
     None),
    (json2(404, "werkzeug.exceptions.NotFound", "no model"), ConfigurationError,
     Action.PAUSE_TENANT),
    (json2(429, "werkzeug.exceptions.TooManyRequests", "slow down", {"Retry-After": "7"}),
     RateLimitedError, Action.RETRY),
    (json2(500, "psycopg2.errors.SerializationFailure",
           "could not serialize access due to concurrent update"), TransientError,
     Action.RETRY),
])
def test_json2_errors_are_classified(response: PlatformResponse, kind: type,
                                     action: Action | None) -> None:
    error = Odoo().classify_error(response)
    assert error is not None and isinstance(error, kind), error
    if action is not None:
        assert error.action is action
    if isinstance(error, RateLimitedError):
        assert error.retry_after == 7


def test_jsonrpc_error_inside_a_200_is_classified() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "error": {
        "code": 200, "message": "Odoo Server Error",
        "data": {"name": "odoo.exceptions.UserError", "message": LOCK, "arguments": [LOCK],
                 "context": {}, "debug": "..."}}}
    error = Odoo().classify_error(PlatformResponse.from_json(200, body))
    assert isinstance(error, ConfigurationError)
    assert rpc_fault(PlatformResponse.from_json(200, {"jsonrpc": "2.0", "result": 1})) is None


def test_xmlrpc_fault_is_classified() -> None:
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(
        1, "Traceback (most recent call last):\n...\nodoo.exceptions.ValidationError: "
           "The payment amount cannot be negative."), methodresponse=True)
    error = Odoo().classify_error(PlatformResponse(200, {"content-type": "text/xml"},
                                                   fault.encode()))
    assert isinstance(error, PayloadRejectedError)
    assert error.vendor_code == "ValidationError"


def test_success_is_not_an_error() -> None:
    assert Odoo().classify_error(PlatformResponse.from_json(200, [1])) is None
    assert Odoo().classify_error(PlatformResponse(200, {}, json.dumps(True).encode())) is None
