-- Sink bookkeeping: offsets, the external-id map and the sync log live in ONE database
-- and are written in ONE transaction per batch, so after any crash the stored offset
-- says exactly which documents the map and the log account for.

CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

CREATE TABLE IF NOT EXISTS sink_external_ids (
    platform         text        NOT NULL,
    tenant_id        text        NOT NULL,
    kind             text        NOT NULL,   -- customer | invoice | payment | credit_note
    crm_id           text        NOT NULL,
    external_id      text        NOT NULL,
    version          text,                   -- SyncToken, ETag, RowVersion ...
    document_number  text,
    last_event_id    text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, tenant_id, kind, crm_id)
);

CREATE TABLE IF NOT EXISTS sink_sync_log (
    platform          text        NOT NULL,
    tenant_id         text        NOT NULL,
    event_id          text        NOT NULL,
    aggregate_type    text,
    aggregate_id      text,
    aggregate_version bigint,
    status            text        NOT NULL,  -- applied | already_applied | dead_lettered | parked | skipped
    attempts          integer     NOT NULL DEFAULT 1,
    last_error        text,
    external_id       text,
    request_digest    text,
    response_digest   text,
    topic             text,
    partition         integer,
    "offset"          bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, tenant_id, event_id)
);
-- When the platform answered the record's last request (the sink's clock); created_at
-- is the bookkeeping transaction's start, which waits for the rest of the batch.
ALTER TABLE sink_sync_log ADD COLUMN IF NOT EXISTS written_at timestamptz;

CREATE TABLE IF NOT EXISTS sink_tenant_state (
    platform    text        NOT NULL,
    tenant_id   text        NOT NULL,
    paused      boolean     NOT NULL,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, tenant_id)
);

-- Records of a paused tenant, set aside (in order) so the partition keeps moving for
-- everyone else; replayed by `ledgerstream sink resume`.
CREATE TABLE IF NOT EXISTS sink_parked (
    seq         bigserial   PRIMARY KEY,
    platform    text        NOT NULL,
    tenant_id   text        NOT NULL,
    event_id    text,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    value       bytea,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS sink_parked_tenant ON sink_parked (platform, tenant_id, seq);
