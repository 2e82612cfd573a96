"""Initial schema: tenants, catalog, orders, payment ledger, ads, stats, tracking, FX.

Revision ID: 0001_initial
Revises:
Create Date: 2026-01-01 00:00:00

Besides the tables this migration installs the database-side guarantees the audit asks
for, so that they hold whatever code (or person) connects:

- row-level security, enabled and FORCED, on every seller-owned table and on every one
  of their partitions (TENANT-2; PostgreSQL: a partition queried
  directly ignores its parent's policies);
- privileges: the application role owns nothing, holds privileges on partitioned
  parents only, and only SELECT/INSERT on the append-only financial tables (MONEY-1);
- triggers that make ``payment_events`` and ``order_events`` append-only even for the
  owner, and ``pricing_rules`` append-only except for closing an open rule;
- monthly range partitions with a DEFAULT partition each, and the plpgsql functions that
  create partitions ahead (moving rows out of the default partition) and drop expired
  raw partitions (STORE-1).

Tables with ``PARTITION BY`` are written as SQL; Alembic's ``create_table`` cannot say it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of what the models say, so this migration never changes when they do.
SELLER_OWNED_TABLES = (
    "users",
    "refresh_tokens",
    "products",
    "sellpages",
    "pricing_rules",
    "orders",
    "order_payments",
    "order_events",
    "payment_events",
    "ad_accounts",
    "pages",
    "ad_posts",
    "campaigns",
    "adsets",
    "creatives",
    "ads",
    "assets",
    "creative_assets",
    "ad_stats_raw",
    "ad_stats_daily",
    "sellpage_stats_daily",
    "tracking_records",
)
PARTITIONED_TABLES = (
    "orders",
    "order_events",
    "ad_stats_raw",
    "ad_stats_daily",
    "sellpage_stats_daily",
)
APPEND_ONLY_TABLES = ("payment_events", "order_events")

# What the app role may do, table by table (MONEY-1: financial facts are insert-only).
APP_PRIVILEGES: dict[str, str] = {
    **dict.fromkeys(SELLER_OWNED_TABLES, "SELECT, INSERT, UPDATE, DELETE"),
    "sellers": "SELECT, INSERT, UPDATE",
    "payment_events": "SELECT, INSERT",
    "order_events": "SELECT, INSERT",
    # UPDATE is column-limited below: closing a rule is the only change there is.
    "pricing_rules": "SELECT, INSERT",
    "webhook_inbox": "SELECT, INSERT, UPDATE",
    "fx_rates": "SELECT",
    "public_sellpage_slugs": "SELECT",
    # login_identities: nothing; the app calls pixecom_find_login().
}

# TENANT-2: no scope set → NULL → no row matches; a row of another seller → refused.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"
SELLER_ROOT_PREDICATE = "id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"

FUNCTIONS_SQL = r"""
CREATE FUNCTION pixecom_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- MONEY-1: financial facts are append-only, for the owner too. A correction is a new
    -- fact (a refund, a reversed chargeback), never an edit.
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
COMMENT ON FUNCTION pixecom_forbid_change() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on append-only tables (MONEY-1).';

CREATE FUNCTION pixecom_pricing_rules_guard() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- MONEY-1: PricingRule is append-only by design. The one change allowed closes an
    -- open rule; ck_pricing_rules_window then checks effective_until >= effective_from.
    IF TG_OP = 'UPDATE'
       AND OLD.effective_until IS NULL
       AND NEW.effective_until IS NOT NULL
       AND (to_jsonb(NEW) - 'effective_until') = (to_jsonb(OLD) - 'effective_until')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'pricing_rules is append-only: % refused (the only change allowed sets '
        'effective_until of an open rule)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
COMMENT ON FUNCTION pixecom_pricing_rules_guard() IS
    'Trigger: pricing_rules rows are never deleted; an update may only close an open rule.';

CREATE FUNCTION pixecom_sync_login_identity() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF lower(btrim(OLD.email)) = lower(btrim(NEW.email)) THEN
            RETURN NULL;
        END IF;
        DELETE FROM public.login_identities
         WHERE email_normalized = lower(btrim(OLD.email))
           AND seller_id = OLD.seller_id AND user_id = OLD.id;
    END IF;
    INSERT INTO public.login_identities (email_normalized, seller_id, user_id)
    VALUES (lower(btrim(NEW.email)), NEW.seller_id, NEW.id);
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pixecom_sync_login_identity() IS
    'Trigger on users: keeps the global login directory in step (deletes cascade by FK).';

CREATE FUNCTION pixecom_sync_public_slug() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.slug = NEW.slug THEN
            RETURN NULL;
        END IF;
        UPDATE public.public_sellpage_slugs SET slug = NEW.slug
         WHERE seller_id = NEW.seller_id AND sellpage_id = NEW.id;
    ELSE
        INSERT INTO public.public_sellpage_slugs (slug, seller_id, sellpage_id)
        VALUES (NEW.slug, NEW.seller_id, NEW.id);
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pixecom_sync_public_slug() IS
    'Trigger on sellpages: claims the slug in the public directory (deletes cascade by FK).';

CREATE FUNCTION pixecom_find_login(email text)
RETURNS TABLE (seller_id uuid, user_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
    SELECT li.seller_id, li.user_id
      FROM public.login_identities AS li
     WHERE li.email_normalized = lower(btrim($1))
$fn$;
COMMENT ON FUNCTION pixecom_find_login(text) IS
    'Login lookup before any seller scope exists: one exact email in, at most one row out.';

CREATE FUNCTION pixecom_secure_partition(p_parent regclass, p_partition regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    v_predicate constant text :=
        'seller_id = NULLIF(current_setting(''app.current_seller_id'', true), '''')::uuid';
    v_trigger record;
BEGIN
    -- PostgreSQL: a partition queried directly ignores its parent's policies, so each
    -- partition gets its own; the app role holds no privilege on partitions anyway.
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_partition);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_partition);
    IF NOT EXISTS (
        SELECT 1 FROM pg_policy WHERE polrelid = p_partition AND polname = 'seller_isolation'
    ) THEN
        EXECUTE format('CREATE POLICY seller_isolation ON %s USING (%s) WITH CHECK (%s)',
                       p_partition, v_predicate, v_predicate);
    END IF;
    EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC', p_partition);
    -- Row triggers are cloned to partitions; statement-level TRUNCATE triggers are not.
    FOR v_trigger IN
        SELECT t.tgname, t.tgfoid::regproc AS func
          FROM pg_trigger AS t
         WHERE t.tgrelid = p_parent AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger WHERE tgrelid = p_partition AND tgname = v_trigger.tgname
        ) THEN
            EXECUTE format(
                'CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                v_trigger.tgname, p_partition, v_trigger.func);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pixecom_secure_partition(regclass, regclass) IS
    'Gives a partition the parent''s row-level security and TRUNCATE guard.';

CREATE FUNCTION pixecom_ensure_partitions(
    p_table regclass, p_from date, p_to date, p_drain_default boolean DEFAULT true
)
RETURNS TABLE (partition_name text, moved_rows bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $fn$
DECLARE
    v_schema text;
    v_table text;
    v_key text;
    v_default regclass;
    v_unforced boolean := false;
    v_disabled text[] := '{}';
    v_trigger text;
    v_columns text;
    v_month date;
    v_name text;
    v_lo text;
    v_hi text;
    v_moved bigint;
    v_has_rows boolean;
BEGIN
    IF p_to < p_from THEN
        RAISE EXCEPTION 'p_to (%) is before p_from (%)', p_to, p_from;
    END IF;
    -- Two maintenance runs on one table wait for each other instead of racing.
    PERFORM pg_advisory_xact_lock(hashtextextended('pixecom_partitions:' || p_table::oid, 0));

    SELECT n.nspname, c.relname INTO v_schema, v_table
      FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = p_table;
    SELECT a.attname, NULLIF(pt.partdefid, 0)::regclass INTO v_key, v_default
      FROM pg_partitioned_table AS pt
      JOIN pg_attribute AS a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = p_table AND pt.partstrat = 'r' AND pt.partnatts = 1;
    IF v_key IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', p_table;
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_columns
      FROM pg_attribute
     WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped;

    IF v_default IS NOT NULL AND row_security_active(v_default) THEN
        -- A non-superuser owner is itself subject to FORCE ROW LEVEL SECURITY and would
        -- see no row of the default partition. Lift FORCE for this transaction only (the
        -- ALTER holds an ACCESS EXCLUSIVE lock until commit, so nobody else sees it).
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', v_default);
        v_unforced := true;
    END IF;

    FOR v_month IN
        SELECT m::date
          FROM generate_series(date_trunc('month', p_from), date_trunc('month', p_to),
                               interval '1 month') AS m
        UNION
        SELECT d.month FROM pixecom_default_partition_months(v_default, v_key) AS d(month)
         WHERE p_drain_default
        ORDER BY 1
    LOOP
        v_name := v_table || '_p' || to_char(v_month, 'YYYYMM');
        IF to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL THEN
            CONTINUE;
        END IF;
        v_lo := v_month::text;
        v_hi := (v_month + interval '1 month')::date::text;
        v_moved := 0;
        v_has_rows := false;
        IF v_default IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= %L AND %I < %L)',
                           v_default, v_key, v_lo, v_key, v_hi)
               INTO v_has_rows;
        END IF;

        IF v_has_rows THEN
            -- Rows of this month already sit in the default partition, which would make
            -- creating the partition fail. Set them aside, create the partition, put them
            -- back: one transaction, nothing lost (STORE-1: no row is ever refused).
            -- (Not CREATE + ATTACH: ATTACH validates foreign keys with a query that FORCE
            -- ROW LEVEL SECURITY hides the referenced rows from, for a non-superuser owner.)
            IF cardinality(v_disabled) = 0 THEN
                -- The append-only guard refuses DELETE; it is lifted on the default
                -- partition for this transaction only, for rows that are re-inserted.
                SELECT coalesce(array_agg(tgname), '{}') INTO v_disabled
                  FROM pg_trigger
                 WHERE tgrelid = v_default AND NOT tgisinternal AND tgenabled <> 'D'
                   AND (tgtype & 24) <> 0;  -- DELETE or UPDATE triggers
                FOREACH v_trigger IN ARRAY v_disabled LOOP
                    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', v_default, v_trigger);
                END LOOP;
            END IF;
            EXECUTE format('CREATE TEMPORARY TABLE pixecom_moving ON COMMIT DROP AS'
                           ' SELECT %s FROM %s WHERE %I >= %L AND %I < %L',
                           v_columns, v_default, v_key, v_lo, v_key, v_hi);
            EXECUTE format('DELETE FROM %s WHERE %I >= %L AND %I < %L',
                           v_default, v_key, v_lo, v_key, v_hi);
        END IF;
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       v_schema, v_name, p_table, v_lo, v_hi);
        IF v_has_rows THEN
            -- Straight into the partition, before it gets its policy: foreign keys are
            -- checked row by row, as the owner of the referenced tables.
            EXECUTE format('INSERT INTO %I.%I (%s) SELECT %s FROM pg_temp.pixecom_moving',
                           v_schema, v_name, v_columns, v_columns);
            GET DIAGNOSTICS v_moved = ROW_COUNT;
            DROP TABLE pg_temp.pixecom_moving;
        END IF;
        PERFORM pixecom_secure_partition(p_table, format('%I.%I', v_schema, v_name)::regclass);
        partition_name := v_name;
        moved_rows := v_moved;
        RETURN NEXT;
    END LOOP;

    FOREACH v_trigger IN ARRAY v_disabled LOOP
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', v_default, v_trigger);
    END LOOP;
    IF v_unforced THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_default);
    END IF;
END
$fn$;
COMMENT ON FUNCTION pixecom_ensure_partitions(regclass, date, date, boolean) IS
    'Creates the monthly partitions <table>_pYYYYMM covering p_from..p_to (and, with '
    'p_drain_default, every month that has rows in the default partition, moving them), '
    'each with row-level security. Returns what it created. Idempotent.';

CREATE FUNCTION pixecom_default_partition_months(p_default regclass, p_key text)
RETURNS SETOF date
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
SET timezone = 'UTC'
AS $fn$
BEGIN
    IF p_default IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format('SELECT DISTINCT date_trunc(''month'', %I)::date FROM %s',
                                p_key, p_default);
END
$fn$;
COMMENT ON FUNCTION pixecom_default_partition_months(regclass, text) IS
    'Months (first days, UTC) that have rows in a default partition.';

CREATE FUNCTION pixecom_drop_partitions_before(p_table regclass, p_before date)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $fn$
DECLARE
    v_partition record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pixecom_partitions:' || p_table::oid, 0));
    -- MONEY-1: the financial history is never expired by maintenance.
    IF EXISTS (
        SELECT 1 FROM pg_trigger
         WHERE tgrelid = p_table AND tgfoid = 'pixecom_forbid_change'::regproc
    ) THEN
        RAISE EXCEPTION '% is append-only: its partitions are never dropped', p_table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR v_partition IN
        SELECT c.oid::regclass AS partition, c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \(''([^'']+)''\)'))[1] AS upper_bound
          FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent = p_table
         ORDER BY c.relname
    LOOP
        -- DEFAULT and MAXVALUE-bounded partitions have no quoted upper bound: kept.
        IF v_partition.upper_bound IS NOT NULL
           AND v_partition.upper_bound::timestamptz <= p_before::timestamptz
        THEN
            EXECUTE format('DROP TABLE %s', v_partition.partition);
            RETURN NEXT v_partition.relname::text;
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION pixecom_drop_partitions_before(regclass, date) IS
    'Drops the partitions whose whole range lies before p_before (STORE-3: retention). '
    'Refuses append-only tables.';
"""

FUNCTION_SIGNATURES = (
    "pixecom_forbid_change()",
    "pixecom_pricing_rules_guard()",
    "pixecom_sync_login_identity()",
    "pixecom_sync_public_slug()",
    "pixecom_find_login(text)",
    "pixecom_secure_partition(regclass, regclass)",
    "pixecom_ensure_partitions(regclass, date, date, boolean)",
    "pixecom_default_partition_months(regclass, text)",
    "pixecom_drop_partitions_before(regclass, date)",
)

PARTITIONED_TABLES_SQL = r"""
CREATE TABLE orders (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    status TEXT DEFAULT 'PENDING' NOT NULL,
    sellpage_id UUID,
    attributed_at TIMESTAMP WITH TIME ZONE,
    currency CHAR(3) NOT NULL,
    subtotal_minor BIGINT NOT NULL,
    total_minor BIGINT NOT NULL,
    customer_email TEXT NOT NULL,
    payment_gateway TEXT,
    payment_id TEXT,
    CONSTRAINT pk_orders PRIMARY KEY (seller_id, id, created_at),
    CONSTRAINT fk_orders_seller_id_sellpage_id_sellpages
        FOREIGN KEY (seller_id, sellpage_id) REFERENCES sellpages (seller_id, id),
    CONSTRAINT ck_orders_status_allowed CHECK (status IN ('PENDING', 'CONFIRMED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
    CONSTRAINT ck_orders_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_orders_subtotal_minor_non_negative CHECK (subtotal_minor >= 0 AND total_minor >= 0),
    CONSTRAINT fk_orders_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (created_at);
CREATE INDEX ix_orders_seller_id_status ON orders (seller_id, status);
CREATE INDEX ix_orders_seller_id_created_at ON orders (seller_id, created_at);
-- STORE-4: revenue attribution by sellpage over paid-like orders.
CREATE INDEX ix_orders_revenue ON orders (seller_id, sellpage_id, created_at)
    WHERE status IN ('PAID', 'SHIPPED', 'DELIVERED', 'PARTIALLY_REFUNDED', 'REFUNDED');

-- No FK to orders (partitioned): see the OrderPayment model.
CREATE TABLE order_events (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    order_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    payload JSONB DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT pk_order_events PRIMARY KEY (seller_id, id, created_at),
    CONSTRAINT ck_order_events_event_type_allowed CHECK (event_type IN ('CREATED', 'STATUS_CHANGED', 'ATTRIBUTED', 'PAYMENT_RECORDED', 'TRACKING_UPDATED', 'NOTE')),
    CONSTRAINT ck_order_events_from_status_allowed CHECK (from_status IS NULL OR from_status IN ('PENDING', 'CONFIRMED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
    CONSTRAINT ck_order_events_to_status_allowed CHECK (to_status IS NULL OR to_status IN ('PENDING', 'CONFIRMED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
    CONSTRAINT fk_order_events_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (created_at);
CREATE INDEX ix_order_events_seller_id_order_id_created_at ON order_events (seller_id, order_id, created_at);

CREATE TABLE ad_stats_raw (
    seller_id UUID NOT NULL,
    id BIGINT GENERATED BY DEFAULT AS IDENTITY,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    network TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    date_start DATE NOT NULL,
    date_stop DATE NOT NULL,
    fetched_at TIMESTAMP WITH TIME ZONE NOT NULL,
    spend_micros BIGINT NOT NULL,
    impressions BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    purchase_value_micros BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    ingested_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_ad_stats_raw PRIMARY KEY (seller_id, id, date_start),
    -- STORE-2: dedup key; a retried fetch is the same row.
    CONSTRAINT uq_ad_stats_raw_fetch UNIQUE (seller_id, network, entity_type, entity_id, date_start, date_stop, fetched_at),
    CONSTRAINT ck_ad_stats_raw_network_format CHECK (network ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ck_ad_stats_raw_entity_type_allowed CHECK (entity_type IN ('campaign', 'adset', 'ad')),
    CONSTRAINT ck_ad_stats_raw_date_range CHECK (date_stop >= date_start),
    CONSTRAINT ck_ad_stats_raw_spend_micros_non_negative CHECK (spend_micros >= 0 AND impressions >= 0 AND clicks >= 0 AND purchases >= 0 AND purchase_value_micros >= 0),
    CONSTRAINT ck_ad_stats_raw_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT fk_ad_stats_raw_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (date_start);
-- STORE-4 (existing good index): aggregation by entity.
CREATE INDEX ix_ad_stats_raw_entity_day ON ad_stats_raw (seller_id, entity_type, entity_id, date_start);
-- STORE-4 (missing index): aggregation worker grouping.
CREATE INDEX ix_ad_stats_raw_grouping ON ad_stats_raw (entity_type, entity_id, date_start, date_stop);
-- STORE-4 (missing index): stale data cleanup.
CREATE INDEX ix_ad_stats_raw_fetched_at ON ad_stats_raw (fetched_at);
-- STORE-4: aggregation query pattern.
CREATE INDEX ix_ad_stats_raw_aggregation ON ad_stats_raw (seller_id, entity_type, date_start, date_stop);

CREATE TABLE ad_stats_daily (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    network TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    stat_date DATE NOT NULL,
    snapshot_fetched_at TIMESTAMP WITH TIME ZONE NOT NULL,
    spend_micros BIGINT NOT NULL,
    impressions BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    purchases BIGINT NOT NULL,
    purchase_value_micros BIGINT NOT NULL,
    currency CHAR(3) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_ad_stats_daily PRIMARY KEY (seller_id, network, entity_type, entity_id, stat_date),
    CONSTRAINT ck_ad_stats_daily_network_format CHECK (network ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ck_ad_stats_daily_entity_type_allowed CHECK (entity_type IN ('campaign', 'adset', 'ad')),
    CONSTRAINT ck_ad_stats_daily_spend_micros_non_negative CHECK (spend_micros >= 0 AND impressions >= 0 AND clicks >= 0 AND purchases >= 0 AND purchase_value_micros >= 0),
    CONSTRAINT ck_ad_stats_daily_currency_iso4217 CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT fk_ad_stats_daily_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (stat_date);
-- STORE-4 (existing good index): dashboard queries.
CREATE INDEX ix_ad_stats_daily_seller_id_stat_date ON ad_stats_daily (seller_id, stat_date);

CREATE TABLE sellpage_stats_daily (
    seller_id UUID NOT NULL,
    id UUID DEFAULT gen_random_uuid() NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    sellpage_id UUID NOT NULL,
    stat_date DATE NOT NULL,
    reporting_currency CHAR(3) NOT NULL,
    spend_minor BIGINT NOT NULL,
    gross_revenue_minor BIGINT NOT NULL,
    refunds_minor BIGINT NOT NULL,
    chargebacks_minor BIGINT NOT NULL,
    net_revenue_minor BIGINT NOT NULL,
    orders_count INTEGER NOT NULL,
    roas NUMERIC(20, 6),
    needs_reaggregation BOOLEAN DEFAULT false NOT NULL,
    computed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_sellpage_stats_daily PRIMARY KEY (seller_id, sellpage_id, stat_date),
    CONSTRAINT fk_sellpage_stats_daily_seller_id_sellpage_id_sellpages
        FOREIGN KEY (seller_id, sellpage_id) REFERENCES sellpages (seller_id, id),
    CONSTRAINT ck_sellpage_stats_daily_reporting_currency_iso4217 CHECK (reporting_currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck_sellpage_stats_daily_spend_minor_non_negative CHECK (spend_minor >= 0 AND gross_revenue_minor >= 0 AND refunds_minor >= 0 AND chargebacks_minor >= 0 AND orders_count >= 0),
    -- STATS-4: ROAS is NULL without spend, never revenue/0.
    CONSTRAINT ck_sellpage_stats_daily_roas_needs_spend CHECK (spend_minor > 0 OR roas IS NULL),
    CONSTRAINT fk_sellpage_stats_daily_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
) PARTITION BY RANGE (stat_date);
CREATE INDEX ix_sellpage_stats_daily_pending ON sellpage_stats_daily (seller_id, stat_date)
    WHERE needs_reaggregation;
"""

TRIGGERS_SQL = """
CREATE TRIGGER forbid_change BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION pixecom_forbid_change();
CREATE TRIGGER forbid_truncate BEFORE TRUNCATE ON payment_events
    FOR EACH STATEMENT EXECUTE FUNCTION pixecom_forbid_change();
-- Row triggers on a partitioned table are cloned to every partition, present and future.
CREATE TRIGGER forbid_change BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION pixecom_forbid_change();
CREATE TRIGGER forbid_truncate BEFORE TRUNCATE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION pixecom_forbid_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON pricing_rules
    FOR EACH ROW EXECUTE FUNCTION pixecom_pricing_rules_guard();
CREATE TRIGGER forbid_truncate BEFORE TRUNCATE ON pricing_rules
    FOR EACH STATEMENT EXECUTE FUNCTION pixecom_forbid_change();
CREATE TRIGGER sync_login_identity AFTER INSERT OR UPDATE OF email ON users
    FOR EACH ROW EXECUTE FUNCTION pixecom_sync_login_identity();
CREATE TRIGGER sync_public_slug AFTER INSERT OR UPDATE OF slug ON sellpages
    FOR EACH ROW EXECUTE FUNCTION pixecom_sync_public_slug();
"""


def _app_role() -> str:
    """The application role, quoted as an identifier (it comes from configuration)."""
    context = op.get_context()
    role = context.config.attributes["app_role"] if context.config is not None else None
    if not role:
        raise RuntimeError("the migration needs config.attributes['app_role']")
    return str(context.dialect.identifier_preparer.quote_identifier(str(role)))


def _create_ordinary_tables() -> None:
    op.create_table(
        "sellers",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("reporting_currency", sa.CHAR(length=3), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        sa.Column("tier", sa.Text(), server_default="low", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reporting_currency ~ '^[A-Z]{3}$'", name=op.f("ck_sellers_reporting_currency_iso4217")
        ),
        sa.CheckConstraint(
            "tier IN ('low', 'medium', 'high')", name=op.f("ck_sellers_tier_allowed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sellers")),
    )
    op.create_table(
        "fx_rates",
        sa.Column("rate_date", sa.Date(), nullable=False),
        sa.Column("base_currency", sa.CHAR(length=3), nullable=False),
        sa.Column("quote_currency", sa.CHAR(length=3), nullable=False),
        sa.Column("rate", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "base_currency ~ '^[A-Z]{3}$'", name=op.f("ck_fx_rates_base_currency_iso4217")
        ),
        sa.CheckConstraint(
            "quote_currency ~ '^[A-Z]{3}$'", name=op.f("ck_fx_rates_quote_currency_iso4217")
        ),
        sa.CheckConstraint("rate > 0", name=op.f("ck_fx_rates_rate_positive")),
        sa.PrimaryKeyConstraint(
            "rate_date", "base_currency", "quote_currency", name=op.f("pk_fx_rates")
        ),
    )
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "headers", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("body", postgresql.BYTEA(), nullable=False),
        sa.Column("status", sa.Text(), server_default="RECEIVED", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seller_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "gateway ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_webhook_inbox_gateway_format")
        ),
        sa.CheckConstraint(
            "status IN ('RECEIVED', 'PROCESSED', 'FAILED', 'DEFERRED')",
            name=op.f("ck_webhook_inbox_status_allowed"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_webhook_inbox_attempts_non_negative")),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_webhook_inbox_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint("gateway", "event_id", name=op.f("uq_webhook_inbox_gateway_event_id")),
    )
    op.create_index(
        "ix_webhook_inbox_pending",
        "webhook_inbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where="status IN ('RECEIVED', 'DEFERRED')",
    )
    op.create_table(
        "users",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), server_default="MEMBER", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('OWNER', 'ADMIN', 'MEMBER')", name=op.f("ck_users_role_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_users_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_users")),
        sa.UniqueConstraint("seller_id", "email", name=op.f("uq_users_seller_id_email")),
    )
    op.create_table(
        "login_identities",
        sa.Column("email_normalized", sa.Text(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "email_normalized = lower(btrim(email_normalized))",
            name=op.f("ck_login_identities_normalized"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "user_id"],
            ["users.seller_id", "users.id"],
            name=op.f("fk_login_identities_seller_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("email_normalized", name=op.f("pk_login_identities")),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seller_id", "replaced_by"],
            ["refresh_tokens.seller_id", "refresh_tokens.id"],
            name="fk_refresh_tokens_replaced_by_refresh_tokens",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "user_id"],
            ["users.seller_id", "users.id"],
            name=op.f("fk_refresh_tokens_seller_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_refresh_tokens_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint(
            "seller_id", "token_hash", name=op.f("uq_refresh_tokens_seller_id_token_hash")
        ),
    )
    op.create_index(
        op.f("ix_refresh_tokens_seller_id_family_id"),
        "refresh_tokens",
        ["seller_id", "family_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_refresh_tokens_seller_id_user_id"),
        "refresh_tokens",
        ["seller_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "products",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'INACTIVE', 'ARCHIVED')", name=op.f("ck_products_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_products_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_products")),
        sa.UniqueConstraint("seller_id", "sku", name=op.f("uq_products_seller_id_sku")),
    )
    op.create_table(
        "sellpages",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="DRAFT", nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column(
            "content", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name=op.f("ck_sellpages_slug_format")
        ),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')", name=op.f("ck_sellpages_status_allowed")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "product_id"],
            ["products.seller_id", "products.id"],
            name=op.f("fk_sellpages_seller_id_product_id_products"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_sellpages_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_sellpages")),
        sa.UniqueConstraint("seller_id", "slug", name=op.f("uq_sellpages_seller_id_slug")),
    )
    op.create_table(
        "public_sellpage_slugs",
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("sellpage_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["seller_id", "sellpage_id"],
            ["sellpages.seller_id", "sellpages.id"],
            name=op.f("fk_public_sellpage_slugs_seller_id_sellpage_id_sellpages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_public_sellpage_slugs")),
        sa.UniqueConstraint(
            "seller_id", "sellpage_id", name=op.f("uq_public_sellpage_slugs_seller_id_sellpage_id")
        ),
    )
    op.create_table(
        "pricing_rules",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sellpage_id", sa.Uuid(), nullable=True),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_pricing_rules_currency_iso4217")
        ),
        sa.CheckConstraint(
            "effective_until IS NULL OR effective_until >= effective_from",
            name=op.f("ck_pricing_rules_window"),
        ),
        sa.CheckConstraint(
            "price_minor >= 0", name=op.f("ck_pricing_rules_price_minor_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "product_id"],
            ["products.seller_id", "products.id"],
            name=op.f("fk_pricing_rules_seller_id_product_id_products"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "sellpage_id"],
            ["sellpages.seller_id", "sellpages.id"],
            name=op.f("fk_pricing_rules_seller_id_sellpage_id_sellpages"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_pricing_rules_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_pricing_rules")),
    )
    op.create_index(
        op.f("ix_pricing_rules_seller_id_product_id_effective_from"),
        "pricing_rules",
        ["seller_id", "product_id", "effective_from"],
        unique=False,
    )
    op.create_index(
        "uq_pricing_rules_open_rule",
        "pricing_rules",
        ["seller_id", "product_id", "sellpage_id"],
        unique=True,
        postgresql_where="effective_until IS NULL",
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "order_payments",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("order_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "gateway ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_order_payments_gateway_format")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_order_payments_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_order_payments")),
        sa.UniqueConstraint(
            "seller_id",
            "gateway",
            "payment_id",
            name=op.f("uq_order_payments_seller_id_gateway_payment_id"),
        ),
        sa.UniqueConstraint(
            "seller_id",
            "order_id",
            "gateway",
            name=op.f("uq_order_payments_seller_id_order_id_gateway"),
        ),
    )
    op.create_table(
        "payment_events",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("gateway_reference", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("gateway_event_id", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint(
            "currency ~ '^[A-Z]{3}$'", name=op.f("ck_payment_events_currency_iso4217")
        ),
        sa.CheckConstraint(
            "event_type IN ('AUTHORIZED', 'CAPTURED', 'REFUNDED', 'CHARGEBACK', 'CHARGEBACK_REVERSED', 'FAILED')",
            name=op.f("ck_payment_events_event_type_allowed"),
        ),
        sa.CheckConstraint(
            "gateway ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_payment_events_gateway_format")
        ),
        sa.CheckConstraint(
            "amount_minor >= 0", name=op.f("ck_payment_events_amount_minor_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_payment_events_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint(
            "seller_id", "gateway", "gateway_reference", "event_type", name="uq_payment_events_fact"
        ),
    )
    op.create_index(
        op.f("ix_payment_events_seller_id_order_id_recorded_at"),
        "payment_events",
        ["seller_id", "order_id", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "tracking_records",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="not_found", nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint(
            "carrier ~ '^[a-z0-9][a-z0-9_-]*$'", name=op.f("ck_tracking_records_carrier_format")
        ),
        sa.CheckConstraint(
            "status IN ('info_received', 'in_transit', 'out_for_delivery', 'available_for_pickup', 'delivered', 'delivery_failure', 'exception', 'expired', 'not_found')",
            name=op.f("ck_tracking_records_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_tracking_records_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_tracking_records")),
        sa.UniqueConstraint(
            "seller_id",
            "carrier",
            "tracking_number",
            name=op.f("uq_tracking_records_seller_id_carrier_tracking_number"),
        ),
    )
    op.create_index(
        "ix_tracking_records_due",
        "tracking_records",
        ["last_checked_at"],
        unique=False,
        postgresql_where="status NOT IN ('delivered', 'expired')",
    )
    op.create_index(
        op.f("ix_tracking_records_seller_id_order_id"),
        "tracking_records",
        ["seller_id", "order_id"],
        unique=False,
    )
    op.create_table(
        "ad_accounts",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), nullable=False),
        sa.Column("token_ciphertext", postgresql.BYTEA(), nullable=True),
        sa.Column("token_key_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("needs_reconnect", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_ad_accounts_currency_iso4217")),
        sa.CheckConstraint(
            "network ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_ad_accounts_network_format")
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'DISCONNECTED')",
            name=op.f("ck_ad_accounts_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_ad_accounts_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_ad_accounts")),
        sa.UniqueConstraint(
            "seller_id",
            "network",
            "external_id",
            name=op.f("uq_ad_accounts_seller_id_network_external_id"),
        ),
    )
    op.create_table(
        "pages",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("network", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.CheckConstraint("network ~ '^[a-z][a-z0-9_]*$'", name=op.f("ck_pages_network_format")),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_pages_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_pages")),
        sa.UniqueConstraint(
            "seller_id",
            "network",
            "external_id",
            name=op.f("uq_pages_seller_id_network_external_id"),
        ),
    )
    op.create_table(
        "ad_posts",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("page_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("permalink", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'ARCHIVED', 'DELETED')",
            name=op.f("ck_ad_posts_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "page_id"],
            ["pages.seller_id", "pages.id"],
            name=op.f("fk_ad_posts_seller_id_page_id_pages"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_ad_posts_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_ad_posts")),
        sa.UniqueConstraint(
            "seller_id",
            "page_id",
            "external_id",
            name=op.f("uq_ad_posts_seller_id_page_id_external_id"),
        ),
    )
    op.create_index(
        op.f("ix_ad_posts_page_id_seller_id"), "ad_posts", ["page_id", "seller_id"], unique=False
    )
    op.create_table(
        "campaigns",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ad_account_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("sellpage_id", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'ARCHIVED', 'DELETED')",
            name=op.f("ck_campaigns_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "ad_account_id"],
            ["ad_accounts.seller_id", "ad_accounts.id"],
            name=op.f("fk_campaigns_seller_id_ad_account_id_ad_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "sellpage_id"],
            ["sellpages.seller_id", "sellpages.id"],
            name=op.f("fk_campaigns_seller_id_sellpage_id_sellpages"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_campaigns_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint(
            "seller_id",
            "ad_account_id",
            "external_id",
            name=op.f("uq_campaigns_seller_id_ad_account_id_external_id"),
        ),
    )
    op.create_index(op.f("ix_campaigns_sellpage_id"), "campaigns", ["sellpage_id"], unique=False)
    op.create_index(
        op.f("ix_campaigns_sellpage_id_seller_id"),
        "campaigns",
        ["sellpage_id", "seller_id"],
        unique=False,
    )
    op.create_table(
        "adsets",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'ARCHIVED', 'DELETED')",
            name=op.f("ck_adsets_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "campaign_id"],
            ["campaigns.seller_id", "campaigns.id"],
            name=op.f("fk_adsets_seller_id_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_adsets_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_adsets")),
        sa.UniqueConstraint(
            "seller_id",
            "campaign_id",
            "external_id",
            name=op.f("uq_adsets_seller_id_campaign_id_external_id"),
        ),
    )
    op.create_table(
        "creatives",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="DRAFT", nullable=False),
        sa.Column("headline", sa.Text(), nullable=True),
        sa.Column("primary_text", sa.Text(), nullable=True),
        sa.Column("call_to_action", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'READY', 'ACTIVE', 'ARCHIVED')",
            name=op.f("ck_creatives_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_creatives_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_creatives")),
    )
    op.create_index(
        "ix_creatives_seller_id_status_live",
        "creatives",
        ["seller_id", "status"],
        unique=False,
        postgresql_where="status <> 'ARCHIVED'",
    )
    op.create_table(
        "assets",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_assets_sha256_hex")),
        sa.CheckConstraint(
            "status IN ('PENDING', 'READY', 'REJECTED')", name=op.f("ck_assets_status_allowed")
        ),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_assets_size_bytes_non_negative")),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_assets_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_assets")),
        sa.UniqueConstraint("seller_id", "sha256", name=op.f("uq_assets_seller_id_sha256")),
        sa.UniqueConstraint(
            "seller_id", "storage_key", name=op.f("uq_assets_seller_id_storage_key")
        ),
    )
    op.create_table(
        "creative_assets",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("creative_id", sa.Uuid(), nullable=False),
        sa.Column("asset_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Text(), server_default="PRIMARY", nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "role IN ('PRIMARY', 'THUMBNAIL', 'VARIANT')",
            name=op.f("ck_creative_assets_role_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "asset_id"],
            ["assets.seller_id", "assets.id"],
            name=op.f("fk_creative_assets_seller_id_asset_id_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "creative_id"],
            ["creatives.seller_id", "creatives.id"],
            name=op.f("fk_creative_assets_seller_id_creative_id_creatives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_creative_assets_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint(
            "seller_id", "creative_id", "asset_id", name=op.f("pk_creative_assets")
        ),
    )
    op.create_index(
        op.f("ix_creative_assets_asset_id"), "creative_assets", ["asset_id"], unique=False
    )
    op.create_table(
        "ads",
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("adset_id", sa.Uuid(), nullable=False),
        sa.Column("creative_id", sa.Uuid(), nullable=True),
        sa.Column("ad_post_id", sa.Uuid(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'ARCHIVED', 'DELETED')",
            name=op.f("ck_ads_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "ad_post_id"],
            ["ad_posts.seller_id", "ad_posts.id"],
            name=op.f("fk_ads_seller_id_ad_post_id_ad_posts"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "adset_id"],
            ["adsets.seller_id", "adsets.id"],
            name=op.f("fk_ads_seller_id_adset_id_adsets"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id", "creative_id"],
            ["creatives.seller_id", "creatives.id"],
            name=op.f("fk_ads_seller_id_creative_id_creatives"),
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_ads_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", "id", name=op.f("pk_ads")),
        sa.UniqueConstraint(
            "seller_id",
            "adset_id",
            "external_id",
            name=op.f("uq_ads_seller_id_adset_id_external_id"),
        ),
    )


def _partitioned_tables() -> None:
    op.execute(PARTITIONED_TABLES_SQL)
    for table in PARTITIONED_TABLES:
        # A row for a month without a partition lands here instead of being refused;
        # pixecom_ensure_partitions moves it out when its month is created.
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def _row_level_security() -> None:
    for table in SELLER_OWNED_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY seller_isolation ON {table} "
            f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
        )
    op.execute("ALTER TABLE sellers ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE sellers FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY seller_self ON sellers "
        f"USING ({SELLER_ROOT_PREDICATE}) WITH CHECK ({SELLER_ROOT_PREDICATE})"
    )
    for table in PARTITIONED_TABLES:
        op.execute(f"SELECT pixecom_secure_partition('{table}', '{table}_default')")


def _partitions() -> None:
    # Two months back to three months ahead of the day the migration runs; the
    # maintenance task keeps creating months ahead from then on.
    for table in PARTITIONED_TABLES:
        op.execute(
            f"SELECT pixecom_ensure_partitions('{table}', "
            "(CURRENT_DATE - interval '2 months')::date, "
            "(CURRENT_DATE + interval '3 months')::date)"
        )


def _privileges(app_role: str) -> None:
    # CREATE on schema public is already withheld from PUBLIC on PostgreSQL 15+; older
    # clusters and hand-made databases get the same here, when the owner may change it.
    op.execute(
        """
        DO $$
        BEGIN
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'could not revoke CREATE on schema public from PUBLIC';
        END
        $$
        """
    )
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
    op.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC")
    for signature in FUNCTION_SIGNATURES:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    # Functions a later migration creates are not executable by everyone either.
    op.execute("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")

    op.execute(f"GRANT USAGE ON SCHEMA public TO {app_role}")
    # Parents only: partitions get no grant, so querying one directly is refused.
    for table, privileges in APP_PRIVILEGES.items():
        op.execute(f"GRANT {privileges} ON TABLE {table} TO {app_role}")
    op.execute(f"GRANT UPDATE (effective_until) ON TABLE pricing_rules TO {app_role}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app_role}")
    op.execute(f"GRANT EXECUTE ON FUNCTION pixecom_find_login(text) TO {app_role}")


def upgrade() -> None:
    app_role = _app_role()
    _create_ordinary_tables()
    _partitioned_tables()
    # After the tables: SQL-language function bodies are checked against them.
    op.execute(FUNCTIONS_SQL)
    op.execute(TRIGGERS_SQL)
    _row_level_security()
    _partitions()
    _privileges(app_role)


def downgrade() -> None:
    app_role = _app_role()
    op.execute(f"REVOKE ALL ON FUNCTION pixecom_find_login(text) FROM {app_role}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {app_role}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {app_role}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {app_role}")
    op.execute("ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC")
    # Dropping a partitioned table drops its partitions; children before parents.
    for table in (
        "sellpage_stats_daily",
        "ad_stats_daily",
        "ad_stats_raw",
        "order_events",
        "orders",
        "ads",
        "creative_assets",
        "assets",
        "creatives",
        "adsets",
        "campaigns",
        "ad_posts",
        "pages",
        "ad_accounts",
        "tracking_records",
        "payment_events",
        "order_payments",
        "pricing_rules",
        "public_sellpage_slugs",
        "sellpages",
        "products",
        "refresh_tokens",
        "login_identities",
        "users",
        "webhook_inbox",
        "fx_rates",
        "sellers",
    ):
        op.drop_table(table)
    for signature in reversed(FUNCTION_SIGNATURES):
        op.execute(f"DROP FUNCTION {signature}")
