"""Odoo (17-19) sink: spec, field table, pure mapping, error classes and write flows.

See :mod:`sinks.platforms.odoo.platform` for the idempotency strategy (lookup by
reference before create: ``ref``/``memo``) and the delivery guarantee, and
``docs/platforms/odoo.md`` for what is supported. RPC envelopes (JSON-2, JSON-RPC,
XML-RPC ``execute_kw``) live in :mod:`sinks.transport.rpc`.
"""

from sinks.platforms.odoo.platform import Odoo
from sinks.platforms.odoo.spec import SPEC, OdooSettings

__all__ = ["SPEC", "Odoo", "OdooSettings"]
