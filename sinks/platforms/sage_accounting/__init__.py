"""Sage Business Cloud Accounting v3.1: spec, mapping and flows (see :mod:`.platform`)."""

from sinks.platforms.sage_accounting.platform import NAME, SageAccounting, SageSettings

__all__ = ["NAME", "SageAccounting", "SageSettings"]
