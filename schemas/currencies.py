"""ISO 4217 currency codes and their minor units.

Kept as data here (not a dependency) because the list changes rarely and the models
must reject a typo such as ``USS`` before it reaches a ledger. Precious metals,
fund codes without a ledger use (XAU, XAG, XPT, XPD, XBA..XBD) and the test/no-currency
codes (XTS, XXX) are deliberately absent: no repair shop invoices in them.
Source: ISO 4217 list one (SIX Financial), including codes introduced up to 2025
(XCG, ZWG, SLE, VED) and the ones they replace, which are still seen in old data.
"""

from __future__ import annotations

from types import MappingProxyType


def _codes(text: str) -> list[str]:
    return text.split()


# code -> number of minor units (decimal places)
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        _codes(
            "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
            "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
            "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR "
            "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP "
            "MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
            "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL "
            "THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG XDR XSU "
            "XUA YER ZAR ZMW ZWG ZWL"
        ),
        2,
    ),
    **dict.fromkeys(
        _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"), 0
    ),
    **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
    **dict.fromkeys(_codes("CLF UYW"), 4),
}

MINOR_UNITS = MappingProxyType(_MINOR_UNITS)
"""Minor units per code; sinks use it to round to what a platform accepts."""

CURRENCIES: frozenset[str] = frozenset(_MINOR_UNITS)


def is_currency(code: str) -> bool:
    """True for a real ISO 4217 code (upper case, as the schema requires)."""
    return code in CURRENCIES


def minor_units(code: str) -> int:
    """Decimal places of ``code``; KeyError for an unknown code."""
    return _MINOR_UNITS[code]
