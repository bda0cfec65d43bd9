"""Reckon One (API v2) sink: spec, pure mapping, error shapes and write flows.

See :mod:`sinks.platforms.reckon_one.platform` for the idempotency strategy (lookup by
``reference`` before create; tombstones for hard deletes) and the delivery guarantee,
and ``docs/platforms/reckon-one.md`` for what is supported and what is not.
"""

from sinks.platforms.reckon_one.platform import ReckonOne
from sinks.platforms.reckon_one.spec import SPEC, ReckonOneSettings

__all__ = ["SPEC", "ReckonOne", "ReckonOneSettings"]
