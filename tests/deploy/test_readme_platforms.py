"""The README's platform table is generated from the code; this keeps it in step."""

from __future__ import annotations

from deploy.localstack.settings import PROJECT_ROOT
from sinks.platforms.registry import all_platforms, render_readme


def test_readme_platform_table_matches_the_registered_platforms() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert render_readme(readme) == readme, (
        "README platform table is stale: run "
        "python -c \"import pathlib; from sinks.platforms.registry import render_readme; "
        "p = pathlib.Path('README.md'); p.write_text(render_readme(p.read_text()))\""
    )
    for platform in all_platforms(builtin_only=True):
        assert platform.spec.display_name in readme
