"""Sage Intacct's plug-in for the contract suite, and its XML API 3.0 validator.

Validation uses the vendor's ``api.xsd`` with xmlschema's ``XMLSchema11`` (the 1.0
validator reports a unique-particle violation in it); the schema is loaded once per
process (~1.5 s). Requests are validated as the platform builds them, i.e. with the
empty ``control/password`` and ``authentication/sessionid`` placeholders that the
transport fills in.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sinks.core.contract import PlatformRequest
from sinks.core.mapping import TenantConfig
from sinks.sandbox.core import ManualClock, Sandbox
from sinks.sandbox.sage_intacct import IntacctSandbox
from tests.sinks.contract.harness import PlatformHarness

SPECS = Path("/work/shared/specs/sage-intacct")
XSD = SPECS / "api.xsd"

#: GL accounts and bank accounts of an Intacct company set up for ledgerstream.
MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "4000", "parts": "4010", "fees": "4020", "discounts": "4090"},
    "tax_codes": {"TX-AUSTIN": "2310", "TX-STATE": "2320"},
    "exempt_tax_code": "EXEMPT",
    "deposit_accounts": {"card": "BOA-CARD", "default": "BOA-OPER"},
}


@functools.cache
def intacct_schema() -> Any:
    import xmlschema

    return xmlschema.XMLSchema11(str(XSD))


def validate(request: PlatformRequest) -> None:
    """Raise ``xmlschema.XMLSchemaValidationError`` unless ``request`` is valid."""
    assert request.content is not None, "an XML API request carries an XML body"
    intacct_schema().validate(request.content.decode("utf-8"))


def _tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, IntacctSandbox)
    company = f"ACME-{tenant_id}".upper()
    sandbox.company(company)
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "sage-intacct",
        "settings": {"sender_id": sandbox.sender_id, "company_id": company},
        "mapping": MAPPING,
    })


SAGE_INTACCT = PlatformHarness(
    platform="sage-intacct",
    make_sandbox=lambda: IntacctSandbox(clock=ManualClock()),
    setup_tenant=_tenant,
    sandbox_tenant=lambda t: str(t.settings["company_id"]),
    prefix=lambda t: "",
    extra_headers=lambda t: {},
    validator=(lambda: validate) if XSD.exists() else None,
    spec_files=(str(XSD),),
    sandbox_gaps={
        "refund_payment": "the XML API 3.0 has no AR refund function: the refund is an "
                          "UnsupportedEventError (dead letter with the reason)",
        "credit_note_refunded": "a cash refund of a credit note needs an AR refund, which "
                                "the XML API 3.0 lacks (UnsupportedEventError)",
        "void_after_payment": "Intacct refuses to reverse an invoice with payments applied "
                              "(BL03002147): an UnsupportedEventError; the flow does not "
                              "reverse and re-enter payments",
    },
)
