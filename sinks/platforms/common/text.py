"""Names and numbers that must fit a platform's field limits, with a record of every
change, and the marker that ties a platform document back to its CRM document.

Truncating silently is how two long invoice numbers become one; so :class:`Notes`
records each cut (the flow returns them in ``WriteResult.raw["notes"]``) and
:func:`fit_unique` keeps a truncated *identifier* unique by ending it with a short
hash of the full value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Notes", "fit", "fit_unique", "marker"]


def fit(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters."""
    return value if len(value) <= limit else value[:limit]


def fit_unique(value: str, limit: int) -> str:
    """``value`` if it fits, else a prefix plus ``~`` and 8 hex digits of its SHA-1, so
    different long values stay different (``INV-2025-000…~1a2b3c4d``)."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha1(value.encode()).hexdigest()[:8]
    return value[: max(0, limit - 9)] + "~" + digest


def marker(kind: str, crm_id: str) -> str:
    """The text a document carries to say which CRM document it is (``crm:invoice:inv1``);
    flows check it before trusting a document found by number."""
    return f"crm:{kind}:{crm_id}"


@dataclass
class Notes:
    """What a mapping had to change to fit the platform, in words a bookkeeper reads."""

    items: list[str] = field(default_factory=list)

    def fit(self, field_name: str, value: str, limit: int, *, unique: bool = False) -> str:
        fitted = fit_unique(value, limit) if unique else fit(value, limit)
        if fitted != value:
            self.items.append(f"{field_name} truncated to {limit} characters: {value!r} → "
                              f"{fitted!r}")
        return fitted

    def add(self, note: str) -> None:
        self.items.append(note)
