"""Producers: everything that turns CRM changes into ``crm.*`` events.

- :mod:`producers.outbox` writes a business change and its outbox row in one transaction;
- :mod:`producers.relay` moves outbox rows to Kafka (``run_relay``);
- :mod:`producers.poller` polls CRMs without an outbox (``run_poller``);
- :mod:`producers.webhooks` receives HMAC-signed webhooks (``run_webhooks``);
- :mod:`producers.simulator` generates a realistic repair-shop day through the outbox.

All three runtimes emit the same :class:`schemas.models.FinancialEvent` envelopes, built by
:mod:`producers.events`, on the topics :mod:`producers.routing` picks.
"""
