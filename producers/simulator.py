"""A day of repair-shop activity for N tenants, written through the outbox library.

Deterministic for a seed (business data and event ids; timestamps are the database's):
customers (tax-exempt ones, companies, unicode names), multi-component tax rates, repair
jobs invoiced with labor + parts + trip fee (+ diagnostic fee, discounts), drafts edited
then sent, edits after sending, full/partial/over-payments, card payments with processor
fees and tips, credit notes credited or refunded, voids after payment with a refund, a
deleted draft and customer edits. Each job's steps stay in order while jobs interleave,
as a real shop's day does. Other components' tests and the demo use it.

``ledgerstream simulate --tenants 3 --jobs 50 [--rate R] [--avro]`` fills
``DATABASE_URL`` (``ledgerstream/cli.py``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from producers import outbox
from producers.events import EVENT_ID_FACTORY
from schemas.models import (
    Address,
    AggregateType,
    Allocation,
    CreditDisposition,
    CreditNote,
    Customer,
    DocumentLine,
    ExternalRef,
    FinancialEvent,
    Invoice,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentKind,
    PaymentMethod,
    RepairJob,
    TaxComponent,
    TaxLine,
    TaxRate,
    quantize,
)

D = Decimal
CENT = D("0.01")

FIRST = ["Zoë", "José", "Ñandú", "Łukasz", "Aoife", "Søren", "Chloé", "Mykola", "Ahmet",
         "Björk", "Nguyễn", "Olamide", "Priya", "李", "Анна", "Grace", "Dmitri", "Renée"]
LAST = ["Müller-Ramírez", "García", "O'Brien", "Kowalski", "Nørgaard", "Åberg", "Đặng",
        "Smith", "Öztürk", "Fernández", "伟", "Иванова", "Okafor", "Dubois", "Patel", "Lee"]
COMPANIES = ["Sunrise Property Mgmt", "Café Zürich", "Hôtel Belvédère", "Lakeside HOA",
             "Müller & Söhne GmbH", "Tacos El Güero"]
APPLIANCES = [("washer", "Whirlpool", "WTW5000DW1"), ("dryer", "LG", "DLEX3900W"),
              ("refrigerator", "Samsung", "RF28R7351SR"), ("dishwasher", "Bosch", "SHPM88Z75N"),
              ("oven", "GE", "JB735SPSS"), ("microwave", "Panasonic", "NN-SN966S")]
PARTS = [("Drain pump assembly", "W10348269", D("89.99")), ("Door gasket", "DD62-00084A",
         D("64.50")), ("Igniter", "WB13K21", D("38.75")), ("Control board", "EBR78643401",
         D("214.00")), ("Thermal fuse", "WP3392519", D("12.40")), ("Water inlet valve",
         "W11175771", D("47.20")), ("Defrost heater", "DA47-00244U", D("56.80"))]
STREETS = ["Barton Springs Rd", "Congress Ave", "Rue de l\u2019\u00c9glise", "Lamar Blvd",
           "Guadalupe St", "Calle Año Nuevo"]
TECHS = ["Sam Ortiz", "Priya Raman", "Jürgen Weiß", "Ana Lucía Pérez"]


@dataclass(frozen=True)
class SimulationConfig:
    tenants: int = 2
    customers_per_tenant: int = 12
    jobs_per_tenant: int = 30
    seed: int = 42
    day: date = date(2025, 3, 14)
    currency: str = "USD"
    #: Events per second to pace the CRM writes at (``None``: as fast as the database
    #: takes them). Pacing is against a schedule from the start, so a slow transaction
    #: is caught up on instead of lowering the rate for the rest of the run.
    rate: float | None = None
    #: Number of the first tenant (``t001`` by default): several simulators can write
    #: disjoint shops into one database at once, as a CRM's many users do.
    first_tenant: int = 1
    #: Repair jobs of particular shops (``{"t003": 4}``), overriding ``jobs_per_tenant``:
    #: a shop whose books live on a slowly rate-limited platform gets a shorter day.
    jobs_by_tenant: Mapping[str, int] = field(default_factory=dict)

    def jobs_of(self, tenant_id: str) -> int:
        return self.jobs_by_tenant.get(tenant_id, self.jobs_per_tenant)


@dataclass
class SimulationResult:
    events: list[FinancialEvent] = field(default_factory=list)

    @property
    def by_type(self) -> Counter[str]:
        return Counter(e.event_type for e in self.events)


def _money(value: Decimal) -> Decimal:
    return quantize(value, 2)


class _Shop:
    """One tenant's state during the day."""

    def __init__(self, conn: psycopg.Connection[Any], tenant: str, rng: random.Random,
                 cfg: SimulationConfig, out: SimulationResult) -> None:
        self.conn, self.tenant, self.rng, self.cfg, self.out = conn, tenant, rng, cfg, out
        self.customers: list[Customer] = []
        self.rates: dict[str, TaxRate] = {}
        self.counter = 0

    def _next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:05d}"

    def emit(self, result: FinancialEvent | list[FinancialEvent]) -> None:
        self.out.events.extend(result if isinstance(result, list) else [result])

    # -- reference data --------------------------------------------------------------

    def setup(self) -> None:
        outbox.ensure_tenant(self.conn, self.tenant, f"Appliance Repair {self.tenant}",
                             self.cfg.currency)
        rates = [
            TaxRate(code="TX-AUSTIN", name="Austin sales tax", jurisdiction="US-TX-Austin",
                    components=(TaxComponent(name="Texas state", rate=D("0.0625")),
                                TaxComponent(name="City of Austin", rate=D("0.01")),
                                TaxComponent(name="Capital Metro transit", rate=D("0.01"))),
                    effective_from=date(2020, 1, 1)),
            TaxRate(code="TX-SVC", name="Taxable services", jurisdiction="US-TX",
                    components=(TaxComponent(name="Texas state services", rate=D("0.0625")),),
                    effective_from=date(2021, 7, 1)),
        ]
        for rate in rates:
            self.rates[rate.code] = rate
            self.emit(outbox.save_tax_rate(self.conn, self.tenant, rate))
        for _ in range(self.cfg.customers_per_tenant):
            self.customers.append(self._new_customer())

    def _address(self) -> Address:
        r = self.rng
        street = r.choice(STREETS)
        return Address(line1=f"{r.randint(100, 9999)} {street}",
                       line2=r.choice([None, None, f"Apt {r.randint(1, 40)}"]),
                       city="Austin", region="TX", postal_code=f"787{r.randint(0, 99):02d}",
                       country="US")

    def _new_customer(self) -> Customer:
        r = self.rng
        cid = self._next("cus")
        company = r.random() < 0.2
        exempt = r.random() < 0.12
        name = r.choice(COMPANIES) if company else f"{r.choice(FIRST)} {r.choice(LAST)}"
        customer = Customer(
            id=cid, display_name=name, company_name=name if company else None,
            email=f"{cid}@example.com" if r.random() < 0.85 else None,
            phone=f"+1-512-555-{r.randint(0, 9999):04d}", billing_address=self._address(),
            service_address=self._address() if r.random() < 0.3 else None,
            tax_exempt=exempt, tax_exemption_number=f"EX-{r.randint(10**5, 10**6)}"
            if exempt else None, default_currency=self.cfg.currency,
            external_refs=(ExternalRef(system="pos", external_id=f"POS-{cid}"),),
        )
        self.emit(outbox.save_customer(self.conn, self.tenant, customer))
        return customer

    # -- documents -------------------------------------------------------------------

    def _lines(self, customer: Customer) -> tuple[DocumentLine, ...]:
        r = self.rng
        parts_tax = None if customer.tax_exempt else "TX-AUSTIN"
        labor_tax = None if customer.tax_exempt or r.random() < 0.6 else "TX-SVC"
        hours = D(r.choice(["0.5", "1", "1.25", "1.5", "2", "3"]))
        rate = D(r.choice(["89.00", "95.00", "110.00"]))
        lines = [DocumentLine(line_id="L1", kind=LineKind.LABOR, description="Labor",
                              quantity=hours, unit_price=rate, tax_code=labor_tax,
                              amount=_money(hours * rate))]
        for desc, sku, price in r.sample(PARTS, r.randint(1, 3)):
            qty = D(r.choice([1, 1, 1, 2]))
            lines.append(DocumentLine(line_id=f"L{len(lines) + 1}", kind=LineKind.PART,
                                      description=desc, sku=sku, quantity=qty, unit_price=price,
                                      tax_code=parts_tax, amount=_money(qty * price)))
        lines.append(DocumentLine(line_id=f"L{len(lines) + 1}", kind=LineKind.TRIP_FEE,
                                  description="Trip charge", quantity=D(1),
                                  unit_price=D("49.00"), amount=D("49.00")))
        if r.random() < 0.3:
            lines.append(DocumentLine(line_id=f"L{len(lines) + 1}",
                                      kind=LineKind.DIAGNOSTIC_FEE, description="Diagnostic",
                                      quantity=D(1), unit_price=D("79.00"), amount=D("79.00")))
        if r.random() < 0.25:
            off = D(r.choice(["10.00", "15.00", "25.00"]))
            lines.append(DocumentLine(line_id=f"L{len(lines) + 1}", kind=LineKind.DISCOUNT,
                                      description="Returning-customer discount",
                                      quantity=D(1), unit_price=-off, amount=-off))
        return tuple(lines)

    def _taxes(self, lines: tuple[DocumentLine, ...]) -> tuple[TaxLine, ...]:
        out = []
        for code, rate in sorted(self.rates.items()):
            taxable = sum((ln.amount for ln in lines if ln.tax_code == code), start=D(0))
            if taxable:
                total_rate = sum((c.rate for c in rate.components), start=D(0))
                out.append(TaxLine(code=code, name=rate.name, rate=total_rate,
                                   taxable_amount=taxable,
                                   tax_amount=_money(taxable * total_rate)))
        return tuple(out)

    def _totals(self, lines: tuple[DocumentLine, ...]) -> dict[str, Any]:
        subtotal = sum((ln.amount for ln in lines), start=D(0))
        taxes = self._taxes(lines)
        tax = sum((t.tax_amount for t in taxes), start=D(0))
        return {"lines": lines, "subtotal": subtotal, "tax_lines": taxes, "total_tax": tax,
                "total": subtotal + tax}

    def _invoice(self, customer: Customer) -> Invoice:
        r = self.rng
        appliance, brand, model = r.choice(APPLIANCES)
        inv_id = self._next("inv")
        day = self.cfg.day
        totals = self._totals(self._lines(customer))
        return Invoice(
            id=inv_id, number=inv_id.upper(), status=InvoiceStatus.DRAFT, issue_date=day,
            due_date=day + timedelta(days=r.choice([0, 15, 30])), currency=self.cfg.currency,
            customer_id=customer.id, po_number=f"PO-{r.randint(1000, 9999)}"
            if customer.company_name else None,
            job=RepairJob(job_id=self._next("job"), appliance_type=appliance, brand=brand,
                          model=model, serial_number=f"SN{r.randint(10**7, 10**8)}",
                          technician=r.choice(TECHS),
                          service_address=customer.service_address or customer.billing_address,
                          completed_at=datetime.combine(day, datetime.min.time(), UTC)
                          + timedelta(hours=r.randint(8, 17), minutes=r.randint(0, 59))),
            amount_paid=D(0), amount_due=totals["total"], notes=None, **totals,
        )

    def _current_invoice(self, invoice_id: str) -> Invoice:
        from producers.outbox.store import load
        stored = load(self.conn, AggregateType.INVOICE, [(self.tenant, invoice_id)])
        inv = stored[(self.tenant, invoice_id)].payload
        assert isinstance(inv, Invoice)
        return inv

    def _payment(self, inv: Invoice, amount: Decimal, method: PaymentMethod,
                 tip: Decimal = D(0)) -> Payment:
        pid = self._next("pay")
        applied = min(amount, inv.amount_due)
        card = method is PaymentMethod.CARD
        total = amount + tip
        return Payment(
            id=pid, number=pid.upper(), kind=PaymentKind.PAYMENT, customer_id=inv.customer_id,
            received_date=self.cfg.day, method=method, currency=inv.currency, amount=total,
            processor_fee=_money(total * D("0.029") + D("0.30")) if card else D(0), tip=tip,
            allocations=(Allocation(invoice_id=inv.id, amount=applied),) if applied > 0 else (),
            check_number=str(self.rng.randint(1000, 9999))
            if method is PaymentMethod.CHECK else None,
            card_last4=f"{self.rng.randint(0, 9999):04d}" if card else None,
        )

    def _refund(self, customer_id: str, amount: Decimal, of: Payment | None) -> Payment:
        rid = self._next("ref")
        return Payment(id=rid, number=rid.upper(), kind=PaymentKind.REFUND,
                       customer_id=customer_id, received_date=self.cfg.day,
                       method=of.method if of else PaymentMethod.CHECK, currency=self.cfg.currency,
                       amount=amount, processor_fee=D(0), tip=D(0), allocations=(),
                       refund_of=of.id if of else None)

    def job(self) -> Iterator[None]:
        """One repair job from draft to its end; yields between CRM transactions."""
        r = self.rng
        conn, t = self.conn, self.tenant
        customer = r.choice(self.customers)
        inv = self._invoice(customer)
        self.emit(outbox.save_invoice(conn, t, inv))
        yield
        if r.random() < 0.08:  # a draft thrown away
            self.emit(outbox.delete_aggregate(conn, t, AggregateType.INVOICE, inv.id))
            return
        if r.random() < 0.3:  # draft edited before sending
            inv = self._current_invoice(inv.id)
            self.emit(outbox.save_invoice(conn, t, inv.model_copy(
                update={"notes": "Customer approved the estimate by phone."})))
            yield
        self.emit(outbox.set_invoice_status(conn, t, inv.id, InvoiceStatus.SENT))
        yield
        if r.random() < 0.15:  # edit after sending: an extra part was fitted
            inv = self._current_invoice(inv.id)
            desc, sku, price = r.choice(PARTS)
            extra = DocumentLine(line_id=f"L{len(inv.lines) + 1}", kind=LineKind.PART,
                                 description=desc, sku=sku, quantity=D(1), unit_price=price,
                                 tax_code=None if customer.tax_exempt else "TX-AUSTIN",
                                 amount=price)
            totals = self._totals((*inv.lines, extra))
            self.emit(outbox.save_invoice(conn, t, inv.model_copy(update={
                **totals, "amount_due": totals["total"] - inv.amount_paid})))
            yield
        inv = self._current_invoice(inv.id)
        roll = r.random()
        payment: Payment | None = None
        if roll < 0.45:  # paid in full by card, maybe with a tip
            tip = D(r.choice(["0", "0", "5.00", "10.00"]))
            payment = self._payment(inv, inv.amount_due, PaymentMethod.CARD, tip)
        elif roll < 0.65:  # partial payment now, the rest later
            half = _money(inv.amount_due / 2)
            self.emit(outbox.record_payment(conn, t, self._payment(inv, half,
                                                                   PaymentMethod.CASH)))
            yield
            inv = self._current_invoice(inv.id)
            payment = self._payment(inv, inv.amount_due, r.choice([PaymentMethod.CHECK,
                                                                   PaymentMethod.CARD]))
        elif roll < 0.75:  # over-payment: the change stays as unapplied credit
            payment = self._payment(inv, inv.amount_due + D("20.00"), PaymentMethod.CHECK)
        elif roll < 0.85:  # financing, partial only (still open at day end)
            payment = self._payment(inv, _money(inv.amount_due * D("0.3")),
                                    PaymentMethod.FINANCING)
        if payment is not None:
            self.emit(outbox.record_payment(conn, t, payment))
            yield
        roll = r.random()
        if roll < 0.12:  # part returned: credit note
            inv = self._current_invoice(inv.id)
            part = next((ln for ln in inv.lines if ln.kind is LineKind.PART), None)
            if part is None:
                return
            refunded = inv.amount_due <= 0
            lines = (part.model_copy(update={"line_id": "L1"}),)
            totals = self._totals(lines)
            cn_id = self._next("cn")
            disposition = CreditDisposition.REFUNDED if refunded else CreditDisposition.CREDITED
            applied = min(totals["total"], inv.amount_due)
            note = CreditNote(
                id=cn_id, number=cn_id.upper(), customer_id=inv.customer_id,
                issue_date=self.cfg.day, currency=inv.currency, invoice_id=inv.id,
                reason="Part returned unused", disposition=disposition,
                allocations=(Allocation(invoice_id=inv.id, amount=applied),)
                if not refunded and applied > 0 else (), **totals)
            # A REFUNDED credit note is itself the cash refund (ARCHITECTURE's balance
            # rules: it settles with cash and re-opens nothing); recording a separate
            # refund payment too would pay the customer twice.
            self.emit(outbox.issue_credit_note(conn, t, note))
        elif roll < 0.18 and payment is not None:  # void after payment, money refunded
            self.emit(outbox.set_invoice_status(conn, t, inv.id, InvoiceStatus.VOID))
            yield
            # The tip went to the technician, not to the invoice: the shop refunds what
            # the customer paid for the job (the balance rules count payments less tips).
            self.emit(outbox.record_payment(conn, t, self._refund(
                inv.customer_id, payment.amount - payment.tip, payment)))
        elif roll < 0.24:  # customer moved / changed email
            cust = next(c for c in self.customers if c.id == inv.customer_id)
            changed = cust.model_copy(update={"email": f"new.{cust.id}@example.org",
                                              "billing_address": self._address()})
            self.customers[self.customers.index(cust)] = changed
            self.emit(outbox.save_customer(conn, t, changed))


class _Pacer:
    """Keeps ``rate`` events/s on average by sleeping until each event's slot."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.started = time.monotonic()

    def wait(self, events_so_far: int) -> None:
        if self.rate is None:
            return
        due = self.started + events_so_far / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def simulate_day(dsn_or_conn: str | psycopg.Connection[Any],
                 config: SimulationConfig | None = None,
                 progress: Callable[[int], None] | None = None, *,
                 avro_encoder: outbox.AvroEncoder | None = None) -> SimulationResult:
    """Write a day for ``config.tenants`` tenants; returns the events written (in commit
    order per tenant). ``progress`` is called with the running event count after each
    CRM transaction (long runs show progress). ``avro_encoder``: the outbox rows also
    carry the event as Confluent-framed Avro (``payload_avro``, opt-in)."""
    cfg = config or SimulationConfig()
    pacer = _Pacer(cfg.rate)
    rng = random.Random(cfg.seed)
    # event ids differ between simulators writing other shops with the same seed
    ids = random.Random((cfg.seed ^ 0x5EED) + (cfg.first_tenant - 1) * 1_000_003)
    token = EVENT_ID_FACTORY.set(lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)))
    result = SimulationResult()
    own = isinstance(dsn_or_conn, str)
    conn = (psycopg.connect(dsn_or_conn, autocommit=True) if isinstance(dsn_or_conn, str)
            else dsn_or_conn)
    before = outbox.avro_encoder_of(conn)
    if avro_encoder is not None:
        outbox.use_avro_encoder(conn, avro_encoder)
    try:
        shops = [_Shop(conn, f"t{n + cfg.first_tenant:03d}", rng, cfg, result)
                 for n in range(cfg.tenants)]
        for shop in shops:
            shop.setup()
            pacer.wait(len(result.events))
        active: list[Iterator[None]] = [shop.job() for shop in shops
                                        for _ in range(cfg.jobs_of(shop.tenant))]
        while active:
            current = rng.randrange(len(active))
            if next(active[current], StopIteration) is StopIteration:
                active.pop(current)
            if progress is not None:
                progress(len(result.events))
            pacer.wait(len(result.events))
    finally:
        EVENT_ID_FACTORY.reset(token)
        outbox.use_avro_encoder(conn, before)
        if own:
            conn.close()
    return result
