"""The local stack's own behaviour: ports, probes, and the up/status/down lifecycle."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
import uuid

import pytest

from deploy.localstack import process
from deploy.localstack.errors import ServiceUnreachable
from deploy.localstack.ports import any_free_port, choose_port, is_free
from deploy.localstack.probes import check_database, check_kafka, check_registry
from deploy.localstack.settings import PROJECT_ROOT, StackSettings
from deploy.localstack.stack import LocalStack


def test_a_taken_preferred_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        assert not is_free(taken)
        chosen = choose_port(taken)
        assert chosen != taken and is_free(chosen)
    free = any_free_port()
    assert choose_port(free) == free
    assert choose_port(free, taken={free}) != free


@pytest.mark.parametrize(
    ("probe", "target", "component"),
    [
        (check_kafka, "127.0.0.1:{port}", "Kafka"),
        (check_registry, "http://127.0.0.1:{port}/apis/ccompat/v7", "Schema registry"),
        (check_database, "postgresql://u:secret@127.0.0.1:{port}/db", "PostgreSQL"),
    ],
)
def test_unreachable_endpoints_fail_fast_with_the_endpoint_named(probe, target, component) -> None:
    port = any_free_port()  # nothing listens there
    endpoint = target.format(port=port)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as info:
        probe(endpoint, 3.0)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"{component} probe took {elapsed:.1f}s"
    message = str(info.value)
    assert component in message and str(port) in message
    assert "secret" not in message  # a DSN password never reaches an error text


def test_a_silent_listener_is_reported_within_the_bound_not_a_hang() -> None:
    """A port that accepts but never answers (a wedged service) must not hang the probe."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServiceUnreachable):
            check_registry(f"http://127.0.0.1:{port}", 2.0)
        with pytest.raises(ServiceUnreachable):
            check_kafka(f"127.0.0.1:{port}", 2.0)
        assert time.monotonic() - started < 15


def test_wait_until_reports_a_process_that_dies(tmp_path) -> None:
    log = tmp_path / "x.log"
    pid = process.spawn(
        ["sh", "-c", "echo boom; exit 3"], log_file=log, pid_file=tmp_path / "x.pid"
    )
    with pytest.raises(Exception, match="exited during start-up") as info:
        process.wait_until(
            lambda: False,
            timeout_s=10,
            what="x",
            alive=lambda: process.is_alive(pid) and _not_zombie(pid),
            log_file=log,
        )
    assert "boom" in str(info.value)


def _not_zombie(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == 0


@pytest.mark.integration
@pytest.mark.skipif(not (shutil.which("java") and shutil.which("mvn")), reason="needs Java+Maven")
def test_up_is_idempotent_and_recovers_a_killed_broker() -> None:
    state = PROJECT_ROOT / ".ledgerstream" / f"lifecycle-{uuid.uuid4().hex[:8]}"
    # Make the preferred Kafka port busy: the stack must pick another one.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    settings = StackSettings(
        state_dir=state,
        kafka_port=blocker.getsockname()[1],
        controller_port=0,
        registry_port=0,
        postgres_port=0,
    )
    stack = LocalStack(settings)
    try:
        first = stack.up()
        assert all(s.healthy for s in first.services)
        assert first.endpoints.kafka_bootstrap != f"127.0.0.1:{blocker.getsockname()[1]}"

        second = stack.up()
        assert [s.started_in_s for s in second.services] == [None, None, None]
        assert second.endpoints == first.endpoints

        kafka_pid = process.read_pid(state / "kafka" / "kafka.pid")
        os.kill(kafka_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.is_alive(kafka_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        statuses = {s.name: s for s in stack.status()}
        assert not statuses["kafka"].healthy

        third = stack.up()
        restarted = {s.name for s in third.services if s.started_in_s is not None}
        assert "kafka" in restarted and "postgres" not in restarted
        assert third.endpoints == first.endpoints
        check_kafka(third.endpoints.kafka_bootstrap, 10)
    finally:
        blocker.close()
        stack.down()
        assert not any(s.running for s in stack.status())
        shutil.rmtree(state, ignore_errors=True)
