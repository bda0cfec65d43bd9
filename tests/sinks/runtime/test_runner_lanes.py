"""The runner's concurrent lanes, without Kafka or PostgreSQL.

Records of different keys (tenant:customer) are written at once, each key's records in
offset order; the batch reads its external ids in one query; a retryable failure in
one lane stops the partition's offset at that record while the other lanes' writes are
booked (re-reading them later skips them as terminal).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from schemas import examples
from sinks.core.contract import (
    Platform,
    PlatformRequest,
    PlatformResponse,
    PlatformSpec,
    SinkContext,
    WireProtocol,
    WriteResult,
)
from sinks.core.metrics import SinkRuntimeMetrics
from sinks.core.runner import Record, SinkRunner
from sinks.core.store import ExternalIdUpdate, OffsetClaim, Outcome

TOPIC = "ledger.entries"


class LanePlatform(Platform):
    spec = PlatformSpec(name="lanes", display_name="Lanes", protocol=WireProtocol.REST_JSON)

    def plan(self, entry: Any, context: SinkContext
             ) -> Generator[PlatformRequest, PlatformResponse, WriteResult]:
        customer = f"customer:{entry.event.payload.customer_id}"
        response = yield PlatformRequest(
            "POST", "/docs", "write document",
            json={"invoice": str(entry.event.aggregate_id),
                  "customer": str(entry.event.payload.customer_id),
                  "customer_ref": context.external_ids.get(customer)})
        return WriteResult(external_id=response.json()["id"])


class Api:
    """Answers after a short delay; records the order of writes and the peak overlap."""

    def __init__(self, fail: Iterable[str] = ()) -> None:
        self.fail = set(fail)
        self.writes: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request: PlatformRequest) -> PlatformResponse:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.02)
            if request.json["invoice"] in self.fail:
                return PlatformResponse(503, {}, b"busy")
            with self.lock:
                self.writes.append(request.json)
            return PlatformResponse.from_json(200, {"id": "x-" + request.json["invoice"]})
        finally:
            with self.lock:
                self.in_flight -= 1


class FakeStore:
    def __init__(self, known: Mapping[str, dict[str, ExternalIdUpdate]] | None = None) -> None:
        self.known = dict(known or {})
        self.lookups: list[dict[str, list[tuple[str, str]]]] = []
        self.commits: list[tuple[list[Outcome], dict[tuple[str, int], int]]] = []

    def paused_tenants(self) -> dict[str, str]:
        return {}

    def blocked_tenants(self) -> dict[str, str]:
        return {}

    def terminal_events(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        booked = {(o.tenant_id, o.event_id) for outcomes, _ in self.commits for o in outcomes
                  if o.status in ("applied", "already_applied", "dead_lettered")}
        return set(pairs) & booked

    def external_ids_for_tenants(self, wanted: Mapping[str, Iterable[tuple[str, str]]]
                                 ) -> dict[str, dict[str, ExternalIdUpdate]]:
        self.lookups.append({t: list(keys) for t, keys in wanted.items()})
        return {t: dict(v) for t, v in self.known.items()}

    def external_ids(self, tenant_id: str, keys: Any) -> dict[str, ExternalIdUpdate]:
        raise AssertionError("a batch must not look ids up record by record")

    def commit_batch(self, outcomes: Iterable[Outcome], offsets: Mapping[tuple[str, int], int],
                     claim: OffsetClaim, parked: Iterable[Any] = ()) -> None:
        self.commits.append((list(outcomes), dict(offsets)))


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[int, int]] = []

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.partition, tp.offset))

    def commit(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass


def make(api: Api, store: FakeStore, entries: dict[int, Any], concurrency: int = 8,
         letters: list[Any] | None = None) -> SinkRunner:
    def decode(record: Record) -> Any:
        if isinstance(entries[record.offset], Exception):
            raise entries[record.offset]
        return entries[record.offset]

    runner = SinkRunner(
        platform=LanePlatform(), topic=TOPIC,
        consumer_conf={"bootstrap.servers": "127.0.0.1:1", "group.id": "lanes"},
        store=store,  # type: ignore[arg-type]
        tenants={"t1": object(), "t2": object()}, transport_for=lambda tenant: api,
        decode=decode,
        dead_letter=(letters.append if letters is not None else lambda letter: None),
        metrics=SinkRuntimeMetrics.create(CollectorRegistry()), concurrency=concurrency,
        retry_backoff_s=0.0,
    )
    runner.consumer = FakeConsumer()  # type: ignore[assignment]
    return runner


def interleaved(n_keys: int, per_key: int) -> tuple[list[Record], dict[int, Any]]:
    """Records of ``n_keys`` customers interleaved on one partition."""
    records, entries = [], {}
    for offset in range(n_keys * per_key):
        customer, seq = f"c{offset % n_keys}", offset // n_keys
        tenant = "t1" if offset % n_keys % 2 == 0 else "t2"
        entries[offset] = examples.sample_ledger_entry(examples.sample_invoice_event(
            tenant=tenant, invoice_id=f"{customer}-{seq}", customer_id=customer))
        records.append(Record(TOPIC, 0, offset, f"{tenant}:{customer}".encode(), b""))
    return records, entries


def test_keys_are_written_concurrently_each_in_offset_order() -> None:
    records, entries = interleaved(n_keys=6, per_key=5)
    api, store = Api(), FakeStore()
    make(api, store, entries).process_batch(records)
    assert len(api.writes) == 30
    assert api.peak > 1  # lanes really overlap
    for customer in {w["customer"] for w in api.writes}:
        seen = [w["invoice"] for w in api.writes if w["customer"] == customer]
        assert seen == [f"{customer}-{i}" for i in range(5)]
    (outcomes, offsets), = store.commits
    assert len(outcomes) == 30 and offsets == {(TOPIC, 0): 30}


def test_one_key_at_a_time_without_concurrency() -> None:
    records, entries = interleaved(n_keys=3, per_key=2)
    api = Api()
    make(api, FakeStore(), entries, concurrency=1).process_batch(records)
    assert api.peak == 1 and len(api.writes) == 6


def test_the_batch_reads_its_external_ids_in_one_query() -> None:
    records, entries = interleaved(n_keys=4, per_key=3)
    known = {"t1": {"customer:c0": ExternalIdUpdate("customer", "c0", "Q-c0")}}
    api, store = Api(), FakeStore(known)
    make(api, store, entries).process_batch(records)
    (lookup,) = store.lookups
    assert ("customer", "c0") in lookup["t1"] and ("customer", "c1") in lookup["t2"]
    assert ("invoice", "c2-2") in lookup["t1"]
    refs = {w["customer"]: w["customer_ref"] for w in api.writes}
    assert refs == {"c0": "Q-c0", "c1": None, "c2": None, "c3": None}


def test_a_failed_record_stops_its_key_and_the_partition_offset_there() -> None:
    records, entries = interleaved(n_keys=3, per_key=4)  # offsets 0..11
    api, store = Api(fail={"c1-1"}), FakeStore()  # c1-1 is at offset 4
    runner = make(api, store, entries)
    runner.process_batch(records)
    written = {w["invoice"] for w in api.writes}
    assert {"c1-2", "c1-3"} & written == set()  # after the failure, in its key: held back
    assert {f"c0-{i}" for i in range(4)} <= written  # other keys: written and booked
    (outcomes, offsets), = store.commits
    assert offsets == {(TOPIC, 0): 4}
    assert len(outcomes) == len(written) == 9
    assert runner.consumer.seeks == [(0, 4)]  # type: ignore[attr-defined]


def test_a_reread_partition_does_not_dead_letter_an_undecodable_record_twice() -> None:
    """Another lane's failure rewinds the partition below an undecodable record that
    was already dead-lettered and booked: re-reading it skips it."""
    records, entries = interleaved(n_keys=3, per_key=2)  # offsets 0..5
    entries[5] = ValueError("not a ledger entry")
    api, store, letters = Api(fail={"c1-0"}), FakeStore(), []  # c1-0 is at offset 1
    runner = make(api, store, entries, letters=letters)
    runner.process_batch(records)
    assert len(letters) == 1 and store.commits[-1][1] == {(TOPIC, 0): 1}
    api.fail.clear()
    runner.process_batch(records[1:])  # what the consumer reads again after the seek
    assert len(letters) == 1
    assert store.commits[-1][1] == {(TOPIC, 0): 6}
    assert {w["invoice"] for w in api.writes} >= {"c1-0", "c1-1"}


class GuardedPlatform(LanePlatform):
    spec = PlatformSpec(name="guarded", display_name="Guarded", protocol=WireProtocol.REST_JSON,
                        guards_edits=True)


def test_a_guarded_platform_gets_one_write_per_document_per_transaction() -> None:
    """Two updates of one invoice in one poll: the second waits for the first one's
    bookkeeping commit (a crash between two unrecorded writes of one document would make
    the replay of the first meet our own second write as a 'bookkeeper's edit')."""
    entries = {0: examples.sample_ledger_entry(examples.sample_invoice_event(
                   tenant="t1", invoice_id="inv-1", customer_id="c1", version=1)),
               1: examples.sample_ledger_entry(examples.sample_invoice_event(
                   tenant="t1", invoice_id="inv-2", customer_id="c2", version=1)),
               2: examples.sample_ledger_entry(examples.sample_invoice_event(
                   tenant="t1", invoice_id="inv-1", customer_id="c1", version=2)),
               3: examples.sample_ledger_entry(examples.sample_invoice_event(
                   tenant="t1", invoice_id="inv-2", customer_id="c2", version=2))}
    records = [Record(TOPIC, 0, n, f"t1:c{1 + n % 2}".encode(), b"") for n in range(4)]
    api, store = Api(), FakeStore()
    runner = make(api, store, entries)
    runner.platform = GuardedPlatform()
    runner.process_batch(records)
    (first, offsets), = store.commits
    assert sorted(o.offset for o in first) == [0, 1]  # one write per invoice
    assert offsets == {(TOPIC, 0): 2}
    assert runner.consumer.seeks == [(0, 2)]  # type: ignore[attr-defined]
    runner.process_batch(records[2:])  # the re-read
    assert sorted(w["invoice"] for w in api.writes[:2]) == ["inv-1", "inv-2"]
    assert sorted(w["invoice"] for w in api.writes[2:]) == ["inv-1", "inv-2"]
    assert sorted(o.offset for o in store.commits[1][0]) == [2, 3]

    # an unguarded platform writes both updates in the same transaction
    api2, store2 = Api(), FakeStore()
    make(api2, store2, entries).process_batch(records)
    (only, _), = store2.commits
    assert sorted(o.offset for o in only) == [0, 1, 2, 3]


def test_lanes_take_tenants_in_turn() -> None:
    """One tenant's many lanes share its rate budget: started first, they would fill
    the pool asleep on it while another tenant's lane (free budget) waits behind."""
    keys = [b"t1:a", b"t1:b", b"t1:c", b"t2:a", b"t1:d", b"t3:a", b"t2:b"]
    decoded = [(Record(TOPIC, 0, n, key, b""), None) for n, key in enumerate(keys)]
    order = [lane[0][0].key for lane in SinkRunner._lanes(decoded)]
    assert order == [b"t1:a", b"t2:a", b"t3:a", b"t1:b", b"t2:b", b"t1:c", b"t1:d"]
    # every record is in exactly one lane, each lane one key in offset order
    again = [*decoded, (Record(TOPIC, 0, 7, b"t1:a", b""), None)]
    lanes = SinkRunner._lanes(again)
    assert sorted(r.offset for lane in lanes for r, _ in lane) == list(range(8))
    assert [r.offset for r, _ in lanes[0]] == [0, 7]


def test_a_lone_record_is_taken_without_waiting_for_a_full_batch() -> None:
    """The poll waits for a first record only, then takes what is already fetched
    (``consume`` with no wait), up to the batch size."""

    class Consumer(FakeConsumer):
        def __init__(self, queued: list[str]) -> None:
            super().__init__()
            self.queued = queued
            self.calls: list[tuple[str, int | None, float]] = []

        def poll(self, timeout: float) -> str | None:
            self.calls.append(("poll", None, timeout))
            return self.queued.pop(0) if self.queued else None

        def consume(self, n: int, timeout: float) -> list[str]:
            self.calls.append(("consume", n, timeout))
            taken, self.queued[:n] = self.queued[:n], []
            return taken

    runner = make(Api(), FakeStore(), {})
    runner.batch_size, runner.poll_timeout_s = 3, 0.25
    runner.consumer = Consumer(["m1"])  # type: ignore[assignment]
    assert runner._poll() == ["m1"]
    assert runner.consumer.calls == [("poll", None, 0.25), ("consume", 2, 0)]  # type: ignore[attr-defined]
    runner.consumer = Consumer(["m1", "m2", "m3", "m4"])  # type: ignore[assignment]
    assert runner._poll() == ["m1", "m2", "m3"]
    assert runner._poll() == ["m4"]
    runner.consumer = Consumer([])  # type: ignore[assignment]
    assert runner._poll() == []
    assert runner.consumer.calls == [("poll", None, 0.25)]  # type: ignore[attr-defined]


def one_tenant(n_keys: int, per_key: int = 1) -> tuple[list[Record], dict[int, Any]]:
    """Records of ``n_keys`` customers of tenant t1, interleaved on one partition."""
    records, entries = [], {}
    for offset in range(n_keys * per_key):
        customer, seq = f"c{offset % n_keys}", offset // n_keys
        entries[offset] = examples.sample_ledger_entry(examples.sample_invoice_event(
            tenant="t1", invoice_id=f"{customer}-{seq}", customer_id=customer))
        records.append(Record(TOPIC, 0, offset, f"t1:{customer}".encode(), b""))
    return records, entries


def test_a_tenant_runs_no_more_lanes_than_its_rate_limit_allows() -> None:
    records, entries = one_tenant(n_keys=8, per_key=2)
    api, store = Api(), FakeStore()
    runner = make(api, store, entries)
    runner.lanes_per_tenant = 2
    runner.process_batch(records)
    assert api.peak == 2 and len(api.writes) == 16
    (outcomes, offsets), = store.commits
    assert len(outcomes) == 16 and offsets == {(TOPIC, 0): 16}
    # uncapped, the same batch overlaps more
    api2 = Api()
    make(api2, FakeStore(), entries).process_batch(records)
    assert api2.peak > 2


def test_a_capped_tenant_ends_its_batch_soon_after_the_time_budget() -> None:
    """Lanes waiting for their tenant's turn when the budget is spent do not start:
    their records are left for the next poll (the partition is rewound to the first of
    them; the re-read skips those written meanwhile, as booked)."""
    records, entries = one_tenant(n_keys=12)  # one record per lane, 20 ms each
    api, store = Api(), FakeStore()
    runner = make(api, store, entries)
    runner.lanes_per_tenant, runner.batch_time_budget_s = 1, 0.05
    runner.process_batch(records)
    written = len(api.writes)
    assert 1 <= written <= 5  # one lane at a time: the budget allows about three of 12
    (outcomes, offsets), = store.commits
    first_left = min(set(range(12)) - {o.offset for o in outcomes})
    assert len(outcomes) == written
    assert runner.consumer.seeks == [(0, first_left)]  # type: ignore[attr-defined]
    assert offsets == ({(TOPIC, 0): first_left} if first_left else {})
