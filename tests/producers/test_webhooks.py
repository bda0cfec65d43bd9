"""The webhook receiver against the real PostgreSQL, Kafka and registry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from producers.publisher import Publisher
from producers.relay import RelaySettings, run_relay
from producers.webhooks import sign
from producers.webhooks.app import ReceiverConfig, create_app
from schemas.models import DeadLetter, FinancialEvent
from schemas.topics import Topics
from tests.producers.conftest import TopicReader
from tests.producers.scenario import comparable, run_scenario

pytestmark = pytest.mark.integration

SECRET = "whsec_test"


@pytest.fixture
def client(crm_db: str, kafka_bootstrap: str, schema_registry_url: str,
           topics: Topics) -> Iterator[TestClient]:
    publisher = Publisher(kafka_bootstrap, schema_registry_url, topics)
    app = create_app(ReceiverConfig({"t1": [SECRET]}), crm_db, publisher)
    with TestClient(app) as c:
        yield c


def body_for(event: FinancialEvent, customer_id: str | None = None) -> bytes:
    data = json.loads(event.model_dump_json())
    return json.dumps({
        "id": f"evt_{event.event_id}", "type": event.event_type,
        "occurred_at": data["occurred_at"], "version": event.aggregate_version,
        "aggregate_id": event.aggregate_id, "customer_id": customer_id,
        "data": data["payload"]}).encode()


def post(client: TestClient, body: bytes, *, tenant: str = "t1", secret: str = SECRET,
         ts: int | None = None, headers: dict[str, str] | None = None) -> Any:
    signed = headers if headers is not None else sign(secret, ts or int(time.time()), body)
    return client.post(f"/webhooks/{tenant}", content=body,
                       headers={**signed, "content-type": "application/json"})


def dead_letters(dsn: str) -> list[tuple[int, str, bytes]]:
    with psycopg.connect(dsn) as conn:
        return [(s, r, bytes(b)) for s, r, b in conn.execute(
            "SELECT status_code, reason, body FROM webhook_dead_letter ORDER BY id")]


def test_webhooks_produce_the_same_envelopes_as_the_relay(
    client: TestClient, crm_db: str, relay_settings: RelaySettings, reader: TopicReader,
    kafka_bootstrap: str
) -> None:
    with psycopg.connect(crm_db, autocommit=True) as conn:
        written = run_scenario(conn)
    keys = {str(i): k for i, k in psycopg.connect(crm_db).execute(
        "SELECT id, message_key FROM outbox")}
    relay_topics = Topics(suffix=relay_settings.topic_suffix + "r")
    from producers.topics_admin import ensure_topics
    ensure_topics(kafka_bootstrap, relay_topics)
    run_relay(relay_settings.model_copy(update={"topic_suffix": relay_topics.suffix}))
    for event in written:  # the SaaS CRM sends the same changes as webhooks
        answer = post(client, body_for(event, keys[event.event_id].split(":", 1)[1]))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "accepted"

    topics = Topics(suffix=relay_settings.topic_suffix)
    def read(t: Topics, n: int) -> list[Any]:
        recs = reader.read(t.crm_customers, quiet_s=1) + reader.read(t.crm_tax_rates, quiet_s=1)
        return recs + reader.read(t.crm_financial_events, expect=n - len(recs))
    hooked, relayed = read(topics, len(written)), read(relay_topics, len(written))
    assert len(hooked) == len(relayed) == len(written)
    assert sorted(map(repr, (comparable(r.event) for r in hooked))) == sorted(
        map(repr, (comparable(r.event) for r in relayed)))
    assert sorted((r.topic.rsplit(".", 1)[0], r.key) for r in hooked) == sorted(
        (r.topic.rsplit(".", 1)[0], r.key) for r in relayed)
    assert {r.event.source.value for r in hooked} == {"WEBHOOK"}


def test_bad_requests_get_clear_4xx_and_are_kept_and_good_ones_still_pass(
    client: TestClient, crm_db: str, reader: TopicReader, topics: Topics
) -> None:
    from schemas import examples
    good = body_for(examples.sample_invoice_event(), "c1")
    now = int(time.time())

    r = post(client, good, secret="wrong")
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature")
    r = post(client, good, ts=now - 301)
    assert (r.status_code, r.json()["error"]) == (401, "stale_timestamp")
    r = post(client, good, headers={})
    assert r.status_code == 401 and "missing" in r.json()["reason"]
    r = post(client, good, tenant="nobody")
    assert r.status_code == 404
    malformed = b'{"id": "evt_x", "type": "invoice.sent", "occurred_at": '
    r = post(client, malformed)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_body")
    wrong = json.loads(good)
    wrong["data"]["total"] = "lots"
    wrong["id"] = "evt_bad_total"
    r = post(client, json.dumps(wrong).encode())
    assert r.status_code == 422 and "data.total" in r.json()["reason"]
    unknown = {**json.loads(good), "id": "evt_unknown", "type": "invoice.teleported"}
    r = post(client, json.dumps(unknown).encode())
    assert r.status_code == 422 and "invoice.teleported" in r.json()["reason"]

    signed = sign(SECRET, now, good)
    first = post(client, good, headers=signed)
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    replay = post(client, good, headers=signed)
    assert (replay.status_code, replay.json()["error"]) == (409, "replay")
    retry = post(client, good, ts=now + 1)  # the sender retrying: new signature, same id
    assert (retry.status_code, retry.json()["status"]) == (200, "duplicate")
    assert retry.json()["event_id"] == first.json()["event_id"]

    kept = dead_letters(crm_db)
    assert [s for s, _, _ in kept] == [401, 401, 401, 404, 422, 422, 422, 409]
    assert kept[0][2] == good and "bad_signature" in kept[0][1]
    assert kept[4][2] == malformed
    events = reader.read(topics.crm_financial_events, expect=1)
    assert [r.event.event_id for r in events] == [first.json()["event_id"]]
    letters = reader.read(topics.crm_dlq, expect=3)
    assert len(letters) == 3  # only authenticated bodies go to the topic
    assert all(isinstance(r.value, DeadLetter) and r.value.stage == "webhooks"
               for r in letters)
    assert letters[0].value.value == malformed
