"""The outbox library: write a CRM change and its event in one transaction.

Use it from CRM code (or the simulator); for CRMs whose code cannot change,
``deploy/sql/crm_triggers.sql`` writes the same outbox rows from triggers.
"""

from producers.outbox.avro import (
    AvroEncoder,
    InvalidEventError,
    avro_encoder_of,
    use_avro_encoder,
)
from producers.outbox.writer import (
    NotFoundError,
    delete_aggregate,
    delete_payment,
    ensure_tenant,
    insert_outbox_row,
    issue_credit_note,
    record_payment,
    save_customer,
    save_invoice,
    save_tax_rate,
    set_invoice_status,
)

__all__ = [
    "AvroEncoder",
    "InvalidEventError",
    "NotFoundError",
    "avro_encoder_of",
    "delete_aggregate",
    "delete_payment",
    "ensure_tenant",
    "insert_outbox_row",
    "issue_credit_note",
    "record_payment",
    "save_customer",
    "save_invoice",
    "save_tax_rate",
    "set_invoice_status",
    "use_avro_encoder",
]
