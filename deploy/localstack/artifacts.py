"""Resolve the JVM parts of the stack from Maven Central with the project's pom.

Kafka's broker classpath is ``kafka_2.13`` plus its runtime dependencies and a
log4j2 backend (copied by ``dependency:copy-dependencies``). Apicurio Registry
ships a runnable Quarkus layout as the ``tar.gz:all`` classifier. A stamp file
holding the pom's hash makes the resolution happen once per pom change.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from deploy.localstack.errors import StackError
from deploy.localstack.settings import StackSettings

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@dataclass(frozen=True)
class Artifacts:
    kafka_libs: Path
    registry_dir: Path
    registry_jar: Path


def pom_property(pom: Path, name: str) -> str:
    root = ET.parse(pom).getroot()
    node = root.find(f"m:properties/m:{name}", _POM_NS)
    if node is None or not node.text:
        raise StackError(f"{pom} has no <{name}> property")
    return node.text.strip()


def resolve(settings: StackSettings, *, quiet: bool = True) -> Artifacts:
    """Make sure Kafka's jars and Apicurio's runnable layout are in the cache."""
    pom = settings.pom
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    base = settings.cache_dir / f"jvm-{digest}"
    kafka_libs = base / "kafka-libs"
    registry_dir = base / "apicurio"
    stamp = base / ".resolved"
    if not stamp.exists():
        _require(settings.mvn, "Maven (apt-get install maven)")
        base.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(kafka_libs, ignore_errors=True)
        _mvn(
            settings,
            quiet,
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={kafka_libs}",
        )
        version = pom_property(pom, "apicurio.version")
        download = base / "download"
        _mvn(
            settings,
            quiet,
            "dependency:copy",
            f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
            f"-DoutputDirectory={download}",
        )
        shutil.rmtree(registry_dir, ignore_errors=True)
        registry_dir.mkdir(parents=True)
        archive = download / f"apicurio-registry-app-{version}-all.tar.gz"
        with tarfile.open(archive) as tar:
            tar.extractall(registry_dir, filter="data")
        archive.unlink()
        stamp.write_text(digest)
    return Artifacts(kafka_libs, registry_dir, _registry_jar(registry_dir))


def _registry_jar(registry_dir: Path) -> Path:
    # 3.0.x ships "<name>-runner.jar" beside lib/; 3.1+ ships the fast-jar "quarkus-run.jar".
    for candidate in [registry_dir / "quarkus-run.jar", *registry_dir.glob("*-runner.jar")]:
        if candidate.exists():
            return candidate
    raise StackError(f"no runnable Apicurio jar found in {registry_dir}")


def _mvn(settings: StackSettings, quiet: bool, *args: str) -> None:
    argv = [settings.mvn, "-B", "-f", str(settings.pom), *(["-q"] if quiet else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"Maven failed ({' '.join(argv)}):\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )


def _require(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        raise StackError(f"'{tool}' is not on PATH; install {hint}")


def java_major_version(java: str) -> int:
    _require(java, "a Java 17+ runtime (apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    for token in out.split():
        token = token.strip('"')
        if token[:2].isdigit():
            major = token.split(".")[0]
            return int(major)
    raise StackError(f"cannot read the Java version from: {out!r}")
