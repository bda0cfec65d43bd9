"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked:
every ledgerstream service runs a real subcommand, and every referenced file exists."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from deploy.localstack.settings import PROJECT_ROOT
from ledgerstream.cli import main

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def ledgerstream_services(compose: dict) -> dict[str, dict]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("build", {}).get("dockerfile", "").startswith("deploy/")
    }


def test_every_component_service_runs_a_real_subcommand() -> None:
    services = ledgerstream_services(load())
    assert services, "compose defines no ledgerstream component"
    runner = CliRunner()
    for name, svc in services.items():
        argv = list(svc["command"])
        # --help on the subcommand parses its options: unknown subcommand or option fails.
        subcommand = argv[0]
        assert subcommand in main.commands, f"{name}: 'ledgerstream {subcommand}' does not exist"
        result = runner.invoke(main, [subcommand, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        options = [a.split("=")[0] for a in argv[1:] if a.startswith("--")]
        params = {opt for p in main.commands[subcommand].params for opt in p.opts}
        assert set(options) <= params, f"{name}: unknown options {set(options) - params}"


def test_every_referenced_file_exists() -> None:
    compose = load()
    missing = []
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            dockerfile = PROJECT_ROOT / build.get("context", ".") / build["dockerfile"]
            if not dockerfile.exists():
                missing.append(f"{name}: {dockerfile}")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not (PROJECT_ROOT / source).exists():
                missing.append(f"{name}: {source}")
    assert not missing


def test_dockerfile_copies_only_existing_paths() -> None:
    dockerfile = (PROJECT_ROOT / "deploy/docker/Dockerfile").read_text().splitlines()
    for line in dockerfile:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_cli_has_the_stack_commands() -> None:
    for command in ("up", "down", "status", "demo", "check"):
        assert command in main.commands
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "up" in result.output
