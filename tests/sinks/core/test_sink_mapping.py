"""Per-tenant mapping: validation of the YAML and lookups that name what is missing."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
from pydantic import BaseModel

from sinks.core.errors import ConfigurationError
from sinks.core.mapping import (
    CustomerMatchRule,
    LineKind,
    Rounding,
    RoundingMode,
    RoundingScope,
    load_mapping_file,
    parse_mapping,
)

EXAMPLE = Path(str(resources.files("sinks.core") / "examples" / "mapping.example.yaml"))


@pytest.fixture
def acme():
    return load_mapping_file(EXAMPLE).tenant("acme")


def test_example_file_loads() -> None:
    mapping = load_mapping_file(EXAMPLE)
    assert set(mapping.tenants) == {"acme", "bikefix-uk"}
    assert mapping.tenant("acme").tenant_id == "acme"
    assert set(mapping.for_platform("xero")) == {"bikefix-uk"}


def test_lookups(acme) -> None:
    m = acme.mapping
    assert m.income_account("labor") == "79"
    assert m.income_account(LineKind.DISCOUNTS) == "86"
    assert m.item("parts") == "22"
    assert m.tax_code("CA-ALAMEDA") == "TAX"
    assert m.tax_code("CA-UNKNOWN", jurisdiction="CA") == "TAX"
    assert m.tax_code(None) == "NON"
    assert m.tax_code("CA-SF", exempt=True) == "NON"
    assert m.deposit_account("Card") == "36"
    assert m.deposit_account("venmo") == "35"  # default
    assert m.fee_account() == "62" and m.tips_account() == "63"
    assert m.location("shop-berkeley") == "2"
    assert m.customer_matching.rules[0] is CustomerMatchRule.EXTERNAL_REF


def test_missing_tax_code_names_the_key() -> None:
    cfg = parse_mapping(
        {"tenants": {"acme": {"platform": "qbo", "mapping": {"tax_codes": {"X": "1"}}}}}
    ).tenant("acme")
    with pytest.raises(ConfigurationError) as info:
        cfg.mapping.tax_code("CA-ALAMEDA")
    assert str(info.value) == (
        "qbo: tenant 'acme' has no tax code mapping for CRM code 'CA-ALAMEDA' (mapping.tax_codes)"
    )


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda m: m.income_account("fees"),
            "income account for line kind 'fees' (mapping.income_accounts)",
        ),
        (lambda m: m.item("labor"), "item for line kind 'labor' (mapping.items)"),
        (lambda m: m.deposit_account("cash"), "payment method 'cash' (mapping.deposit_accounts)"),
        (lambda m: m.fee_account(), "(mapping.processor_fee_account)"),
        (lambda m: m.tips_account(), "(mapping.tip_account)"),
        (lambda m: m.tax_code(None), "(mapping.exempt_tax_code)"),
    ],
)
def test_every_lookup_raises_configuration_error(call, fragment) -> None:
    cfg = parse_mapping({"tenants": {"t1": {"platform": "xero"}}}).tenant("t1")
    with pytest.raises(ConfigurationError) as info:
        call(cfg.mapping)
    assert "tenant 't1'" in str(info.value) and fragment in str(info.value)


def test_locations_optional_but_strict_once_used() -> None:
    bare = parse_mapping({"tenants": {"t": {"platform": "x"}}}).tenant("t")
    assert bare.mapping.location("anything") is None
    cfg = parse_mapping(
        {"tenants": {"t": {"platform": "x", "mapping": {"locations": {"a": "1"}}}}}
    ).tenant("t")
    with pytest.raises(ConfigurationError, match=r"'b' \(mapping\.locations\)"):
        cfg.mapping.location("b")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (
            {"tenants": {"t": {"platform": "x", "mapping": {"income_acounts": {}}}}},
            "income_acounts",
        ),
        (
            {"tenants": {"t": {"platform": "x", "mapping": {"items": {"tyres": "1"}}}}},
            "items.tyres",
        ),
        ({"tenants": {"t": {"mapping": {}}}}, "tenants.t.platform"),
        ({"tenants": {"t": {"platform": "x", "tenant_id": "u"}}}, "declares tenant_id"),
        (
            {"tenants": {"t": {"platform": "x", "mapping": {"rounding": {"mode": "up"}}}}},
            "rounding.mode",
        ),
        (
            {
                "tenants": {
                    "t": {
                        "platform": "x",
                        "mapping": {"deposit_accounts": {"Cash": "1", "cash": "2"}},
                    }
                }
            },
            "twice",
        ),
    ],
)
def test_invalid_files_are_configuration_errors(doc, fragment) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_mapping(doc)
    assert fragment in str(info.value)


def test_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("tenants: [unclosed")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_mapping_file(path)


def test_unknown_tenant() -> None:
    with pytest.raises(ConfigurationError, match="'nope' is not configured"):
        parse_mapping({"tenants": {}}).tenant("nope")


def test_platform_settings_validation() -> None:
    class QboSettings(BaseModel):
        realm_id: str
        minor_version: int = 75

    cfg = load_mapping_file(EXAMPLE).tenant("acme")
    assert cfg.platform_settings(QboSettings).realm_id == "9130354919425367"
    broken = parse_mapping({"tenants": {"t": {"platform": "qbo", "settings": {}}}}).tenant("t")
    with pytest.raises(ConfigurationError, match=r"settings\.realm_id"):
        broken.platform_settings(QboSettings)


def test_rounding_modes_and_scopes() -> None:
    up = Rounding(mode=RoundingMode.HALF_UP)
    even = Rounding(mode=RoundingMode.HALF_EVEN)
    assert up.quantize(Decimal("0.125")) == Decimal("0.13")
    assert even.quantize(Decimal("0.125")) == Decimal("0.12")
    lines = [Decimal("0.004")] * 3
    assert Rounding(scope=RoundingScope.PER_LINE).total(lines) == Decimal("0.00")
    assert Rounding(scope=RoundingScope.PER_DOCUMENT).total(lines) == Decimal("0.01")
