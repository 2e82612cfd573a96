"""Nothing grows without bound: the webhook inbox by month; unused raw-stats indexes go.

Revision ID: 0019_bounded_storage
Revises: 0018_conversions
Create Date: 2026-12-07 16:30:00

Issue 18 item 5. The audit's B2 ("no partitioning, append-only", STORE-3 "raw data only
needed for re-aggregation window") was fixed for ``ad_stats_raw`` but the same failure
stayed in ``webhook_inbox``: every delivery's raw body kept for ever.

``webhook_inbox`` becomes range-partitioned by month of ``received_at``, with a DEFAULT
partition like every partitioned table (0001), so ``pixecom db maintain`` can drop whole
months past ``PIXECOM_WEBHOOK_INBOX_RETENTION_DAYS`` (180 by default: chargebacks arrive
months after the payment, and the ledger keeps its own facts in ``payment_events``). The
table is rebuilt in this transaction: the old one is set aside, the new one gets a
partition for every month from its oldest delivery to three months ahead, the rows are
copied once (ids kept: queued ``process_webhook`` messages name them), the identity
continues after the highest id, and the old table is dropped. Grants (SELECT for the app
role, nothing for PUBLIC), forced row-level security with both policies of 0010, the
check constraints and the partial indexes the worker and ``/metrics`` read are the same.
The inbox is locked while its rows are copied: a delivery arriving then fails its
statement and the gateway sends it again (Stripe and PayPal retry for three days). The
copy runs under the migration's 60 s statement timeout, which covers millions of rows on
this machine's class of server; a bigger inbox fails the migration cleanly (nothing
applied), and is first trimmed of processed deliveries older than the retention.

Replay protection. A unique constraint on a partitioned table must contain the partition
key, so ``UNIQUE (gateway, event_id)`` cannot stay: the same delivery replayed a month
later would land in another partition. ``pixecom_inbox_receive`` now takes a transaction
advisory lock on the delivery's key, looks for it in every partition (through the new
index ``ix_webhook_inbox_gateway_event_id``), and inserts only when it is absent; two
concurrent deliveries of one event are serialised by the lock, and the second sees the
first's committed row (each plpgsql statement takes a fresh snapshot under READ
COMMITTED, the isolation every caller uses). A replay that arrives after its first
delivery's month was dropped is stored again, and its facts are no-ops: the ledger's own
key ``uq_payment_events_fact`` (seller, gateway, money object, kind) records each fact
once (``tests/db/test_retention.py`` checks both cases).

``ad_stats_raw`` loses the three indexes no query uses. The one query that reads the
table (``pixecom_core.stats.aggregate._AGGREGATE_DAILY``: one seller, one network, a
``date_start`` range, the latest fetch per entity-day) is planned on the dedup key
``uq_ad_stats_raw_fetch`` (seller_id, network, entity_type, entity_id, date_start, ...):
``EXPLAIN`` shows an index-only scan of it with the date range in the index condition;
on some partitions the planner prefers ``ix_ad_stats_raw_aggregation`` (seller_id,
entity_type, date_start, date_stop), which therefore stays. The writers' ``ON CONFLICT``
uses the dedup key, and retention drops whole partitions, so nothing deletes or filters
by ``fetched_at``; every query runs in a seller's scope, so an index not led by
``seller_id`` is never useful; ``ix_ad_stats_raw_entity_day`` (seller_id, entity_type,
entity_id, date_start) is a prefix of the dedup key but for ``network``, which the query
always fixes. Evidence: ``pg_stat_user_indexes`` summed over the partitions after
``pixecom simulate B --scale 0.01 --duration 10`` (a full sync cycle of 10 sellers'
accounts, 1,306 raw rows, and their aggregation), with an earlier ``pixecom simulate``
database of the same server (10,999 raw rows) for comparison:

====================================  ==============  ===============
index                                 idx_scan (B)    idx_scan (other)
====================================  ==============  ===============
uq_ad_stats_raw_fetch                 1310            10952
ix_ad_stats_raw_aggregation           6               4
ix_ad_stats_raw_entity_day            0               1
pk_ad_stats_raw                       0               0
ix_ad_stats_raw_grouping              0 (before 0019) 0
ix_ad_stats_raw_fetched_at            0 (before 0019) 0
====================================  ==============  ===============

``ix_ad_stats_raw_grouping``, ``ix_ad_stats_raw_fetched_at`` and
``ix_ad_stats_raw_entity_day`` are dropped: every insert into the biggest table wrote
them for nothing (the single scan of the last in the other database came from no code
path of the application, none filters without the network; the dedup key serves the
same lookup). The primary key stays (it is the row's identity).
PostgreSQL cannot drop a partitioned index CONCURRENTLY; a plain DROP INDEX only removes
catalog entries and files, so its ACCESS EXCLUSIVE lock is held for a moment, bounded by
``lock_timeout``. The downgrade builds them again (not concurrently: the same limit
applies to building an index on a partitioned table).
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0019_bounded_storage"
down_revision: str | None = "0018_conversions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen copies of 0001's and 0010's predicates.
SELLER_PREDICATE = "seller_id = NULLIF(current_setting('app.current_seller_id', true), '')::uuid"
OWNER_PREDICATE = "current_setting('pixecom.unscoped_rows', true) = 'on'"

COLUMNS = (
    "id, gateway, event_id, event_type, received_at, headers, body, status, attempts,"
    " last_error, next_attempt_at, processed_at, seller_id"
)

#: The constraints both versions of the table share (frozen copy of 0001 and 0004).
SHARED_CONSTRAINTS = """
    CONSTRAINT ck_webhook_inbox_gateway_format CHECK (gateway ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT ck_webhook_inbox_status_allowed
        CHECK (status IN ('RECEIVED', 'PROCESSED', 'FAILED', 'DEFERRED')),
    CONSTRAINT ck_webhook_inbox_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT fk_webhook_inbox_seller_id_sellers FOREIGN KEY (seller_id) REFERENCES sellers (id)
"""

TABLE_COLUMNS = """
    id BIGINT GENERATED BY DEFAULT AS IDENTITY NOT NULL,
    gateway TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT DEFAULT '' NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    headers JSONB DEFAULT '{}'::jsonb NOT NULL,
    body BYTEA NOT NULL,
    status TEXT DEFAULT 'RECEIVED' NOT NULL,
    attempts INTEGER DEFAULT 0 NOT NULL,
    last_error TEXT,
    next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    processed_at TIMESTAMP WITH TIME ZONE,
    seller_id UUID,
"""

PARTITIONED_SQL = f"""
CREATE TABLE webhook_inbox (
    {TABLE_COLUMNS}
    -- The partition key belongs to every unique key of a partitioned table: ids are
    -- still unique (one identity), the pair only satisfies PostgreSQL.
    CONSTRAINT pk_webhook_inbox PRIMARY KEY (id, received_at),
    {SHARED_CONSTRAINTS}
) PARTITION BY RANGE (received_at);
CREATE TABLE webhook_inbox_default PARTITION OF webhook_inbox DEFAULT;
-- Replay protection: pixecom_inbox_receive looks a delivery up by its key in every month.
CREATE INDEX ix_webhook_inbox_gateway_event_id ON webhook_inbox (gateway, event_id);
CREATE INDEX ix_webhook_inbox_pending ON webhook_inbox (next_attempt_at)
    WHERE status IN ('RECEIVED', 'DEFERRED');
CREATE INDEX ix_webhook_inbox_seller_problems ON webhook_inbox (seller_id, received_at)
    WHERE status IN ('DEFERRED', 'FAILED');
"""

UNPARTITIONED_SQL = f"""
CREATE TABLE webhook_inbox (
    {TABLE_COLUMNS}
    CONSTRAINT pk_webhook_inbox PRIMARY KEY (id),
    CONSTRAINT uq_webhook_inbox_gateway_event_id UNIQUE (gateway, event_id),
    {SHARED_CONSTRAINTS}
);
CREATE INDEX ix_webhook_inbox_pending ON webhook_inbox (next_attempt_at)
    WHERE status IN ('RECEIVED', 'DEFERRED');
CREATE INDEX ix_webhook_inbox_seller_problems ON webhook_inbox (seller_id, received_at)
    WHERE status IN ('DEFERRED', 'FAILED');
"""

_RECEIVE_HEADER = """
CREATE OR REPLACE FUNCTION pixecom_inbox_receive(
    p_gateway text, p_event_id text, p_event_type text, p_headers jsonb, p_body bytea,
    p_received_at timestamptz
)
RETURNS TABLE (inbox_id bigint, duplicate boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM set_config('pixecom.unscoped_rows', 'on', true);
"""
_RECEIVE_FOOTER = """
    PERFORM set_config('pixecom.unscoped_rows', 'off', true);
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION pixecom_inbox_receive(text, text, text, jsonb, bytea, timestamptz) IS
    'Stores one verified webhook delivery once; answers its inbox id and whether it was '
    'stored before. The only way the app role writes a new inbox row.';
"""

RECEIVE_PARTITIONED_SQL = f"""{_RECEIVE_HEADER}
    -- No unique key can span the months (it would have to contain received_at): the
    -- delivery's key is locked until commit, then looked up in every partition, so a
    -- redelivery, however much later, stores nothing and answers the first id.
    PERFORM pg_advisory_xact_lock(
        hashtextextended('pixecom_inbox:' || p_gateway || ':' || p_event_id, 0));
    SELECT i.id INTO inbox_id FROM public.webhook_inbox AS i
     WHERE i.gateway = p_gateway AND i.event_id = p_event_id
     ORDER BY i.id
     LIMIT 1;
    duplicate := inbox_id IS NOT NULL;
    IF NOT duplicate THEN
        INSERT INTO public.webhook_inbox AS i
            (gateway, event_id, event_type, headers, body, received_at)
        VALUES (p_gateway, p_event_id, p_event_type, p_headers, p_body, p_received_at)
        RETURNING i.id INTO inbox_id;
    END IF;
{_RECEIVE_FOOTER}"""

#: Frozen copy of 0010's function body.
RECEIVE_UNPARTITIONED_SQL = f"""{_RECEIVE_HEADER}
    -- UNIQUE (gateway, event_id): a redelivery stores nothing and answers the first id.
    INSERT INTO public.webhook_inbox AS i
        (gateway, event_id, event_type, headers, body, received_at)
    VALUES (p_gateway, p_event_id, p_event_type, p_headers, p_body, p_received_at)
    ON CONFLICT ON CONSTRAINT uq_webhook_inbox_gateway_event_id DO NOTHING
    RETURNING i.id INTO inbox_id;
    duplicate := inbox_id IS NULL;
    IF duplicate THEN
        SELECT i.id INTO inbox_id FROM public.webhook_inbox AS i
         WHERE i.gateway = p_gateway AND i.event_id = p_event_id;
    END IF;
{_RECEIVE_FOOTER}"""

#: ad_stats_raw indexes no query reads (see the table in the docstring), and how 0001
#: built them, for the downgrade.
UNUSED_RAW_INDEXES = {
    "ix_ad_stats_raw_entity_day": "(seller_id, entity_type, entity_id, date_start)",
    "ix_ad_stats_raw_grouping": "(entity_type, entity_id, date_start, date_stop)",
    "ix_ad_stats_raw_fetched_at": "(fetched_at)",
}

SET_ASIDE = "webhook_inbox_before_0019"


def _set_aside_inbox(*, constraints: tuple[str, ...], indexes: tuple[str, ...]) -> None:
    """Rename the current inbox, then free the names its indexes and sequence hold.

    The table is locked (ACCESS EXCLUSIVE) from the rename to the commit, and dropped
    once its rows are copied, so dropping its indexes here blocks nobody further.
    """
    migration_support.lint_exception(
        "renaming-table",
        "The inbox is rebuilt in this transaction; nothing reads the old name after commit.",
    )
    op.execute(f"ALTER TABLE webhook_inbox RENAME TO {SET_ASIDE}")
    migration_support.lint_exception(
        "renaming-object",
        "The old inbox's identity sequence, dropped with it below; the new inbox's own\n"
        "sequence takes the name (nothing names the sequence, ids come from the identity).",
    )
    op.execute(f"ALTER SEQUENCE webhook_inbox_id_seq RENAME TO {SET_ASIDE}_id_seq")
    for constraint in constraints:
        migration_support.lint_exception(
            "ban-drop-constraint",
            "A constraint of the set-aside table, frees its index's name for the new inbox,\n"
            "which has the same guarantee (or, across months, the receive function's).",
        )
        op.execute(f"ALTER TABLE {SET_ASIDE} DROP CONSTRAINT {constraint}")
    for index in indexes:
        migration_support.lint_exception(
            "require-concurrent-index-deletion",
            "The table was renamed in this transaction (ACCESS EXCLUSIVE already held).",
        )
        op.execute(f"DROP INDEX {index}")


def _secure_inbox(app_role: str) -> None:
    """Forced row-level security with 0010's policies; SELECT for the app role only."""
    op.execute("ALTER TABLE webhook_inbox ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE webhook_inbox FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY seller_isolation ON webhook_inbox "
        f"USING ({SELLER_PREDICATE}) WITH CHECK ({SELLER_PREDICATE})"
    )
    op.execute(
        "CREATE POLICY owner_unscoped_rows ON webhook_inbox TO CURRENT_USER "
        f"USING ({OWNER_PREDICATE}) WITH CHECK ({OWNER_PREDICATE})"
    )
    op.execute("REVOKE ALL ON TABLE webhook_inbox FROM PUBLIC")
    op.execute(f"GRANT SELECT ON TABLE webhook_inbox TO {app_role}")


def _continue_identity() -> None:
    op.execute(
        "SELECT setval(pg_get_serial_sequence('webhook_inbox', 'id'),"
        " coalesce(max(id), 0) + 1, false) FROM webhook_inbox"
    )


def _drop_set_aside() -> None:
    migration_support.lint_exception(
        "ban-drop-table", "Its rows were copied into the new inbox in this transaction."
    )
    op.execute(f"DROP TABLE {SET_ASIDE}")


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    # A non-superuser owner reads the old inbox (forced RLS) through 0010's owner policy.
    op.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
    _set_aside_inbox(
        constraints=("pk_webhook_inbox", "uq_webhook_inbox_gateway_event_id"),
        indexes=("ix_webhook_inbox_pending", "ix_webhook_inbox_seller_problems"),
    )
    op.execute(PARTITIONED_SQL)
    op.execute("SELECT pixecom_secure_partition('webhook_inbox', 'webhook_inbox_default')")
    # Every month that holds a delivery, up to three months ahead (as 0001 does), before
    # the copy: each row is written once, straight into its month.
    op.execute(
        "SELECT pixecom_ensure_partitions('webhook_inbox',"
        f" least((SELECT min(received_at AT TIME ZONE 'UTC') FROM {SET_ASIDE})::date,"
        " CURRENT_DATE), (CURRENT_DATE + interval '3 months')::date, false)"
    )
    op.execute(
        f"INSERT INTO webhook_inbox ({COLUMNS}) SELECT {COLUMNS} FROM {SET_ASIDE} ORDER BY id"
    )
    _continue_identity()
    _drop_set_aside()
    _secure_inbox(app_role)
    op.execute(RECEIVE_PARTITIONED_SQL)
    op.execute("SELECT set_config('pixecom.unscoped_rows', 'off', true)")
    for index in UNUSED_RAW_INDEXES:
        migration_support.lint_exception(
            "require-concurrent-index-deletion",
            "PostgreSQL refuses DROP INDEX CONCURRENTLY on a partitioned index; dropping one\n"
            "only removes catalog entries and files, its lock held for a moment.",
        )
        op.execute(f"DROP INDEX {index}")


def downgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    for index, columns in UNUSED_RAW_INDEXES.items():
        migration_support.lint_exception(
            "require-concurrent-index-creation",
            "PostgreSQL cannot build an index on a partitioned table CONCURRENTLY.",
        )
        op.execute(f"CREATE INDEX {index} ON ad_stats_raw {columns}")
    op.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
    _set_aside_inbox(
        constraints=("pk_webhook_inbox",),
        indexes=(
            "ix_webhook_inbox_gateway_event_id",
            "ix_webhook_inbox_pending",
            "ix_webhook_inbox_seller_problems",
        ),
    )
    op.execute(UNPARTITIONED_SQL)
    # One row per key, as the unique constraint wants: the first delivery, should a replay
    # have been stored after its first delivery's month was dropped.
    op.execute(
        f"INSERT INTO webhook_inbox ({COLUMNS}) SELECT {COLUMNS} FROM"
        f" (SELECT DISTINCT ON (gateway, event_id) {COLUMNS} FROM {SET_ASIDE}"
        "   ORDER BY gateway, event_id, id) AS first_deliveries ORDER BY id"
    )
    _continue_identity()
    _drop_set_aside()
    _secure_inbox(app_role)
    op.execute(RECEIVE_UNPARTITIONED_SQL)
    op.execute("SELECT set_config('pixecom.unscoped_rows', 'off', true)")
