"""get_platform imports only what it needs; unknown names still list every platform."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sinks.core.errors import ConfigurationError
from sinks.platforms.registry import BUILTIN_MODULES, get_platform


def test_one_platform_imports_only_the_modules_up_to_its_own() -> None:
    code = ("import sys; from sinks.platforms.registry import get_platform; "
            "p = get_platform('quickbooks-online'); "
            f"print(p.spec.name, sorted(m for m in sys.modules if m in {BUILTIN_MODULES!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(" ", 1)
    assert out[0] == "quickbooks-online"
    assert "sinks.platforms.xero" not in out[1] and "sinks.platforms.quickbooks" in out[1]


def test_an_unknown_platform_names_every_builtin_one() -> None:
    with pytest.raises(ConfigurationError) as err:
        get_platform("no-such-platform")
    for name in ("xero", "quickbooks-online", "netsuite", "odoo"):
        assert name in str(err.value)
