"""Sage Intacct sink (XML API 3.0): spec, pure mapping, error codes and write flows.

See :mod:`sinks.platforms.sage_intacct.platform` for the idempotency strategy (native
``controlid`` with ``uniqueid=true``, plus lookup by reference with ``readByQuery``)
and the delivery guarantee, and ``docs/platforms/sage-intacct.md`` for what is
supported.
"""

from sinks.platforms.sage_intacct.platform import SageIntacct
from sinks.platforms.sage_intacct.spec import SPEC, SageIntacctSettings

__all__ = ["SPEC", "SageIntacct", "SageIntacctSettings"]
