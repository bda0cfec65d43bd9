"""Hypothesis strategies producing valid contract models (respecting every validator)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from schemas.currencies import CURRENCIES
from schemas.models import (
    PAYLOAD_TYPES,
    Address,
    AggregateType,
    Allocation,
    CreditDisposition,
    CreditNote,
    Customer,
    DocumentLine,
    EventSource,
    ExternalRef,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    LineKind,
    Op,
    Payload,
    Payment,
    PaymentKind,
    PaymentMethod,
    RepairJob,
    TaxComponent,
    TaxLine,
    TaxRate,
)

MAX = Decimal("99999999999999.9999")  # decimal(18,4) upper bound

text = st.text(max_size=30)
ids = st.text(min_size=1, max_size=20)
opt_text = st.none() | text
amounts = st.decimals(
    min_value=-MAX, max_value=MAX, places=4, allow_nan=False, allow_infinity=False
)
non_negative = st.decimals(
    min_value=0, max_value=MAX, places=4, allow_nan=False, allow_infinity=False
)
small_non_negative = st.decimals(
    min_value=0, max_value=Decimal("1000000"), places=4, allow_nan=False, allow_infinity=False
)
rates = st.decimals(min_value=0, max_value=1, places=6, allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(sorted(CURRENCIES))
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31))
offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14)).map(
        lambda d: timedelta(minutes=d // timedelta(minutes=1))
    ),
)
timestamps = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(2199, 12, 30),
    timezones=st.just(UTC) | offsets,
)
countries = st.sampled_from(["US", "CA", "GB", "DE", "MX", "KW", "JP"])

addresses = st.builds(
    Address,
    line1=text,
    line2=opt_text,
    city=text,
    region=opt_text,
    postal_code=opt_text,
    country=countries,
)
external_refs = st.builds(ExternalRef, system=ids, external_id=ids)
emails = st.none() | st.emails()

customers = st.builds(
    Customer,
    id=ids,
    display_name=ids,
    company_name=opt_text,
    email=emails,
    phone=opt_text,
    billing_address=addresses,
    service_address=st.none() | addresses,
    tax_exempt=st.booleans(),
    tax_exemption_number=opt_text,
    default_currency=currencies,
    external_refs=st.lists(external_refs, max_size=3).map(tuple),
    active=st.booleans(),
)


@st.composite
def lines(draw: st.DrawFn, line_id: str) -> DocumentLine:
    kind = draw(st.sampled_from(list(LineKind)))
    amount = draw(non_negative)
    if kind is LineKind.DISCOUNT:
        amount = -amount
    elif kind is LineKind.OTHER:
        amount = draw(amounts)
    return DocumentLine(
        line_id=line_id,
        kind=kind,
        description=draw(text),
        sku=draw(opt_text),
        quantity=draw(non_negative),
        unit_price=draw(amounts),
        tax_code=draw(opt_text),
        amount=amount,
    )


def line_lists() -> st.SearchStrategy[tuple[DocumentLine, ...]]:
    return st.integers(0, 4).flatmap(lambda n: st.tuples(*(lines(f"l{i}") for i in range(n))))


tax_lines = st.builds(
    TaxLine, code=ids, name=text, rate=rates, taxable_amount=amounts, tax_amount=amounts
)
allocations = st.builds(Allocation, invoice_id=ids, amount=small_non_negative)
jobs = st.builds(
    RepairJob,
    job_id=ids,
    appliance_type=text,
    brand=opt_text,
    model=opt_text,
    serial_number=opt_text,
    technician=opt_text,
    service_address=st.none() | addresses,
    completed_at=st.none() | timestamps,
)


@st.composite
def invoices(draw: st.DrawFn, invoice_id: str | None = None) -> Invoice:
    issue = draw(dates)
    return Invoice(
        id=invoice_id or draw(ids),
        number=draw(ids),
        status=draw(st.sampled_from(list(InvoiceStatus))),
        issue_date=issue,
        due_date=issue + timedelta(days=draw(st.integers(0, 120))),
        currency=draw(currencies),
        customer_id=draw(ids),
        po_number=draw(opt_text),
        job=draw(st.none() | jobs),
        lines=draw(line_lists()),
        prices_include_tax=draw(st.booleans()),
        subtotal=draw(amounts),
        tax_lines=tuple(draw(st.lists(tax_lines, max_size=3))),
        total_tax=draw(amounts),
        total=draw(amounts),
        amount_paid=draw(amounts),
        amount_due=draw(amounts),
        notes=draw(opt_text),
    )


@st.composite
def payments(draw: st.DrawFn, payment_id: str | None = None) -> Payment:
    kind = draw(st.sampled_from(list(PaymentKind)))
    allocs = tuple(draw(st.lists(allocations, max_size=3)))
    tip = draw(small_non_negative)
    amount = sum((a.amount for a in allocs), start=Decimal(0)) + tip + draw(small_non_negative)
    return Payment(
        id=payment_id or draw(ids),
        number=draw(ids),
        kind=kind,
        customer_id=draw(ids),
        received_date=draw(dates),
        method=draw(st.sampled_from(list(PaymentMethod))),
        currency=draw(currencies),
        amount=amount,
        processor_fee=draw(small_non_negative),
        tip=tip,
        allocations=allocs,
        check_number=draw(opt_text),
        card_last4=draw(st.none() | st.from_regex(r"\A[0-9]{4}\Z")),
        refund_of=draw(opt_text) if kind is PaymentKind.REFUND else None,
    )


@st.composite
def credit_notes(draw: st.DrawFn, credit_note_id: str | None = None) -> CreditNote:
    disposition = draw(st.sampled_from(list(CreditDisposition)))
    allocs = (
        ()
        if disposition is CreditDisposition.REFUNDED
        else tuple(draw(st.lists(allocations, max_size=3)))
    )
    return CreditNote(
        id=credit_note_id or draw(ids),
        number=draw(ids),
        customer_id=draw(ids),
        issue_date=draw(dates),
        currency=draw(currencies),
        invoice_id=draw(opt_text),
        reason=draw(text),
        lines=draw(line_lists()),
        prices_include_tax=draw(st.booleans()),
        subtotal=draw(amounts),
        tax_lines=tuple(draw(st.lists(tax_lines, max_size=2))),
        total_tax=draw(amounts),
        total=draw(amounts),
        disposition=disposition,
        allocations=allocs,
    )


@st.composite
def tax_rates(draw: st.DrawFn, code: str | None = None) -> TaxRate:
    start = draw(dates)
    end = draw(st.none() | st.integers(1, 3650).map(lambda d: start + timedelta(days=d)))
    comps = draw(
        st.lists(
            st.builds(TaxComponent, name=ids, rate=rates, compound=st.booleans()),
            min_size=1,
            max_size=3,
        )
    )
    return TaxRate(
        code=code or draw(ids),
        name=draw(text),
        jurisdiction=draw(text),
        components=tuple(comps),
        effective_from=start,
        effective_to=end,
        active=draw(st.booleans()),
    )


@st.composite
def financial_events(draw: st.DrawFn) -> FinancialEvent:
    aggregate_type = draw(st.sampled_from(list(AggregateType)))
    op = draw(st.sampled_from(list(Op)))
    aggregate_id = draw(ids)
    payload: Payload | None = None
    if op is not Op.DELETE or draw(st.booleans()):
        model = PAYLOAD_TYPES[aggregate_type]
        if model is Customer:
            payload = draw(customers).model_copy(update={"id": aggregate_id})
        elif model is Invoice:
            payload = draw(invoices(aggregate_id))
        elif model is Payment:
            payload = draw(payments(aggregate_id))
        elif model is CreditNote:
            payload = draw(credit_notes(aggregate_id))
        else:
            payload = draw(tax_rates(aggregate_id))
    verb = draw(st.from_regex(r"\A[a-z][a-z_]{0,12}\Z"))
    return FinancialEvent(
        event_id=str(draw(st.uuids())),
        event_type=f"{aggregate_type.value.lower()}.{verb}",
        op=op,
        tenant_id=draw(ids.filter(lambda t: ":" not in t)),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=draw(st.integers(0, 2**63 - 1)),
        occurred_at=draw(timestamps),
        source=draw(st.sampled_from(list(EventSource))),
        correlation_id=draw(opt_text),
        causation_id=draw(opt_text),
        payload=payload,
    )
