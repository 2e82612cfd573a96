"""Seller directory: a bounded, read-only list of seller ids for cross-seller jobs.

Revision ID: 0002_seller_directory
Revises: 0001_initial
Create Date: 2026-11-26 00:00:00

Some work is about every seller in turn: re-encrypting ad-account tokens after a key
rotation (``pixecom keys rotate``), scheduling each seller's stats sync. The app role sees
no ``sellers`` row without a scope, and the owner is under FORCE row-level security too,
so neither could list sellers. ``pixecom_seller_directory(after, max_rows)`` answers one
page of (id, tier) in id order and nothing else; it runs as the owner and switches the
setting ``pixecom.seller_directory`` on around its one query, and the policy that admits
it applies to the owner role alone and only while that setting is on. Every
seller's own data is still read inside that seller's scope.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0002_seller_directory"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: A page is at most this long, whatever the caller asks (SCALE-4: nothing unbounded).
MAX_ROWS = 1000


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute(
        "CREATE POLICY owner_seller_directory ON sellers FOR SELECT TO CURRENT_USER "
        "USING (current_setting('pixecom.seller_directory', true) = 'on')"
    )
    op.execute(
        f"""
        CREATE FUNCTION pixecom_seller_directory(after uuid, max_rows integer)
        RETURNS TABLE (seller_id uuid, tier text)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            -- Switched on for this query only (a function's own SET clause would need a
            -- superuser for a custom setting); the policy admits the owner alone.
            PERFORM set_config('pixecom.seller_directory', 'on', true);
            RETURN QUERY
                SELECT s.id, s.tier
                  FROM public.sellers AS s
                 WHERE after IS NULL OR s.id > after
                 ORDER BY s.id
                 LIMIT least(greatest(max_rows, 1), {MAX_ROWS});
            PERFORM set_config('pixecom.seller_directory', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        "COMMENT ON FUNCTION pixecom_seller_directory(uuid, integer) IS "
        "'One page (at most 1000) of seller ids and tiers after the given id, for jobs "
        "that visit every seller; their data is then read in each seller''s scope.'"
    )
    op.execute("REVOKE ALL ON FUNCTION pixecom_seller_directory(uuid, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION pixecom_seller_directory(uuid, integer) TO {app_role}")


def downgrade() -> None:
    op.execute("DROP FUNCTION pixecom_seller_directory(uuid, integer)")
    op.execute("DROP POLICY owner_seller_directory ON sellers")
