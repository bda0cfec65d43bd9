"""Odoo's plug-in for the contract suite, validated against the Odoo field table.

Odoo publishes no machine-readable API description (there is nothing for it in
``shared/specs``), so requests are validated with
:func:`sinks.platforms.odoo.fields.validate_request`: the field table derived from
``shared/research/platforms-B.md`` §7 (itself from odoo/odoo
``addons/account/models/account_move.py``). That research file is the harness's
``spec_files`` entry, so the suite skips when it is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sinks.core.mapping import TenantConfig
from sinks.platforms.odoo.fields import validate_request
from sinks.sandbox.core import ManualClock, Sandbox
from sinks.sandbox.odoo import BANK_JOURNAL, CASH_JOURNAL, OdooSandbox
from tests.sinks.contract.harness import PlatformHarness

RESEARCH = Path("/work/shared/research/platforms-B.md")

#: What an Odoo database set up for ledgerstream holds (see the sandbox's seeds).
MAPPING: dict[str, Any] = {
    "income_accounts": {"labor": "400", "parts": "401", "fees": "402", "discounts": "409"},
    "tax_codes": {"TX-AUSTIN": "1", "TX-STATE": "2"},
    "exempt_tax_code": "3",
    "deposit_accounts": {"cash": str(CASH_JOURNAL), "default": str(BANK_JOURNAL)},
}


def odoo_tenant(sandbox: Sandbox, tenant_id: str) -> TenantConfig:
    assert isinstance(sandbox, OdooSandbox)
    database = f"shop-{tenant_id}"
    sandbox.database(database)
    return TenantConfig.model_validate({
        "tenant_id": tenant_id, "platform": "odoo",
        "settings": {"base_url": "https://shop.odoo.com", "database": database,
                     "currency_ids": {"EUR": 2}},
        "mapping": MAPPING,
    })


ODOO = PlatformHarness(
    platform="odoo",
    make_sandbox=lambda: OdooSandbox(clock=ManualClock()),
    setup_tenant=odoo_tenant,
    sandbox_tenant=lambda t: str(t.settings["database"]),
    prefix=lambda t: "",
    extra_headers=lambda t: {},
    validator=(lambda: validate_request) if RESEARCH.exists() else None,
    spec_files=(str(RESEARCH),),
)
