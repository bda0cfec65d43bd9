"""Which topic and key an event goes to. Customers go to the compacted crm.customers,
tax rates to crm.tax-rates, everything else to crm.financial-events, keyed
``tenant:customer`` so one customer's documents stay in order on one partition."""

from __future__ import annotations

from schemas.models import AggregateType, FinancialEvent
from schemas.topics import CRM_CUSTOMERS, CRM_FINANCIAL_EVENTS, CRM_TAX_RATES, Topics, tax_rate_key
from schemas.topics import message_key as _message_key

BASE_TOPIC: dict[AggregateType, str] = {
    AggregateType.CUSTOMER: CRM_CUSTOMERS,
    AggregateType.TAX_RATE: CRM_TAX_RATES,
    AggregateType.INVOICE: CRM_FINANCIAL_EVENTS,
    AggregateType.PAYMENT: CRM_FINANCIAL_EVENTS,
    AggregateType.CREDIT_NOTE: CRM_FINANCIAL_EVENTS,
}


def topic_for(aggregate_type: AggregateType, topics: Topics) -> str:
    return topics.name(BASE_TOPIC[aggregate_type])


def key_for(tenant_id: str, aggregate_type: AggregateType, aggregate_id: str,
            customer_id: str | None) -> str:
    """``tenant:code`` for tax rates, else ``tenant:customer``."""
    if aggregate_type is AggregateType.TAX_RATE:
        return tax_rate_key(tenant_id, aggregate_id)
    if aggregate_type is AggregateType.CUSTOMER:
        return _message_key(tenant_id, aggregate_id)
    if not customer_id:
        raise ValueError(
            f"{aggregate_type.value} {aggregate_id}: no customer id to key the event by"
        )
    return _message_key(tenant_id, customer_id)


def event_key(event: FinancialEvent, customer_id: str | None = None) -> str:
    """The key of ``event``; ``customer_id`` is needed only for deletes of documents, whose
    envelope has no payload to read it from."""
    return key_for(event.tenant_id, event.aggregate_type, event.aggregate_id,
                   event.customer_id or customer_id)
