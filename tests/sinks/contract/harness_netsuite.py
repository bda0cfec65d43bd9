"""NetSuite's plug-in for the contract suite (REST record API, the default transport),
and its request validator.

To join the suite, ``harness.HARNESSES`` needs the entry ``NETSUITE.platform: NETSUITE``
(and ``sinks.platforms.registry.BUILTIN_MODULES`` the module
``sinks.platforms.netsuite``); until then ``tests/sinks/platforms/test_netsuite_corpus.py``
runs the corpus with it.

NetSuite publishes no static REST spec (each account serves its own OpenAPI from the
metadata catalog), so the validator checks each REST body the only way the stored
specs allow: it is converted to the SOAP record of the same type — whose builder
refuses any field missing from the XSD sequence — and validated against Oracle's
2023.2 XSDs with xmlschema.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.platforms.netsuite.soap import record_element
from sinks.sandbox.core import ManualClock, Sandbox
from sinks.sandbox.netsuite import NetSuiteSandbox
from tests.sinks.contract.harness import PlatformHarness

SPECS = Path("/work/shared/specs/netsuite-soap")
XSDS = ("platform.messages.xsd", "transactions.sales.xsd", "transactions.customers.xsd",
        "lists.relationships.xsd")
MESSAGES = "urn:messages_2023_2.platform.webservices.netsuite.com"
RECORDS = {"customer": "customer", "invoice": "invoice", "customerPayment": "customerPayment",
           "creditMemo": "creditMemo", "customerRefund": "customerRefund"}

MAPPING: dict[str, Any] = {
    "items": {"labor": "10", "parts": "11", "fees": "12", "discounts": "13"},
    "tax_codes": {"TX-AUSTIN": "5", "TX-STATE": "6"},
    "exempt_tax_code": "-7",
    "deposit_accounts": {"card": "1", "cash": "2", "check": "2", "default": "3"},
}


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema([str(SPECS / "xsd" / name) for name in XSDS])


def validate(request: PlatformRequest) -> None:
    """Raise if a write's body uses a field or shape the XSDs do not allow."""
    if request.method not in ("PUT", "PATCH") or request.json is None:
        return
    record = request.path.split("/")[5]
    wrapper = etree.Element(f"{{{MESSAGES}}}upsert")
    wrapper.append(record_element(RECORDS[record], request.json, "ls-x", "2023_2"))
    _schema().validate(etree.tostring(wrapper).decode())


def _netsuite_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, NetSuiteSandbox)
    account_id = f"{7000000 + sum(tenant_id.encode())}_SB1"
    with sandbox.lock:
        account = sandbox.account(account_id)
        account.tax_codes["6"] = Decimal("0.0625")
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "netsuite",
        "settings": {"account_id": account_id, "currencies": {"USD": "1", "EUR": "4"}},
        "mapping": MAPPING,
    })


NETSUITE = PlatformHarness(
    platform="netsuite",
    make_sandbox=lambda: NetSuiteSandbox(clock=ManualClock()),
    setup_tenant=_netsuite_tenant,
    sandbox_tenant=lambda t: str(t.settings["account_id"]).lower(),
    prefix=lambda t: "/" + str(t.settings["account_id"]).lower(),
    extra_headers=lambda t: {},
    validator=(lambda: validate) if SPECS.exists() else None,
    spec_files=tuple(str(SPECS / "xsd" / name) for name in XSDS),
    # Platform gaps (see docs/platforms/netsuite.md), as strict xfails.
    sandbox_gaps={
        "tip_and_fee": "a NetSuite customer payment has no tip line (UnsupportedEventError)",
        "over_payment": "NetSuite refuses to apply more than an invoice's amount due "
                        "(INVALID_TRANS_AMT); the sink does not cap allocations yet",
        "refund_payment": "a customer refund spends only a payment's unapplied amount "
                          "(INVALID_REFUND_AMT); un-applying first is not built",
        "void_after_payment": "REST has no void; deleting an applied invoice is refused "
                              "(CANT_DELETE_TRANS)",
    },
    replay_gaps={
        "void_unpaid": "NetSuite frees a deleted record's external id, so replaying "
                       "'invoice created' after the void re-creates the invoice; in "
                       "production the runner's sync log never replays an event it "
                       "committed",
    },
)
