-- Durable state of the status poller and the webhook receiver (ledgerstream's own
-- database, DATABASE_URL). Idempotent.

-- Where each (source, stream) has read up to: the keyset (updated_at, id) of the newest
-- row whose event was acknowledged by the broker. The poller re-reads an overlap window
-- behind it, so transactions that commit out of timestamp order are still seen.
CREATE TABLE IF NOT EXISTS poller_watermarks (
  source     text NOT NULL,
  stream     text NOT NULL,
  updated_at timestamptz NOT NULL,
  row_id     text NOT NULL,
  saved_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source, stream)
);

-- The last emitted state of each aggregate: re-polling the same rows compares against it
-- and emits nothing twice; a status change picks the event type (invoice.sent, .paid, ...).
CREATE TABLE IF NOT EXISTS poller_snapshots (
  source         text NOT NULL,
  tenant_id      text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  version        bigint NOT NULL,
  content_hash   text NOT NULL,
  status         text,
  customer_id    text,
  deleted        boolean NOT NULL DEFAULT false,
  updated_at     timestamptz NOT NULL,
  PRIMARY KEY (source, tenant_id, aggregate_type, aggregate_id)
);

-- Webhook deliveries already accepted: a seen signature is a replay (409); a seen event
-- id with a fresh signature is the sender retrying (200, not published again).
CREATE TABLE IF NOT EXISTS webhook_seen (
  tenant_id   text NOT NULL,
  delivery_id text NOT NULL,
  signature   text NOT NULL UNIQUE,
  event_id    uuid NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, delivery_id)
);

-- Webhook bodies refused with a 4xx, kept with the reason.
CREATE TABLE IF NOT EXISTS webhook_dead_letter (
  id          bigserial PRIMARY KEY,
  tenant_id   text,
  status_code int NOT NULL,
  reason      text NOT NULL,
  headers     jsonb NOT NULL,
  body        bytea NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
