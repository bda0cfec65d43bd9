"""The platform registry and the README support table generated from it."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from sinks.core.contract import Platform, PlatformSpec, WireProtocol
from sinks.core.errors import ConfigurationError
from sinks.platforms import registry
from sinks.platforms.quickbooks import QuickBooksOnline
from sinks.platforms.xero import Xero


def test_builtin_platforms_are_registered_by_name() -> None:
    assert isinstance(registry.get_platform("quickbooks-online"), QuickBooksOnline)
    assert isinstance(registry.get_platform("xero"), Xero)
    names = [p.spec.name for p in registry.all_platforms(builtin_only=True)]
    assert {"quickbooks-online", "xero"} <= set(names)
    assert names == sorted(names)


def test_unknown_platform_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown platform 'nope'"):
        registry.get_platform("nope")


def test_register_refuses_a_class_without_spec_and_a_taken_name() -> None:
    class NoSpec(Platform):
        def plan(self, entry: Any, context: Any) -> Any:
            raise NotImplementedError

    with pytest.raises(TypeError):
        registry.register(NoSpec)

    class Impostor(NoSpec):
        spec: ClassVar[PlatformSpec] = PlatformSpec(
            name="xero", display_name="Not Xero", protocol=WireProtocol.REST_JSON)

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)


def test_support_table_is_generated_from_specs() -> None:
    table = registry.support_table([registry.get_platform("quickbooks-online"),
                                    registry.get_platform("xero")])
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Platform | `--platform` |")
    assert lines[2] == ("| QuickBooks Online | `quickbooks-online` | rest-json | ✓ | — | ✓ | ✓ "
                        "| ✓ | 1 | 500/min, 10 concurrent |")
    assert lines[3] == ("| Xero | `xero` | rest-json | ✓ | ✓ | ✓ | ✓ | ✓ | 50 "
                        "| 60/min, 5000/day, 5 concurrent |")


def test_render_readme_replaces_only_the_marked_block() -> None:
    text = f"intro\n{registry.README_BEGIN}\nold table\n{registry.README_END}\noutro\n"
    rendered = registry.render_readme(text, [registry.get_platform("xero")])
    assert rendered.startswith("intro\n") and rendered.endswith(f"{registry.README_END}\noutro\n")
    assert "old table" not in rendered and "| Xero | `xero` |" in rendered
    assert registry.render_readme(rendered, [registry.get_platform("xero")]) == rendered
    with pytest.raises(ValueError, match="no"):
        registry.render_readme("no markers", [])
