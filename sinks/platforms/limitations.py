"""What each platform documents it cannot record, as dead-letter reasons to recognise.

A sink dead-letters a record the platform's API cannot express (a tip on a platform
whose payments have no income line, a refund where the API has no refund document...)
with an ``UnsupportedEventError`` naming the reason; docs/platforms/<name>.md lists
them. This table lets a run's report (the demo, reconciliation) tell those expected
dead letters from unexpected ones: an operator acts on the second kind, and knows the
first kind needs a manual entry in the platform.

Each platform maps a scenario name (the contract corpus's, ``tests/sinks/contract``)
to a pattern its dead letter's reason matches. A record that references a document
whose own event was dead-lettered then fails with "<kind> <id> was never synced"
(:data:`CASCADE`): a consequence, not a new problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["CASCADE", "DOCUMENTED_UNSUPPORTED", "cascade_key", "documented_limitation"]

DOCUMENTED_UNSUPPORTED: Mapping[str, Mapping[str, str]] = {
    "quickbooks-online": {
        "refund_without_payment": r"names no original payment",
        "refund_beyond_unapplied_credit": r"leaves the customer owing without an invoice",
    },
    "xero": {
        "edit_after_payment": r"Xero, which refuses edits of such invoices",
        "payment_edit": r"Xero payments cannot be edited",
        "refund_without_payment": r"names no original payment",
        "refund_beyond_overpayments": r"Xero holds only .* as overpayments",
    },
    "zoho-books": {},
    "business-central": {
        "tip_and_fee": r"tip needs a G/L journal line",
        "refund_payment": r"has no\s+Refund document type",
        "credit_note_refunded": r"refunded in cash; the BC API v2.0 .* no customer refund",
        "void_after_payment": r"BC cancels or corrects only unpaid posted invoices",
        "multi_currency": r"customerPayments entity has no currency field",
        "credit_note_several_invoices": r"a BC credit memo applies to one invoice",
    },
    "sage-intacct": {
        "void_after_payment": r"reverses only invoices without payments or credits",
        "refund_payment": r"XML API 3.0 has no AR refund function",
        "credit_note_refunded": r"refunded in cash needs an AR refund",
        "payment_edit": r"AR payments cannot be edited once posted",
        "credit_note_edit": r"AR adjustments cannot be edited once posted",
        "credit_note_several_invoices": r"AR adjustment applies to one invoice",
    },
    "reckon-one": {
        "refund_payment": r"has no customer-refund\s+endpoint",
        "credit_note_refunded": r"refunded in cash: Reckon One API v2 has",
        "multi_currency": r"a Reckon One book holds one currency",
    },
    "acumatica": {
        "tip_and_fee": r"an Acumatica AR payment has no income line",
        "refund_payment": r"Acumatica refunds apply to credit memos or payments",
        "void_released": r"cannot void a released AR invoice",
        "edit_released": r"released documents cannot be edited",
        "credit_note_edit": r"issued credit memos are not edited",
    },
    "odoo": {
        "partial_reconcile": r"Odoo would apply .* but the CRM allocates",
    },
    "netsuite": {
        "tip_and_fee": r"a NetSuite customer payment has no tip line",
        "refund_without_payment": r"names no original payment",
    },
    "sage-accounting": {
        "refund_payment": r"Sage allocates a customer refund only to credit notes",
        "void_after_payment": r"Sage voids only unallocated documents",
        "credit_note_edit": r"issued credit notes are not edited",
    },
}

#: The reason of a write that needs a document whose own event was dead-lettered.
CASCADE = re.compile(r"(?P<kind>\w+) (?P<id>\S+) was never synced")


def documented_limitation(platform: str, error_class: str, reason: str) -> str | None:
    """The scenario of ``platform``'s documented limitations this dead letter is, or
    None (an unexpected dead letter, or a platform without a table entry)."""
    if error_class != "UnsupportedEventError":
        return None
    for scenario, pattern in DOCUMENTED_UNSUPPORTED.get(platform, {}).items():
        if re.search(pattern, reason, re.IGNORECASE):
            return scenario
    return None


def cascade_key(error_class: str, reason: str) -> str | None:
    """``"<kind>:<crm id>"`` of the missing document a cascading dead letter names."""
    if error_class != "ReferenceMissingError":
        return None
    found = CASCADE.search(reason)
    return f"{found['kind']}:{found['id']}" if found else None
