"""Validation of the models: clear errors for bad money, currency, ids and envelopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas import examples as ex
from schemas.models import (
    AggregateType,
    Allocation,
    DocumentLine,
    FinancialEvent,
    Invoice,
    LineKind,
    Op,
    Payment,
    PaymentKind,
    TaxComponent,
    quantize,
)


def _line(**kw: object) -> DocumentLine:
    data: dict[str, object] = {
        "line_id": "l1",
        "kind": LineKind.PART,
        "description": "pump",
        "quantity": "1",
        "unit_price": "10",
        "amount": "10",
    }
    return DocumentLine.model_validate({**data, **kw})


def test_decimals_are_padded_to_the_schema_scale() -> None:
    line = _line(quantity="1.5", unit_price=Decimal("95"), amount=95)
    assert str(line.quantity) == "1.5000"
    assert line.unit_price.as_tuple().exponent == -4
    assert str(TaxComponent.model_validate({"name": "state", "rate": "0.0625"}).rate) == "0.062500"


def test_money_is_never_rounded_silently() -> None:
    with pytest.raises(ValidationError, match="more than 4 decimal places"):
        _line(amount="10.00005")
    assert quantize(Decimal("10.00005")) == Decimal("10.0001")


def test_float_money_is_rejected() -> None:
    with pytest.raises(ValidationError, match="never float"):
        _line(amount=10.1)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "1E+14", "123456789012345"])
def test_non_finite_and_too_large_amounts_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        _line(unit_price=bad)


def test_largest_amount_fits() -> None:
    assert _line(unit_price="99999999999999.9999").unit_price == Decimal("99999999999999.9999")


def test_negative_quantity_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not be negative"):
        _line(quantity="-1")


def test_discount_sign_rules() -> None:
    assert _line(kind=LineKind.DISCOUNT, unit_price="-5", amount="-5").amount == Decimal("-5")
    with pytest.raises(ValidationError, match="DISCOUNT amount must be <= 0"):
        _line(kind=LineKind.DISCOUNT, amount="5")
    with pytest.raises(ValidationError, match="amount must be >= 0"):
        _line(kind=LineKind.LABOR, amount="-5")


@pytest.mark.parametrize("code", ["usd", "USS", "US", "XXX", "XAU"])
def test_unknown_currency_is_rejected(code: str) -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        ex.sample_invoice(currency=code)


def test_three_decimal_currency_amounts_fit() -> None:
    inv = ex.sample_invoice(currency="KWD")
    assert inv.currency == "KWD"
    assert _line(unit_price="1.125", amount="1.125").amount == Decimal("1.1250")


def test_rates_are_fractions() -> None:
    with pytest.raises(ValidationError, match="fraction"):
        TaxComponent(name="state", rate=Decimal("8.25"))
    with pytest.raises(ValidationError, match="more than 6 decimal places"):
        TaxComponent(name="state", rate=Decimal("0.0000001"))


def test_models_are_frozen() -> None:
    inv = ex.sample_invoice()
    with pytest.raises(ValidationError, match="frozen"):
        inv.total = Decimal(0)
    hash(ex.sample_invoice_event())  # tuples, not lists: hashable all the way down


def test_timestamps_must_be_aware_and_are_normalised_to_utc() -> None:
    ev = ex.sample_invoice_event()
    data = ev.model_dump()
    with pytest.raises(ValidationError, match="timezone"):
        FinancialEvent.model_validate({**data, "occurred_at": datetime(2025, 1, 1)})
    local = datetime(2025, 1, 1, 8, tzinfo=timezone(timedelta(hours=-6)))
    moved = FinancialEvent.model_validate({**data, "occurred_at": local})
    assert moved.occurred_at.tzinfo is UTC and moved.occurred_at.hour == 14


def test_event_id_must_be_a_uuid_and_is_canonicalised() -> None:
    data = ex.sample_invoice_event().model_dump()
    with pytest.raises(ValidationError, match="not a UUID"):
        FinancialEvent.model_validate({**data, "event_id": "evt-1"})
    upper = "6F1D6C8E-3F4E-4D8A-9A51-0C2B7C1E9D10"
    assert FinancialEvent.model_validate({**data, "event_id": upper}).event_id == upper.lower()


def test_payload_must_match_aggregate_type() -> None:
    data = ex.sample_invoice_event().model_dump()
    with pytest.raises(ValidationError, match="needs a Payment payload"):
        FinancialEvent.model_validate(
            {**data, "aggregate_type": AggregateType.PAYMENT, "event_type": "payment.received"}
        )


def test_payload_id_must_match_aggregate_id() -> None:
    data = ex.sample_invoice_event().model_dump()
    with pytest.raises(ValidationError, match="aggregate_id"):
        FinancialEvent.model_validate({**data, "aggregate_id": "other"})


def test_only_delete_may_omit_the_payload() -> None:
    assert ex.sample_invoice_event(op=Op.DELETE).payload is None
    data = ex.sample_invoice_event().model_dump()
    with pytest.raises(ValidationError, match="only DELETE"):
        FinancialEvent.model_validate({**data, "payload": None})


def test_event_type_must_name_the_aggregate() -> None:
    data = ex.sample_invoice_event().model_dump()
    with pytest.raises(ValidationError, match="does not start with 'invoice'"):
        FinancialEvent.model_validate({**data, "event_type": "payment.created"})
    with pytest.raises(ValidationError, match=r"<aggregate>\.<verb>"):
        FinancialEvent.model_validate({**data, "event_type": "InvoiceCreated"})


def test_tenant_may_not_contain_the_key_separator() -> None:
    with pytest.raises(ValidationError, match="separator"):
        ex.sample_invoice_event(tenant="a:b")


def test_refund_representation() -> None:
    refund = ex.sample_refund_event().payload
    assert isinstance(refund, Payment) and refund.kind is PaymentKind.REFUND
    assert refund.amount > 0 and refund.refund_of == "pay1"
    with pytest.raises(ValidationError, match="only for kind REFUND"):
        ex.sample_payment(refund_of="pay0")


def test_allocations_cannot_exceed_payment_less_tip() -> None:
    with pytest.raises(ValidationError, match="exceed amount less tip"):
        ex.sample_payment(
            amount=Decimal("100"),
            tip=Decimal("10"),
            allocations=(Allocation(invoice_id="inv1", amount=Decimal("95")),),
        )


def test_invoice_dates_and_line_ids() -> None:
    with pytest.raises(ValidationError, match="before issue_date"):
        ex.sample_invoice(due_date=ex.sample_invoice().issue_date - timedelta(days=1))
    line = ex.sample_lines()[0]
    with pytest.raises(ValidationError, match="duplicate line_id"):
        ex.sample_invoice(lines=(line, line))


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Invoice.model_validate({**ex.sample_invoice().model_dump(), "colour": "red"})


def test_samples_are_internally_consistent() -> None:
    inv = ex.sample_invoice()
    assert inv.subtotal == sum(line.amount for line in inv.lines)
    assert inv.total == inv.subtotal + inv.total_tax
    assert inv.total_tax == Decimal("7.42")  # 89.99 * 8.25 % = 7.424175
    assert ex.sample_invoice_event() == ex.sample_invoice_event()  # deterministic ids
    assert ex.sample_invoice_event().customer_id == "c1"
