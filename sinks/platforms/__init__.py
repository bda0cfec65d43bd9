"""Platform modules: one package per accounting platform, each a spec, pure mapping
functions, a write flow and its vendor error codes (ARCHITECTURE §3).

Look platforms up through :mod:`sinks.platforms.registry`::

    from sinks.platforms import get_platform
    platform = get_platform("xero")
"""

from sinks.platforms.registry import all_platforms, get_platform, register, support_table

__all__ = ["all_platforms", "get_platform", "register", "support_table"]
