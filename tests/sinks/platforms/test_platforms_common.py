"""Shared mapping helpers: money on the wire, tax spreading, name limits."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.models import DocumentLine, LineKind, TaxLine
from sinks.core.mapping import LineKind as MappedKind
from sinks.platforms.common.lines import mapped_kind, priced, tax_by_line
from sinks.platforms.common.money import from_wire, round_money, split, wire
from sinks.platforms.common.text import Notes, fit_unique


def test_round_money_modes() -> None:
    assert round_money(D("10.005")) == D("10.01")
    assert round_money(D("10.005"), "half_even") == D("10.00")
    assert round_money(D("-10.005")) == D("-10.01")


def test_wire_is_exact_and_refuses_unrounded_amounts() -> None:
    assert wire(D("290.92")) == 290.92
    assert wire(D("0.10")) == 0.1
    assert str(wire(D("-0.00"))) == "0.0"
    with pytest.raises(ValueError, match="round it explicitly"):
        wire(D("1.005"))
    assert wire(D("1.5"), 4) == 1.5
    assert from_wire(290.92) == D("290.92")
    assert from_wire(None) == 0


@given(st.decimals(min_value=D("-10000"), max_value=D("10000"), places=2),
       st.lists(st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2),
                min_size=1, max_size=30))
def test_split_sums_exactly_and_stays_proportional(total: D, weights: list[D]) -> None:
    shares = split(total, weights)
    assert sum(shares, D(0)) == total
    base = sum(weights, D(0))
    for share, weight in zip(shares, weights, strict=True):
        assert abs(share - total * weight / base) < D("0.01")


def test_split_gives_leftover_cents_to_largest_remainders() -> None:
    assert split(D("0.10"), [D(1), D(1), D(1)]) == [D("0.04"), D("0.03"), D("0.03")]
    assert split(D("5.00"), [D(0), D(0)]) == [D(0), D("5.00")]


def _line(line_id: str, amount: str, code: str | None, kind: LineKind = LineKind.PART,
          qty: str = "1", unit: str | None = None) -> DocumentLine:
    return DocumentLine(line_id=line_id, kind=kind, description="x", quantity=D(qty),
                        unit_price=D(unit or amount), tax_code=code, amount=D(amount))


def test_tax_by_line_spreads_each_code_over_its_lines() -> None:
    lines = [_line("a", "100.00", "A"), _line("b", "50.00", "A"), _line("c", "10.00", "B"),
             _line("d", "40.00", None)]
    taxes = [TaxLine(code="A", name="A", rate=D("0.0825"), taxable_amount=D(150),
                     tax_amount=D("12.38")),
             TaxLine(code="B", name="B", rate=D("0.0625"), taxable_amount=D(10),
                     tax_amount=D("0.63"))]
    shares = tax_by_line(lines, taxes, D("13.01"))
    assert shares == [D("8.25"), D("4.13"), D("0.63"), D(0)]
    assert sum(shares, D(0)) == D("13.01")


def test_tax_by_line_puts_document_level_tax_on_taxable_lines() -> None:
    lines = [_line("a", "100.00", "A"), _line("b", "100.00", None)]
    assert tax_by_line(lines, [], D("5.00")) == [D("5.00"), D(0)]


def test_priced_keeps_quantity_when_it_multiplies_out() -> None:
    assert priced(_line("a", "142.50", None, LineKind.LABOR, "1.5", "95.00")).quantity == D("1.5")
    odd = priced(_line("b", "31.60", None, LineKind.LABOR, "0.333", "95.00"))
    assert (odd.quantity, odd.unit_price, odd.amount) == (D(1), D("31.60"), D("31.60"))
    assert odd.note and "sent as 1 x 31.60" in odd.note


def test_line_kinds_map_onto_the_mapping_files_four() -> None:
    assert mapped_kind(_line("a", "1", None, LineKind.TRIP_FEE)) is MappedKind.FEES
    assert mapped_kind(_line("a", "1", None, LineKind.DIAGNOSTIC_FEE)) is MappedKind.FEES
    assert mapped_kind(_line("a", "-5", None, LineKind.OTHER)) is MappedKind.DISCOUNTS
    assert mapped_kind(_line("a", "1", None, LineKind.LABOR)) is MappedKind.LABOR


def test_fit_unique_keeps_long_identifiers_distinct() -> None:
    a, b = "INV-2025-03-OAKLAND-SHOP-0001", "INV-2025-03-OAKLAND-SHOP-0002"
    assert len(fit_unique(a, 21)) == 21
    assert fit_unique(a, 21) != fit_unique(b, 21)
    assert fit_unique(a, 21) == fit_unique(a, 21)
    assert fit_unique("short", 21) == "short"


def test_notes_record_every_truncation() -> None:
    notes = Notes()
    assert notes.fit("DisplayName", "x" * 10, 4) == "xxxx"
    assert notes.fit("DocNumber", "ok", 4) == "ok"
    assert len(notes.items) == 1 and "DisplayName truncated to 4" in notes.items[0]
