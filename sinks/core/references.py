"""Which external ids a ledger entry may need, and under which map keys they are stored.

The external-id map is keyed ``"<kind>:<crm id>"`` (kinds: customer, invoice,
payment, credit_note). A platform flow finds the platform id of the entry's customer,
of the invoices a payment pays, of the credit note it updates, in
``SinkContext.external_ids`` under these keys.
"""

from __future__ import annotations

from typing import Any

KIND_BY_AGGREGATE = {
    "CUSTOMER": "customer",
    "INVOICE": "invoice",
    "PAYMENT": "payment",
    "CREDIT_NOTE": "credit_note",
    "TAX_RATE": "tax_rate",
}


def map_key(kind: str, crm_id: str) -> str:
    return f"{kind}:{crm_id}"


def own_key(entry: Any) -> tuple[str, str]:
    """(kind, crm id) of the document the entry itself is about."""
    event = entry.event
    return KIND_BY_AGGREGATE[str(event.aggregate_type)], str(event.aggregate_id)


def referenced_keys(entry: Any) -> list[tuple[str, str]]:
    """Every (kind, crm id) whose platform id the flow may need."""
    keys = [own_key(entry)]
    payload = entry.event.payload
    customer_id = getattr(payload, "customer_id", None)
    if customer_id:
        keys.append(("customer", str(customer_id)))
    invoice_id = getattr(payload, "invoice_id", None)
    if invoice_id:
        keys.append(("invoice", str(invoice_id)))
    for allocation in getattr(payload, "allocations", ()) or ():
        keys.append(("invoice", str(allocation.invoice_id)))
    refund_of = getattr(payload, "refund_of", None)
    if refund_of:
        keys.append(("payment", str(refund_of)))
    return list(dict.fromkeys(keys))
