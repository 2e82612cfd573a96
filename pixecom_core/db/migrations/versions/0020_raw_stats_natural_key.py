"""Raw stats are keyed by what they record: no surrogate id, no foreign key per row.

Revision ID: 0020_raw_stats_natural_key
Revises: 0019_bounded_storage
Create Date: 2026-12-07 23:00:00

Issue 18 item 7 (SCALE-10: the raw ingest at ≥ 0.5× a bare COPY). Every insert into
``ad_stats_raw`` paid for two things no reader uses: the surrogate ``id`` (an identity
draw and a second unique index, ``pk_ad_stats_raw`` (seller_id, id, date_start), that no
query ever scanned: 0019's table of ``idx_scan``) and the foreign key to ``sellers`` (a
trigger per row that locks the seller's row again). The move from staging in
``bench.stats_pipeline`` spent 3.39 s of server CPU with both, 2.57 s without.

The key. The dedup key ``uq_ad_stats_raw_fetch`` (seller_id, network, entity_type,
entity_id, date_start, date_stop, fetched_at; every column NOT NULL) already identifies a
row (STORE-2): a retried fetch is the same row, a later fetch a new one. It stays a UNIQUE
constraint rather than becoming the PRIMARY KEY: PostgreSQL refuses ``ADD CONSTRAINT …
PRIMARY KEY USING INDEX`` on a partitioned table ("not supported on partitioned tables",
PostgreSQL 15 through 18), and cannot turn a unique constraint into a primary key in
place, so promoting it would build a second index of the same columns on every partition
under an ACCESS EXCLUSIVE lock, the biggest table's writes blocked meanwhile, for a
difference only in name. The writers' ``ON CONFLICT ON CONSTRAINT uq_ad_stats_raw_fetch``
(``pixecom_core.stats.ingest``, ``pixecom_core.stats.aggregate``) is unchanged, and
``seller_id`` still leads the table's one unique key (STORE-6, distributable by seller).

Integrity without the foreign key. What the key per row guaranteed is kept by two
set-based checks:

- the raw ingest's move locks the seller's row ``FOR KEY SHARE`` — the lock a foreign-key
  check takes — once per batch, inside the insert, and inserts nothing when the seller
  does not exist (:func:`pixecom_core.stats.ingest.ingest_raw` then raises
  ``UnknownSellerError``); the row-level-security policy's WITH CHECK already pins every
  row's ``seller_id`` to the scope's seller. The other writer,
  ``aggregate.zero_unreported``, copies keys of ``ad_stats_daily`` rows, whose own foreign
  key keeps their seller;
- deleting a seller that still has raw rows is refused (``foreign_key_violation``, as the
  foreign key refused it) by the trigger ``refuse_deleting_seller_with_raw_stats`` on
  ``sellers``. Its look-up runs with ``app.current_seller_id`` bound to the deleted seller,
  so row-level security shows it that seller's rows whoever deletes; a concurrent ingest
  holds the seller's row locked, so the delete waits for its commit and then sees its rows.

Sellers are never deleted by the application today; the trigger keeps an operator's
``DELETE`` from leaving raw rows behind. ``TRUNCATE sellers CASCADE`` would (it already
empties every other seller-owned table): it is not an operation this project performs.

Locks. Dropping the constraints and the column changes catalogs only (a dropped column is
hidden, not rewritten; the identity's sequence goes with it), under ACCESS EXCLUSIVE for a
moment bounded by ``lock_timeout``. The downgrade rebuilds what 0001 had: it numbers the
existing rows (a rewrite of every partition, under the migration's 60 s statement
timeout: a bigger table fails the downgrade cleanly, nothing applied), builds the primary
key (not concurrently: PostgreSQL cannot on a partitioned table) and validates the foreign
key in the same statement (PostgreSQL before 18 refuses NOT VALID foreign keys on
partitioned tables).
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0020_raw_stats_natural_key"
down_revision: str | None = "0019_bounded_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARD_FUNCTION = "pixecom_refuse_deleting_seller_with_raw_stats()"
GUARD_TRIGGER = "refuse_deleting_seller_with_raw_stats"

GUARD_SQL = f"""
CREATE FUNCTION {GUARD_FUNCTION}
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    binding text := current_setting('app.current_seller_id', true);
    has_rows boolean;
BEGIN
    -- Bound to the deleted seller, row-level security shows exactly its raw rows, whether
    -- the deleting role is bound to that seller, unbound, or exempt from the policies; the
    -- caller's binding is restored after. (A SET clause would restore it by itself, but
    -- only a superuser may name this setting in one.)
    PERFORM set_config('app.current_seller_id', OLD.id::text, true);
    has_rows := EXISTS (SELECT 1 FROM public.ad_stats_raw AS raw WHERE raw.seller_id = OLD.id);
    PERFORM set_config('app.current_seller_id', coalesce(binding, ''), true);
    IF has_rows THEN
        RAISE EXCEPTION 'seller % still has raw ad statistics', OLD.id
            USING ERRCODE = 'foreign_key_violation',
                  TABLE = 'ad_stats_raw',
                  HINT = 'Drop or delete its ad_stats_raw rows first.';
    END IF;
    RETURN OLD;
END
$fn$;
COMMENT ON FUNCTION {GUARD_FUNCTION} IS
    'Refuses deleting a seller that still has ad_stats_raw rows (the table has no foreign '
    'key to sellers since 0020).';
CREATE TRIGGER {GUARD_TRIGGER} BEFORE DELETE ON sellers
    FOR EACH ROW EXECUTE FUNCTION {GUARD_FUNCTION};
"""


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    migration_support.lint_exception(
        "ban-drop-constraint",
        "The surrogate key no query reads; the dedup key uq_ad_stats_raw_fetch stays the\n"
        "table's key (a PRIMARY KEY would need a second index on every partition).",
    )
    op.execute("ALTER TABLE ad_stats_raw DROP CONSTRAINT pk_ad_stats_raw")
    migration_support.lint_exception(
        "ban-drop-column",
        "No code reads or writes ad_stats_raw.id (the ingest and the aggregation name\n"
        "their columns); dropping it changes catalogs only.",
    )
    op.execute("ALTER TABLE ad_stats_raw DROP COLUMN id")
    migration_support.lint_exception(
        "ban-drop-constraint",
        "Replaced by the ingest's lock of the seller's row per batch and the trigger\n"
        "below, which refuses deleting a seller that still has raw rows.",
    )
    op.execute("ALTER TABLE ad_stats_raw DROP CONSTRAINT fk_ad_stats_raw_seller_id_sellers")
    op.execute(GUARD_SQL)
    op.execute(f"REVOKE ALL ON FUNCTION {GUARD_FUNCTION} FROM PUBLIC")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(f"DROP TRIGGER {GUARD_TRIGGER} ON sellers")
    op.execute(f"DROP FUNCTION {GUARD_FUNCTION}")
    # The rows are numbered as the owner, who is under FORCE ROW LEVEL SECURITY when not a
    # superuser: the table is locked until commit anyway, and forced again below.
    op.execute("ALTER TABLE ad_stats_raw NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE ad_stats_raw ADD COLUMN id BIGINT")
    # PostgreSQL before 17 cannot add an identity column to a table with partitions: the
    # column is filled from a sequence of this session, then becomes the identity.
    op.execute("CREATE TEMPORARY SEQUENCE pixecom_raw_stats_ids")
    op.execute("UPDATE ad_stats_raw SET id = nextval('pixecom_raw_stats_ids')")
    op.execute("DROP SEQUENCE pixecom_raw_stats_ids")
    migration_support.lint_exception(
        "adding-not-nullable-field",
        "The column was filled for every row above, in this transaction, under its lock.",
    )
    op.execute("ALTER TABLE ad_stats_raw ALTER COLUMN id SET NOT NULL")
    op.execute("ALTER TABLE ad_stats_raw ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
    op.execute(
        "SELECT setval(pg_get_serial_sequence('ad_stats_raw', 'id'),"
        " coalesce(max(id), 0) + 1, false) FROM ad_stats_raw"
    )
    op.execute("ALTER TABLE ad_stats_raw FORCE ROW LEVEL SECURITY")
    migration_support.lint_exception(
        "require-concurrent-index-creation",
        "PostgreSQL cannot build an index on a partitioned table CONCURRENTLY.",
    )
    op.execute(
        "ALTER TABLE ad_stats_raw ADD CONSTRAINT pk_ad_stats_raw"
        " PRIMARY KEY (seller_id, id, date_start)"
    )
    migration_support.lint_exception(
        "adding-foreign-key-constraint",
        "PostgreSQL before 18 refuses a NOT VALID foreign key on a partitioned table.",
    )
    op.execute(
        "ALTER TABLE ad_stats_raw ADD CONSTRAINT fk_ad_stats_raw_seller_id_sellers"
        " FOREIGN KEY (seller_id) REFERENCES sellers (id)"
    )
