"""The canonical corpus: CRM stories every platform sink must write correctly.

Each :class:`Scenario` is an ordered list of :class:`LedgerEntry` for one tenant, the
way the sink reads them from ``ledger.entries``: customer, invoices, payments, credit
notes, edits and voids. Figures are internally consistent (lines sum to the subtotal,
tax is rate x taxable rounded half-up) because they start from ``schemas.examples``.

The corpus is data, not tests: the contract suite (``tests/sinks/contract``) runs
every scenario through every registered platform and compares the platform's ledger
with :func:`sinks.platforms.common.reconcile.expected_ledger` of the same entries.
Balances on the entries (``invoice_balances``/``customer_balance``) are left empty:
sinks do not read them, and the expectation is recomputed from the documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from schemas.examples import (
    SAMPLE_TAX_CODE,
    T0,
    event_id_for,
    sample_address,
    sample_credit_note,
    sample_customer,
    sample_invoice,
    sample_lines,
    sample_payment,
)
from schemas.models import (
    AggregateType,
    Allocation,
    ComputedTax,
    CreditDisposition,
    CreditNote,
    Customer,
    DocumentLine,
    EventSource,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    LineKind,
    Op,
    Payload,
    Payment,
    PaymentKind,
    PaymentMethod,
    RoundingMode,
    TaxLine,
    quantize,
)

__all__ = ["SCENARIOS", "Scenario", "Story", "scenario"]

D = Decimal
STATE_TAX_CODE = "TX-STATE"
STATE_TAX_RATE = D("0.0625")
TENANT = "corpus"


class Story:
    """Builds one scenario's entries in order, numbering versions and event ids."""

    def __init__(self, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.entries: list[LedgerEntry] = []
        self.customers: dict[str, Customer] = {}
        self.versions: dict[tuple[str, str], int] = {}

    def _emit(self, kind: AggregateType, ident: str, payload: Payload | None, op: Op,
              customer_id: str, verb: str) -> LedgerEntry:
        version = self.versions.get((kind.value, ident), 0) + 1
        self.versions[(kind.value, ident)] = version
        occurred = T0 + timedelta(seconds=len(self.entries) + 1)
        event = FinancialEvent(
            event_id=event_id_for(self.tenant, kind.value, ident, version, op),
            event_type=f"{kind.value.lower()}.{verb}", op=op, tenant_id=self.tenant,
            aggregate_type=kind, aggregate_id=ident, aggregate_version=version,
            occurred_at=occurred, source=EventSource.OUTBOX, payload=payload)
        computed: tuple[ComputedTax, ...] = ()
        if isinstance(payload, Invoice | CreditNote):
            computed = tuple(ComputedTax(code=t.code, rate=t.rate, taxable_amount=t.taxable_amount,
                                         tax_amount=t.tax_amount, rounding=RoundingMode.HALF_UP)
                             for t in payload.tax_lines)
        entry = LedgerEntry(event=event, customer=self.customers.get(customer_id),
                            computed_tax=computed, processed_at=occurred + timedelta(seconds=0.04))
        self.entries.append(entry)
        return entry

    def customer(self, customer: Customer, *, announce: bool = True) -> Customer:
        """Register the customer snapshot; ``announce`` also emits customer.created."""
        self.customers[customer.id] = customer
        if announce:
            self._emit(AggregateType.CUSTOMER, customer.id, customer, Op.CREATE, customer.id,
                       "created")
        return customer

    def invoice(self, invoice: Invoice, *, op: Op = Op.CREATE) -> Invoice:
        verb = {Op.CREATE: "created", Op.UPDATE: "updated", Op.DELETE: "deleted"}[op]
        self._emit(AggregateType.INVOICE, invoice.id, invoice, op, invoice.customer_id, verb)
        return invoice

    def void(self, invoice: Invoice) -> Invoice:
        voided = invoice.model_copy(update={"status": InvoiceStatus.VOID})
        self._emit(AggregateType.INVOICE, invoice.id, voided, Op.UPDATE, invoice.customer_id,
                   "voided")
        return voided

    def payment(self, payment: Payment) -> Payment:
        verb = "refunded" if payment.kind is PaymentKind.REFUND else "received"
        self._emit(AggregateType.PAYMENT, payment.id, payment, Op.CREATE, payment.customer_id,
                   verb)
        return payment

    def credit_note(self, note: CreditNote) -> CreditNote:
        self._emit(AggregateType.CREDIT_NOTE, note.id, note, Op.CREATE, note.customer_id,
                   "issued")
        return note


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    build: Callable[[Story], None]

    def entries(self, tenant: str = TENANT) -> list[LedgerEntry]:
        story = Story(tenant)
        self.build(story)
        return story.entries


SCENARIOS: dict[str, Scenario] = {}


def scenario(description: str) -> Callable[[Callable[[Story], None]], Callable[[Story], None]]:
    def register(build: Callable[[Story], None]) -> Callable[[Story], None]:
        name = build.__name__
        SCENARIOS[name] = Scenario(name, description, build)
        return build
    return register


# --------------------------------------------------------------------------- builders


def line(line_id: str, kind: LineKind, description: str, quantity: str, unit: str,
         tax_code: str | None = None, sku: str | None = None) -> DocumentLine:
    amount = quantize(D(quantity) * D(unit), 2)
    return DocumentLine(line_id=line_id, kind=kind, description=description, sku=sku,
                        quantity=D(quantity), unit_price=D(unit), tax_code=tax_code,
                        amount=amount)


def taxed_invoice(invoice_id: str, customer_id: str, lines: tuple[DocumentLine, ...],
                  rates: dict[str, Decimal], *, currency: str = "USD",
                  number: str | None = None, exempt: bool = False) -> Invoice:
    """An invoice whose tax lines are computed from ``rates`` (code → rate), per code."""
    tax_lines = []
    for code, rate in rates.items():
        taxable = sum((ln.amount for ln in lines if ln.tax_code == code), D(0))
        if taxable and not exempt:
            tax_lines.append(TaxLine(code=code, name=code, rate=rate, taxable_amount=taxable,
                                     tax_amount=quantize(taxable * rate, 2)))
    subtotal = sum((ln.amount for ln in lines), D(0))
    total_tax = sum((t.tax_amount for t in tax_lines), D(0))
    base = sample_invoice(invoice_id, customer_id, lines=lines, currency=currency)
    return base.model_copy(update={
        "number": number or base.number, "tax_lines": tuple(tax_lines), "subtotal": subtotal,
        "total_tax": total_tax, "total": subtotal + total_tax, "amount_due": subtotal + total_tax,
    })


def pay(payment_id: str, invoice: Invoice, amount: Decimal, *, allocated: Decimal | None = None,
        tip: Decimal = D(0), method: PaymentMethod = PaymentMethod.CARD) -> Payment:
    allocation = amount - tip if allocated is None else allocated
    return sample_payment(payment_id, invoice.customer_id, invoice_id=invoice.id, amount=amount,
                          method=method, currency=invoice.currency, tip=tip,
                          allocations=(Allocation(invoice_id=invoice.id, amount=allocation),))


# --------------------------------------------------------------------------- scenarios


@scenario("labor + part + trip fee, one tax code, customer announced first")
def labor_parts_invoice(s: Story) -> None:
    s.customer(sample_customer("c1"))
    s.invoice(sample_invoice("inv1", "c1"))


@scenario("two tax codes on one invoice (parts at 8.25 %, labor at 6.25 %)")
def multi_rate_tax(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    lines = (
        line("l1", LineKind.LABOR, "Diagnose and repair", "2", "95.00", STATE_TAX_CODE),
        line("l2", LineKind.PART, "Door gasket", "1", "64.35", SAMPLE_TAX_CODE, "W10830166"),
        line("l3", LineKind.PART, "Drain hose", "2", "12.49", SAMPLE_TAX_CODE),
        line("l4", LineKind.DIAGNOSTIC_FEE, "Diagnostic fee", "1", "39.00"),
    )
    s.invoice(taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: D("0.0825"),
                                                  STATE_TAX_CODE: STATE_TAX_RATE}))


@scenario("tax-exempt customer (resale certificate): no tax on any line")
def tax_exempt_customer(s: Story) -> None:
    s.customer(sample_customer("c9", display_name="Hill Country Rentals LLC",
                               company_name="Hill Country Rentals LLC", tax_exempt=True,
                               tax_exemption_number="TX-RESALE-12345"))
    s.invoice(taxed_invoice("inv1", "c9", sample_lines(tax_code=SAMPLE_TAX_CODE),
                            {SAMPLE_TAX_CODE: D("0.0825")}, exempt=True))


@scenario("an invoice with 500 lines (a fleet service contract)")
def five_hundred_lines(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    lines = tuple(
        line(f"l{i}", LineKind.PART if i % 2 else LineKind.LABOR, f"Unit {i} service",
             "1", f"{10 + i % 7}.{i % 100:02d}", SAMPLE_TAX_CODE if i % 2 else None)
        for i in range(1, 501))
    s.invoice(taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: D("0.0825")}))


@scenario("non-ASCII names and descriptions")
def unicode_names(s: Story) -> None:
    s.customer(sample_customer("c1", display_name="Zoë Müller-Ramírez — 山田電機 ✓",
                               billing_address=sample_address(city="São Paulo", country="BR",
                                                              region="SP")))
    lines = (line("l1", LineKind.LABOR, "Réparation du lave-vaisselle (Bosch) — 1½ h", "1.5",
                  "95.00"),
             line("l2", LineKind.PART, "Pompe de vidange «OEM» Ø32 mm", "1", "89.99",
                  SAMPLE_TAX_CODE))
    s.invoice(taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: D("0.0825")}))


@scenario("a zero-amount invoice (warranty repair)")
def zero_amount_invoice(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    lines = (line("l1", LineKind.LABOR, "Warranty repair — no charge", "1", "0.00"),)
    s.invoice(taxed_invoice("inv1", "c1", lines, {}))


@scenario("a partial payment leaves the invoice open")
def partial_payment(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.payment(pay("pay1", invoice, D("100.00"), method=PaymentMethod.CASH))


@scenario("over-payment: more money than the invoice, and an allocation beyond its balance")
def over_payment(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.payment(pay("pay1", invoice, D("200.00"), method=PaymentMethod.CHECK))
    s.payment(pay("pay2", invoice, D("150.00"), method=PaymentMethod.CHECK))  # 59.08 too much


@scenario("card payment with a tip and a processor fee")
def tip_and_fee(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.payment(pay("pay1", invoice, invoice.total + D("20.00"), tip=D("20.00")))


@scenario("paid in full, then part of the payment refunded (re-opens the invoice)")
def refund_payment(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.payment(pay("pay1", invoice, invoice.total))
    s.payment(sample_payment("ref1", "c1", invoice_id="inv1", amount=D("50.00"),
                             kind=PaymentKind.REFUND, refund_of="pay1"))


@scenario("a credit note applied to the invoice it corrects")
def credit_note_applied(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    s.invoice(sample_invoice("inv1", "c1"))
    s.credit_note(sample_credit_note("cn1", "c1", invoice_id="inv1"))


@scenario("a credit note refunded in cash (returned part)")
def credit_note_refunded(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    s.invoice(sample_invoice("inv1", "c1"))
    s.credit_note(sample_credit_note("cn1", "c1", invoice_id="inv1",
                                     disposition=CreditDisposition.REFUNDED))


@scenario("an invoice voided after a partial payment (the money stays as credit)")
def void_after_payment(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.payment(pay("pay1", invoice, D("100.00")))
    s.void(invoice)


@scenario("an invoice voided before any payment")
def void_unpaid(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    invoice = s.invoice(sample_invoice("inv1", "c1"))
    s.void(invoice)


@scenario("an invoice edited after it was sent (a part added)")
def edit_after_sending(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    s.invoice(sample_invoice("inv1", "c1"))
    lines = (*sample_lines(), line("l4", LineKind.PART, "Hose clamp", "2", "3.50",
                                   SAMPLE_TAX_CODE))
    edited = taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: D("0.0825")})
    s.invoice(edited, op=Op.UPDATE)


@scenario("a customer billed in euros")
def multi_currency(s: Story) -> None:
    s.customer(sample_customer("c-eu", display_name="Brasserie Lumière", default_currency="EUR",
                               billing_address=sample_address(city="Lyon", country="FR",
                                                              region=None, postal_code="69002")))
    invoice = s.invoice(taxed_invoice("inv-eu", "c-eu", sample_lines(tax_code=None), {},
                                      currency="EUR"))
    s.payment(pay("pay-eu", invoice, D("100.00"), method=PaymentMethod.BANK_TRANSFER))


@scenario("a negative discount line")
def discount_line(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    lines = (*sample_lines(),
             DocumentLine(line_id="l9", kind=LineKind.DISCOUNT, description="Loyalty discount",
                          quantity=D(1), unit_price=D("-25.00"), amount=D("-25.00")))
    s.invoice(taxed_invoice("inv1", "c1", lines, {SAMPLE_TAX_CODE: D("0.0825")}))


@scenario("names and numbers longer than any platform allows")
def overlong_names(s: Story) -> None:
    s.customer(sample_customer("c-long", display_name="Appliance Repair Customer " + "x" * 600,
                               company_name="Company " + "y" * 300))
    s.invoice(taxed_invoice("inv1", "c-long", sample_lines(), {SAMPLE_TAX_CODE: D("0.0825")},
                            number="INV-2025-03-OAKLAND-SHOP-000000012345"))


@scenario("two customers sharing a display name")
def duplicate_display_names(s: Story) -> None:
    s.customer(sample_customer("c1", display_name="Alex Kim"))
    s.customer(sample_customer("c2", display_name="Alex Kim", email="alex.kim@example.org"))
    s.invoice(sample_invoice("inv1", "c1"))
    s.invoice(sample_invoice("inv2", "c2"))


@scenario("a quantity x price that does not multiply to the CRM amount (rounded by the CRM)")
def rounding_mismatch(s: Story) -> None:
    s.customer(sample_customer("c1"), announce=False)
    odd = DocumentLine(line_id="l1", kind=LineKind.LABOR, description="Labor 0.333 h",
                       quantity=D("0.333"), unit_price=D("95.00"), amount=D("31.60"))
    s.invoice(taxed_invoice("inv1", "c1", (odd, *sample_lines()[1:]),
                            {SAMPLE_TAX_CODE: D("0.0825")}))


def _sanity() -> None:
    """Every scenario builds (run at import: a broken corpus should fail loudly)."""
    for item in SCENARIOS.values():
        assert item.entries(), item.name


_sanity()
