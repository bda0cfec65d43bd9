-- Reference CRM database for ledgerstream: the tables a repair-shop CRM/POS has, plus the
-- transactional outbox the relay drains. Idempotent: safe to apply again and again.
--
-- Every business table carries tenant_id, a `version` that the ls_touch() trigger bumps on
-- every UPDATE (so it is incremented even by code that forgets), and `updated_at`, which is
-- what the status poller's watermark reads for CRMs that have no outbox.


CREATE OR REPLACE FUNCTION ls_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    NEW.version := OLD.version + 1;
  END IF;
  NEW.updated_at := clock_timestamp();
  RETURN NEW;
END $$;

CREATE TABLE IF NOT EXISTS tenants (
  tenant_id        text PRIMARY KEY CHECK (position(':' in tenant_id) = 0),
  name             text NOT NULL,
  default_currency char(3) NOT NULL DEFAULT 'USD',
  version          bigint NOT NULL DEFAULT 1,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS customers (
  tenant_id            text NOT NULL REFERENCES tenants,
  id                   text NOT NULL,
  display_name         text NOT NULL,
  company_name         text,
  email                text,
  phone                text,
  billing_address      jsonb NOT NULL,
  service_address      jsonb,
  tax_exempt           boolean NOT NULL DEFAULT false,
  tax_exemption_number text,
  default_currency     char(3) NOT NULL,
  external_refs        jsonb NOT NULL DEFAULT '[]',
  active               boolean NOT NULL DEFAULT true,
  deleted_at           timestamptz,
  version              bigint NOT NULL DEFAULT 1,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE IF NOT EXISTS tax_rates (
  tenant_id      text NOT NULL REFERENCES tenants,
  code           text NOT NULL,
  name           text NOT NULL,
  jurisdiction   text NOT NULL,
  effective_from date NOT NULL,
  effective_to   date,
  active         boolean NOT NULL DEFAULT true,
  deleted_at     timestamptz,
  version        bigint NOT NULL DEFAULT 1,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, code)
);

CREATE TABLE IF NOT EXISTS tax_rate_components (
  tenant_id  text NOT NULL,
  tax_code   text NOT NULL,
  position   int NOT NULL,
  name       text NOT NULL,
  rate       numeric(12,6) NOT NULL CHECK (rate >= 0 AND rate <= 1),
  compound   boolean NOT NULL DEFAULT false,
  version    bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, tax_code, position),
  FOREIGN KEY (tenant_id, tax_code) REFERENCES tax_rates ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS jobs (
  tenant_id       text NOT NULL REFERENCES tenants,
  id              text NOT NULL,
  customer_id     text NOT NULL,
  appliance_type  text NOT NULL,
  brand           text,
  model           text,
  serial_number   text,
  technician      text,
  service_address jsonb,
  status          text NOT NULL DEFAULT 'OPEN',
  completed_at    timestamptz,
  version         bigint NOT NULL DEFAULT 1,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers
);

CREATE TABLE IF NOT EXISTS invoices (
  tenant_id          text NOT NULL REFERENCES tenants,
  id                 text NOT NULL,
  number             text NOT NULL,
  status             text NOT NULL CHECK (status IN ('DRAFT','SENT','PARTIALLY_PAID','PAID','VOID')),
  issue_date         date NOT NULL,
  due_date           date NOT NULL,
  currency           char(3) NOT NULL,
  customer_id        text NOT NULL,
  po_number          text,
  job_id             text,
  prices_include_tax boolean NOT NULL DEFAULT false,
  subtotal           numeric(18,4) NOT NULL,
  tax_lines          jsonb NOT NULL DEFAULT '[]',
  total_tax          numeric(18,4) NOT NULL,
  total              numeric(18,4) NOT NULL,
  amount_paid        numeric(18,4) NOT NULL DEFAULT 0,
  amount_due         numeric(18,4) NOT NULL,
  notes              text,
  deleted_at         timestamptz,
  version            bigint NOT NULL DEFAULT 1,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, number),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers,
  FOREIGN KEY (tenant_id, job_id) REFERENCES jobs
);

CREATE TABLE IF NOT EXISTS invoice_lines (
  tenant_id   text NOT NULL,
  invoice_id  text NOT NULL,
  line_id     text NOT NULL,
  position    int NOT NULL,
  kind        text NOT NULL,
  description text NOT NULL,
  sku         text,
  quantity    numeric(18,4) NOT NULL,
  unit_price  numeric(18,4) NOT NULL,
  tax_code    text,
  amount      numeric(18,4) NOT NULL,
  version     bigint NOT NULL DEFAULT 1,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, invoice_id, line_id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS payments (
  tenant_id     text NOT NULL REFERENCES tenants,
  id            text NOT NULL,
  number        text NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('PAYMENT','REFUND')),
  customer_id   text NOT NULL,
  received_date date NOT NULL,
  method        text NOT NULL,
  currency      char(3) NOT NULL,
  amount        numeric(18,4) NOT NULL CHECK (amount >= 0),
  processor_fee numeric(18,4) NOT NULL DEFAULT 0,
  tip           numeric(18,4) NOT NULL DEFAULT 0,
  check_number  text,
  card_last4    text,
  refund_of     text,
  deleted_at    timestamptz,
  version       bigint NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers
);

CREATE TABLE IF NOT EXISTS payment_allocations (
  tenant_id  text NOT NULL,
  payment_id text NOT NULL,
  invoice_id text NOT NULL,
  amount     numeric(18,4) NOT NULL CHECK (amount >= 0),
  version    bigint NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, payment_id, invoice_id),
  FOREIGN KEY (tenant_id, payment_id) REFERENCES payments ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices
);

CREATE TABLE IF NOT EXISTS credit_notes (
  tenant_id          text NOT NULL REFERENCES tenants,
  id                 text NOT NULL,
  number             text NOT NULL,
  customer_id        text NOT NULL,
  issue_date         date NOT NULL,
  currency           char(3) NOT NULL,
  invoice_id         text,
  reason             text NOT NULL,
  prices_include_tax boolean NOT NULL DEFAULT false,
  subtotal           numeric(18,4) NOT NULL,
  tax_lines          jsonb NOT NULL DEFAULT '[]',
  total_tax          numeric(18,4) NOT NULL,
  total              numeric(18,4) NOT NULL,
  disposition        text NOT NULL CHECK (disposition IN ('REFUNDED','CREDITED')),
  deleted_at         timestamptz,
  version            bigint NOT NULL DEFAULT 1,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, number),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers
);

CREATE TABLE IF NOT EXISTS credit_note_lines (
  tenant_id      text NOT NULL,
  credit_note_id text NOT NULL,
  line_id        text NOT NULL,
  position       int NOT NULL,
  kind           text NOT NULL,
  description    text NOT NULL,
  sku            text,
  quantity       numeric(18,4) NOT NULL,
  unit_price     numeric(18,4) NOT NULL,
  tax_code       text,
  amount         numeric(18,4) NOT NULL,
  version        bigint NOT NULL DEFAULT 1,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, credit_note_id, line_id),
  FOREIGN KEY (tenant_id, credit_note_id) REFERENCES credit_notes ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS credit_note_allocations (
  tenant_id      text NOT NULL,
  credit_note_id text NOT NULL,
  invoice_id     text NOT NULL,
  amount         numeric(18,4) NOT NULL CHECK (amount >= 0),
  version        bigint NOT NULL DEFAULT 1,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, credit_note_id, invoice_id),
  FOREIGN KEY (tenant_id, credit_note_id) REFERENCES credit_notes ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices
);

-- Poller watermark index: (updated_at, id) is the keyset the status poller pages by.
CREATE INDEX IF NOT EXISTS customers_updated_idx    ON customers (updated_at, tenant_id, id);
CREATE INDEX IF NOT EXISTS tax_rates_updated_idx    ON tax_rates (updated_at, tenant_id, code);
CREATE INDEX IF NOT EXISTS invoices_updated_idx     ON invoices (updated_at, tenant_id, id);
CREATE INDEX IF NOT EXISTS payments_updated_idx     ON payments (updated_at, tenant_id, id);
CREATE INDEX IF NOT EXISTS credit_notes_updated_idx ON credit_notes (updated_at, tenant_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenants','customers','tax_rates','tax_rate_components','jobs',
      'invoices','invoice_lines','payments','payment_allocations','credit_notes',
      'credit_note_lines','credit_note_allocations'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I '
                   'FOR EACH ROW EXECUTE FUNCTION ls_touch()', t || '_touch', t);
  END LOOP;
END $$;

-- The transactional outbox. Column names follow Debezium's outbox event router
-- (id, aggregatetype, aggregateid, type, payload, timestamp) so Debezium could replace our
-- relay with configuration only:
--   table.field.event.id=id  table.field.event.key=message_key  table.field.event.payload=payload
--   route.by.field=destination  route.topic.replacement=${routedByValue}
-- Extra columns: tenant_id, message_key (tenant:customer), destination (base topic name),
-- sequence (commit order within a bucket), bucket (which relay lease covers the row) and
-- published_at (for relays configured to mark rows instead of deleting them).
CREATE TABLE IF NOT EXISTS outbox (
  id            uuid PRIMARY KEY,
  aggregatetype varchar(255) NOT NULL,
  aggregateid   varchar(255) NOT NULL,
  type          varchar(255) NOT NULL,
  payload       jsonb,
  "timestamp"   timestamptz NOT NULL DEFAULT clock_timestamp(),
  tenant_id     text NOT NULL,
  message_key   text NOT NULL,
  destination   text NOT NULL DEFAULT 'crm.financial-events',
  sequence      bigserial NOT NULL,
  bucket        smallint GENERATED ALWAYS AS ((hashtextextended(message_key, 0) & 63)::smallint) STORED,
  published_at  timestamptz
);
-- The relay claims per bucket in sequence order; the partial index keeps the scan on
-- pending rows only, whether published rows are deleted or marked.
CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (bucket, sequence) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sequence_idx ON outbox (sequence) WHERE published_at IS NULL;

-- Wake the relay as soon as a transaction that wrote outbox rows commits (NOTIFY is
-- delivered at commit, once per transaction and channel payload).
CREATE OR REPLACE FUNCTION ls_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ledgerstream_outbox', '');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION ls_outbox_notify();

-- Rows the relay could not publish (payload not matching the schema, unknown event type,
-- a record the broker refuses), with the reason. They leave the outbox so the rows behind
-- them are never blocked; the same record also goes to the crm.dlq topic.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
  id            uuid PRIMARY KEY,
  aggregatetype varchar(255) NOT NULL,
  aggregateid   varchar(255) NOT NULL,
  type          varchar(255) NOT NULL,
  payload       jsonb,
  "timestamp"   timestamptz NOT NULL,
  tenant_id     text NOT NULL,
  message_key   text NOT NULL,
  destination   text NOT NULL,
  sequence      bigint NOT NULL,
  error_class   text NOT NULL,
  reason        text NOT NULL,
  failed_at     timestamptz NOT NULL DEFAULT now()
);

-- Optional: the event already encoded by the writer as Confluent-framed Avro (magic byte,
-- 4-byte schema id, Avro body of FinancialEvent), for writers that opt in (the outbox
-- library's AvroEncoder). The relay then publishes these bytes as they are, after
-- checking the framing, instead of turning `payload` JSON into Avro per row; `payload`
-- stays as it is, so trigger-written rows and JSON readers keep working. Debezium's
-- router can publish it too: table.field.event.payload=payload_avro with the
-- ByteArrayConverter as value converter.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS payload_avro bytea;
ALTER TABLE outbox_dead_letter ADD COLUMN IF NOT EXISTS payload_avro bytea;
