"""The sink runtime against the real Kafka, schema registry and PostgreSQL.

Proves the bookkeeping rules of ARCHITECTURE §2 with a controllable platform: every
entry written once, replays harmless, dead letters with reasons, a revoked tenant
paused while the others continue, retryable failures rewound, zombies fenced.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import examples
from schemas.models import DeadLetter
from schemas.serde import (
    dead_letter_serializer,
    ledger_entry_deserializer,
    ledger_entry_serializer,
    registry_client,
)
from sinks.core.decoding import ledger_entry_decoder
from sinks.core.metrics import SinkRuntimeMetrics
from sinks.core.runner import SinkRunner, dlq_writer
from sinks.core.store import OffsetClaim, OffsetFencedError, SinkStore
from sinks.transport.http import HttpExecutor
from sinks.transport.retry import RetryPolicy
from tests.sinks.runtime.fake_platform import EchoApi, EchoPlatform

pytestmark = pytest.mark.integration

from prometheus_client import CollectorRegistry  # noqa: E402

TENANTS = ("t1", "t2", "t3")


def entries_for(tenant: str, n: int) -> list[Any]:
    out = []
    for i in range(n):
        event = examples.sample_invoice_event(
            tenant=tenant, invoice_id=f"{tenant}-inv-{i}", customer_id=f"c{i % 4}"
        )
        out.append(examples.sample_ledger_entry(event))
    return out


@pytest.fixture
def env(kafka_bootstrap, schema_registry_url, fresh_database, unique_topic):
    topic = unique_topic("ledger.entries")
    dlq = unique_topic("ledgerstream.sink.echo.dlq")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for name, parts in ((topic, 3), (dlq, 1)):
        admin.create_topics([NewTopic(name, parts, 1)])[name].result(30)
    registry = registry_client(schema_registry_url)
    return {"bootstrap": kafka_bootstrap, "registry": registry, "dsn": fresh_database,
            "topic": topic, "dlq": dlq, "group": f"ledgerstream.sink.echo.{uuid.uuid4().hex[:6]}"}


def produce(env: dict, entries: list[Any], raw: list[bytes] = ()) -> None:
    serialize = ledger_entry_serializer(env["registry"])
    producer = Producer({"bootstrap.servers": env["bootstrap"], "enable.idempotence": True})
    for entry in entries:
        key = f"{entry.event.tenant_id}:{entry.event.payload.customer_id}"
        value = serialize(entry, SerializationContext(env["topic"], MessageField.VALUE))
        producer.produce(env["topic"], key=key.encode(), value=value)
    for value in raw:
        producer.produce(env["topic"], key=b"t1:c0", value=value)
    assert producer.flush(30) == 0


def make_runner(env: dict, api: EchoApi, tenants=TENANTS, **kw: Any) -> SinkRunner:
    store = SinkStore(env["dsn"], "echo", env["group"])
    store.ensure_schema()
    dlq_producer = Producer({"bootstrap.servers": env["bootstrap"], "enable.idempotence": True})
    serialize = dead_letter_serializer(env["registry"])
    write, flush = dlq_writer(
        dlq_producer, env["dlq"],
        lambda letter, topic: serialize(letter, SerializationContext(topic, MessageField.VALUE)),
    )

    def transport_for(tenant: str) -> HttpExecutor:
        client = httpx.Client(transport=httpx.MockTransport(api.handler(tenant)),
                              base_url="http://echo.test")
        return HttpExecutor(platform="echo", tenant_id=tenant, client=client,
                            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02,
                                              max_elapsed=1.0))

    return SinkRunner(
        platform=EchoPlatform(), topic=env["topic"],
        consumer_conf={"bootstrap.servers": env["bootstrap"], "group.id": env["group"]},
        store=store, tenants={t: object() for t in tenants}, transport_for=transport_for,
        decode=ledger_entry_decoder(ledger_entry_deserializer(env["registry"])),
        dead_letter=write, flush_dead_letters=flush, batch_size=50, retry_backoff_s=0.1,
        metrics=SinkRuntimeMetrics.create(CollectorRegistry()), **kw,
    )


def read_dlq(env: dict) -> list[DeadLetter]:
    from schemas.serde import avro_deserializer

    deserialize = avro_deserializer(DeadLetter, env["registry"])
    consumer = Consumer({"bootstrap.servers": env["bootstrap"], "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([env["dlq"]])
    letters = []
    for _ in range(10):
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            letters.append(deserialize(msg.value(),
                                       SerializationContext(env["dlq"], MessageField.VALUE)))
        elif msg is None and letters:
            break
    consumer.close()
    return letters


def sync_log(env: dict) -> dict[str, int]:
    with psycopg.connect(env["dsn"]) as conn:
        rows = conn.execute("SELECT status, count(*) FROM sink_sync_log GROUP BY 1").fetchall()
    return dict(rows)


def test_every_entry_is_written_once_and_a_replay_writes_nothing(env) -> None:
    entries = [e for t in TENANTS for e in entries_for(t, 20)]
    produce(env, entries)
    api = EchoApi()
    api.fail_next = 2        # transient 503s, retried by the transport
    api.drop_next = 1        # a write whose response is lost: retried with the same key
    runner = make_runner(env, api)
    runner.run(max_idle_s=3)
    assert len(api.documents) == len(entries)
    assert max(api.event_ids().values()) == 1
    assert sync_log(env) == {"applied": len(entries)}

    # Replay from the beginning (e.g. `ledgerstream replay`): nothing new reaches the API.
    with psycopg.connect(env["dsn"]) as conn:
        conn.execute("DELETE FROM sink_offsets")
    calls_before = sum(api.calls.values())
    make_runner(env, api).run(max_idle_s=3)
    assert len(api.documents) == len(entries)
    assert sum(api.calls.values()) == calls_before


def test_customers_created_once_and_reused_from_the_map(env) -> None:
    entries = entries_for("t1", 12)  # 4 distinct customers
    produce(env, entries)
    api = EchoApi()
    make_runner(env, api).run(max_idle_s=3)
    assert len(api.customers) == 4
    with psycopg.connect(env["dsn"]) as conn:
        kinds = dict(conn.execute(
            "SELECT kind, count(*) FROM sink_external_ids GROUP BY 1").fetchall())
    assert kinds == {"customer": 4, "invoice": 12}


def test_bad_records_are_dead_lettered_with_reasons_and_do_not_block(env) -> None:
    entries = entries_for("t1", 5)
    api = EchoApi(reject_crm_ids={"t1-inv-2"})
    produce(env, entries, raw=[b"not avro at all", b"\x00\x00\x00\x99\x99garbage"])
    make_runner(env, api).run(max_idle_s=3)
    assert len(api.documents) == 4
    letters = read_dlq(env)
    reasons = sorted(letter.reason for letter in letters)
    assert len(letters) == 3
    assert any("rejected t1-inv-2" in r for r in reasons)
    assert sum("cannot decode" in r for r in reasons) == 2
    assert sync_log(env) == {"applied": 4, "dead_lettered": 3}


def test_revoked_tenant_is_paused_and_parked_while_others_continue(env) -> None:
    entries = [e for t in TENANTS for e in entries_for(t, 6)]
    produce(env, entries)
    api = EchoApi(revoked_tenants={"t2"})
    runner = make_runner(env, api)
    runner.run(max_idle_s=3)
    tenants_written = {doc["tenant"] for doc in api.documents.values()}
    assert tenants_written == {"t1", "t3"} and len(api.documents) == 12
    store = SinkStore(env["dsn"], "echo", env["group"])
    assert "t2" in store.paused_tenants()
    assert len(store.parked("t2")) == 6

    # The grant is fixed; resuming replays the parked records in order.
    api.revoked_tenants.clear()
    resumed = make_runner(env, api)
    assert resumed.resume_tenant("t2") == 6
    assert len(api.documents) == 18 and max(api.event_ids().values()) == 1
    assert store.parked("t2") == [] and "t2" not in store.paused_tenants()


def test_a_running_sink_keeps_parking_until_a_resume_drained_the_tenant(env) -> None:
    """``ledgerstream resume`` runs in another process than the live sink: the sink must
    notice the un-pause, and must not write the tenant's new records before the parked
    ones are replayed (that would reorder a customer's documents)."""
    produce(env, entries_for("t2", 4))
    api = EchoApi(revoked_tenants={"t2"})
    make_runner(env, api).run(max_idle_s=3)
    store = SinkStore(env["dsn"], "echo", env["group"])
    assert len(store.parked("t2")) == 4 and not api.documents

    # the grant is fixed and the flag flipped, but the parked records are not replayed
    api.revoked_tenants.clear()
    store.set_paused("t2", False, None)
    late = [examples.sample_ledger_entry(examples.sample_invoice_event(
        tenant="t2", invoice_id=f"t2-late-{i}", customer_id="c0")) for i in range(2)]
    produce(env, late)
    make_runner(env, api).run(max_idle_s=3)
    assert not api.documents, "a new record overtook the parked ones"
    assert len(store.parked("t2")) == 6

    assert make_runner(env, api).resume_tenant("t2") == 6
    assert len(api.documents) == 6 and store.parked("t2") == []
    # drained: the live sink writes the tenant's records directly again
    produce(env, [examples.sample_ledger_entry(examples.sample_invoice_event(
        tenant="t2", invoice_id="t2-after", customer_id="c1"))])
    make_runner(env, api).run(max_idle_s=3)
    assert len(api.documents) == 7 and store.parked("t2") == []


def test_a_zombie_cannot_commit_over_the_new_owner(env) -> None:
    store = SinkStore(env["dsn"], "echo", env["group"])
    store.ensure_schema()
    tp = (env["topic"], 0)
    owner, zombie = OffsetClaim(), OffsetClaim()
    owner.expected[tp] = None
    store.commit_batch([], {tp: 10}, owner)
    zombie.expected[tp] = None  # loaded before the owner's commit
    with pytest.raises(OffsetFencedError):
        store.commit_batch([], {tp: 5}, zombie)
    store.commit_batch([], {tp: 20}, owner)
    assert store.stored_offsets(env["topic"], [0]) == {0: 20}


def test_replay_with_resend_sends_again_but_creates_nothing(env) -> None:
    from sinks.core.replay import replay

    entries = entries_for("t1", 8)
    produce(env, entries)
    api = EchoApi()
    make_runner(env, api).run(max_idle_s=3)
    assert len(api.documents) == 8
    calls_before = api.calls["/documents"]

    plan = replay(bootstrap=env["bootstrap"], database_url=env["dsn"], topic=env["topic"],
                  group=env["group"], platform="echo", resend=True)
    assert plan.resent_events == 8 and set(plan.partitions.values()) == {0}
    make_runner(env, api).run(max_idle_s=3)
    assert api.calls["/documents"] == calls_before + 8  # really sent again...
    assert len(api.documents) == 8                        # ...and deduplicated by the key
    assert sync_log(env) == {"applied": 8}


def test_a_batch_over_its_time_budget_commits_and_rereads_the_rest(env) -> None:
    """Throttled platforms must not hold one poll's records past max.poll.interval.ms:
    over budget, the runner commits what is done and re-reads the rest."""
    entries = entries_for("t1", 10)
    produce(env, entries)
    api = EchoApi()
    make_runner(env, api, batch_time_budget_s=0.0).run(max_idle_s=3)
    assert len(api.documents) == 10 and max(api.event_ids().values()) == 1
    assert sync_log(env) == {"applied": 10}
