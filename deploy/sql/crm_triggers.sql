-- Optional: outbox rows written by triggers, for CRMs whose code we cannot change.
-- Apply after crm.sql. Never combine with the outbox library (producers.outbox) on the
-- same tables, or each change is published twice (with different event ids).
--
-- The triggers are DEFERRABLE INITIALLY DEFERRED constraint triggers: they run at COMMIT,
-- when an invoice's lines, a payment's allocations and a tax rate's components exist, and
-- build the same FinancialEvent JSON the library writes (money as decimal strings, as the
-- contract models require). A row changed several times in one transaction yields one
-- event, for its final version, typed by the transition from its status at the start of
-- the transaction (kept in transaction-local settings). Child-table-only edits (a line changed without touching
-- the invoice row) are not seen: the CRM must touch the parent, as version/updated_at need.

CREATE OR REPLACE FUNCTION ls_num(v numeric) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT to_jsonb(v::text) $$;

CREATE OR REPLACE FUNCTION ls_lines(p_tenant text, p_table regclass, p_parent_col text,
                                    p_parent text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE out jsonb;
BEGIN
  EXECUTE format($q$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
      'line_id', line_id, 'kind', kind, 'description', description, 'sku', sku,
      'quantity', ls_num(quantity), 'unit_price', ls_num(unit_price), 'tax_code', tax_code,
      'amount', ls_num(amount)) ORDER BY position), '[]'::jsonb)
    FROM %s WHERE tenant_id = $1 AND %I = $2 $q$, p_table, p_parent_col)
  INTO out USING p_tenant, p_parent;
  RETURN out;
END $$;

CREATE OR REPLACE FUNCTION ls_allocations(p_tenant text, p_table regclass, p_parent_col text,
                                          p_parent text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE out jsonb;
BEGIN
  EXECUTE format($q$
    SELECT coalesce(jsonb_agg(jsonb_build_object('invoice_id', invoice_id,
      'amount', ls_num(amount)) ORDER BY invoice_id), '[]'::jsonb)
    FROM %s WHERE tenant_id = $1 AND %I = $2 $q$, p_table, p_parent_col)
  INTO out USING p_tenant, p_parent;
  RETURN out;
END $$;

CREATE OR REPLACE FUNCTION ls_tax_lines(v jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object('code', t->>'code', 'name', t->>'name',
    'rate', to_jsonb((t->>'rate')::numeric(12,6)::text),
    'taxable_amount', to_jsonb((t->>'taxable_amount')::numeric(18,4)::text),
    'tax_amount', to_jsonb((t->>'tax_amount')::numeric(18,4)::text))), '[]'::jsonb)
  FROM jsonb_array_elements(v) t
$$;

CREATE OR REPLACE FUNCTION ls_payload(p_type text, p_tenant text, p_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE r record; j record; out jsonb;
BEGIN
  IF p_type = 'CUSTOMER' THEN
    SELECT * INTO r FROM customers WHERE tenant_id = p_tenant AND id = p_id;
    RETURN jsonb_build_object('id', r.id, 'display_name', r.display_name,
      'company_name', r.company_name, 'email', r.email, 'phone', r.phone,
      'billing_address', r.billing_address, 'service_address', r.service_address,
      'tax_exempt', r.tax_exempt, 'tax_exemption_number', r.tax_exemption_number,
      'default_currency', r.default_currency, 'external_refs', r.external_refs,
      'active', r.active);
  ELSIF p_type = 'TAX_RATE' THEN
    SELECT * INTO r FROM tax_rates WHERE tenant_id = p_tenant AND code = p_id;
    RETURN jsonb_build_object('code', r.code, 'name', r.name, 'jurisdiction', r.jurisdiction,
      'components', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', c.name,
          'rate', ls_num(c.rate), 'compound', c.compound) ORDER BY c.position), '[]'::jsonb)
        FROM tax_rate_components c WHERE c.tenant_id = p_tenant AND c.tax_code = p_id),
      'effective_from', r.effective_from, 'effective_to', r.effective_to, 'active', r.active);
  ELSIF p_type = 'INVOICE' THEN
    SELECT * INTO r FROM invoices WHERE tenant_id = p_tenant AND id = p_id;
    SELECT * INTO j FROM jobs WHERE tenant_id = p_tenant AND id = r.job_id;
    out := jsonb_build_object('id', r.id, 'number', r.number, 'status', r.status,
      'issue_date', r.issue_date, 'due_date', r.due_date, 'currency', r.currency,
      'customer_id', r.customer_id, 'po_number', r.po_number,
      'job', CASE WHEN j.id IS NULL THEN NULL ELSE jsonb_build_object('job_id', j.id,
        'appliance_type', j.appliance_type, 'brand', j.brand, 'model', j.model,
        'serial_number', j.serial_number, 'technician', j.technician,
        'service_address', j.service_address, 'completed_at', j.completed_at) END,
      'lines', ls_lines(p_tenant, 'invoice_lines', 'invoice_id', p_id),
      'prices_include_tax', r.prices_include_tax, 'subtotal', ls_num(r.subtotal),
      'tax_lines', ls_tax_lines(r.tax_lines), 'total_tax', ls_num(r.total_tax),
      'total', ls_num(r.total), 'amount_paid', ls_num(r.amount_paid),
      'amount_due', ls_num(r.amount_due), 'notes', r.notes);
    RETURN out;
  ELSIF p_type = 'PAYMENT' THEN
    SELECT * INTO r FROM payments WHERE tenant_id = p_tenant AND id = p_id;
    RETURN jsonb_build_object('id', r.id, 'number', r.number, 'kind', r.kind,
      'customer_id', r.customer_id, 'received_date', r.received_date, 'method', r.method,
      'currency', r.currency, 'amount', ls_num(r.amount),
      'processor_fee', ls_num(r.processor_fee), 'tip', ls_num(r.tip),
      'allocations', ls_allocations(p_tenant, 'payment_allocations', 'payment_id', p_id),
      'check_number', r.check_number, 'card_last4', r.card_last4, 'refund_of', r.refund_of);
  ELSIF p_type = 'CREDIT_NOTE' THEN
    SELECT * INTO r FROM credit_notes WHERE tenant_id = p_tenant AND id = p_id;
    RETURN jsonb_build_object('id', r.id, 'number', r.number, 'customer_id', r.customer_id,
      'issue_date', r.issue_date, 'currency', r.currency, 'invoice_id', r.invoice_id,
      'reason', r.reason, 'lines', ls_lines(p_tenant, 'credit_note_lines', 'credit_note_id', p_id),
      'prices_include_tax', r.prices_include_tax, 'subtotal', ls_num(r.subtotal),
      'tax_lines', ls_tax_lines(r.tax_lines), 'total_tax', ls_num(r.total_tax),
      'total', ls_num(r.total), 'disposition', r.disposition,
      'allocations', ls_allocations(p_tenant, 'credit_note_allocations', 'credit_note_id', p_id));
  END IF;
  RAISE EXCEPTION 'ls_payload: unknown aggregate type %', p_type;
END $$;

-- One trigger function for the five aggregate tables; TG_ARGV[0] is the aggregate type,
-- TG_ARGV[1] the id column.
CREATE OR REPLACE FUNCTION ls_outbox_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  agg text := TG_ARGV[0];
  kind text := lower(agg);
  agg_id text := to_jsonb(NEW) ->> TG_ARGV[1];
  cur record;
  etype text;
  customer text;
  key text;
  payload jsonb;
  event_id uuid := gen_random_uuid();
  verb text;
  created_flag text;
  status_flag text;
BEGIN
  EXECUTE format('SELECT version, updated_at, deleted_at, to_jsonb(t) AS j FROM %I t '
                 'WHERE tenant_id = $1 AND %I = $2', TG_TABLE_NAME, TG_ARGV[1])
    INTO cur USING NEW.tenant_id, agg_id;
  created_flag := 'ls.c' || md5(TG_TABLE_NAME || '|' || NEW.tenant_id || '|' || agg_id);
  status_flag := 'ls.s' || md5(TG_TABLE_NAME || '|' || NEW.tenant_id || '|' || agg_id);
  IF cur.version IS DISTINCT FROM NEW.version THEN
    -- changed again later in this transaction: that trigger emits, as a creation if
    -- this was the INSERT (remembered in a transaction-local setting)
    IF TG_OP = 'INSERT' THEN
      PERFORM set_config(created_flag, '1', true);
    ELSIF coalesce(current_setting(status_flag, true), '') = '' THEN
      PERFORM set_config(status_flag, coalesce(to_jsonb(OLD) ->> 'status', '-'), true);
    END IF;
    RETURN NULL;
  END IF;
  IF cur.deleted_at IS NOT NULL THEN
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NOT NULL THEN
      RETURN NULL;  -- already deleted and published
    END IF;
    etype := kind || '.deleted';
  ELSIF TG_OP = 'INSERT' OR OLD.deleted_at IS NOT NULL
        OR coalesce(current_setting(created_flag, true), '') = '1' THEN
    etype := CASE agg WHEN 'INVOICE' THEN 'invoice.created'
                      WHEN 'CREDIT_NOTE' THEN 'credit_note.issued'
                      WHEN 'PAYMENT' THEN CASE WHEN cur.j ->> 'kind' = 'REFUND'
                          THEN 'payment.refunded' ELSE 'payment.received' END
                      ELSE kind || '.created' END;
  ELSIF agg = 'INVOICE' AND coalesce(nullif(current_setting(status_flag, true), ''),
            to_jsonb(OLD) ->> 'status') IS DISTINCT FROM cur.j ->> 'status'
        AND cur.j ->> 'status' IN ('SENT', 'PARTIALLY_PAID', 'PAID', 'VOID') THEN
    etype := CASE cur.j ->> 'status' WHEN 'SENT' THEN 'invoice.sent'
                             WHEN 'PARTIALLY_PAID' THEN 'invoice.partially_paid'
                             WHEN 'PAID' THEN 'invoice.paid' ELSE 'invoice.voided' END;
  ELSE
    etype := kind || '.updated';
  END IF;
  customer := CASE WHEN agg = 'CUSTOMER' THEN agg_id WHEN agg = 'TAX_RATE' THEN agg_id
                   ELSE cur.j ->> 'customer_id' END;
  key := NEW.tenant_id || ':' || customer;
  payload := CASE WHEN etype LIKE '%.deleted' THEN NULL
                  ELSE ls_payload(agg, NEW.tenant_id, agg_id) END;
  verb := CASE WHEN etype LIKE '%.deleted' THEN 'DELETE'
               WHEN etype IN ('customer.created', 'tax_rate.created', 'invoice.created',
                 'payment.received', 'payment.refunded', 'credit_note.issued') THEN 'CREATE'
               ELSE 'UPDATE' END;
  PERFORM pg_advisory_xact_lock(hashtextextended(key, 0));
  INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, tenant_id, message_key,
                      destination)
  VALUES (event_id, agg, agg_id, etype, jsonb_build_object(
      'event_id', event_id, 'event_type', etype, 'op', verb, 'tenant_id', NEW.tenant_id,
      'aggregate_type', agg, 'aggregate_id', agg_id, 'aggregate_version', cur.version,
      'occurred_at', cur.updated_at, 'source', 'OUTBOX', 'correlation_id', NULL,
      'causation_id', NULL, 'payload', payload),
    NEW.tenant_id, key,
    CASE agg WHEN 'CUSTOMER' THEN 'crm.customers' WHEN 'TAX_RATE' THEN 'crm.tax-rates'
             ELSE 'crm.financial-events' END);
  RETURN NULL;
END $$;

DO $$
DECLARE spec text[];
BEGIN
  FOREACH spec SLICE 1 IN ARRAY ARRAY[['customers','CUSTOMER','id'],
      ['tax_rates','TAX_RATE','code'], ['invoices','INVOICE','id'],
      ['payments','PAYMENT','id'], ['credit_notes','CREDIT_NOTE','id']] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', spec[1] || '_outbox', spec[1]);
    EXECUTE format('CREATE CONSTRAINT TRIGGER %I AFTER INSERT OR UPDATE ON %I '
                   'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW '
                   'EXECUTE FUNCTION ls_outbox_trigger(%L, %L)',
                   spec[1] || '_outbox', spec[1], spec[2], spec[3]);
  END LOOP;
END $$;
