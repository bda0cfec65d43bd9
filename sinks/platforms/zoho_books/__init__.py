"""Zoho Books sink: spec, pure mapping, error codes and write flows.

See :mod:`sinks.platforms.zoho_books.platform` for the idempotency strategy (upsert by
a unique custom field; lookup before create for refunds and credit applications) and
the delivery guarantee, and ``docs/platforms/zoho-books.md`` for what is supported.
"""

from sinks.platforms.zoho_books.platform import ZohoBooks
from sinks.platforms.zoho_books.spec import SPEC, ZohoBooksSettings

__all__ = ["SPEC", "ZohoBooks", "ZohoBooksSettings"]
