"""The state one write flow carries: its entry, the tenant's settings and mapping, the
notes it records and the platform ids it learns on the way.

Platform flows subclass :class:`FlowRun` (adding their own ``request`` builder, which
is where platforms differ: QuickBooks' ``requestid``, Xero's ``Idempotency-Key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel

from sinks.core.contract import SinkContext
from sinks.core.errors import ConfigurationError
from sinks.core.mapping import TenantMapping
from sinks.platforms.common.text import Notes

S = TypeVar("S", bound=BaseModel)


@dataclass
class FlowRun(Generic[S]):
    entry: Any  # LedgerEntry; None for lookups outside a write
    context: SinkContext
    settings: S
    mapping: TenantMapping
    notes: Notes = field(default_factory=Notes)
    related: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    #: Set by subclasses: the platform's name and its tenant-settings model.
    platform: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]

    @classmethod
    def start(cls, entry: Any, context: SinkContext) -> Self:
        tenant = context.tenant
        if tenant is None:
            raise ConfigurationError(f"tenant {context.tenant_id!r} has no configuration",
                                     platform=cls.platform)
        settings = tenant.platform_settings(cls.settings_model)
        return cls(entry, context, settings, tenant.mapping)  # type: ignore[arg-type]

    def known(self, key: str) -> str | None:
        """A platform id learnt in this flow or already in the external-id map."""
        return self.related.get(key) or self.context.external_ids.get(key) or None
