"""Backfills to resume: the scheduler finds every incomplete history backfill.

Revision ID: 0014_backfill_directory
Revises: 0013_ad_connections
Create Date: 2026-12-07 00:00:00

Issue 14 item 4. A history backfill runs as a chain of jobs, one chunk each
(:mod:`pixecom_core.stats.backfill`); when a job is lost for good, the scheduler queues
the backfill again. It must therefore list incomplete backfills across sellers, and
``ad_accounts`` has forced row-level security. Like the seller directory (0002) and the
sync lag (0007), ``pixecom_backfills_to_resume(after, max_rows)`` runs as the owner,
switches ``pixecom.unscoped_rows`` on around its one query, and the SELECT policy that
admits it applies to the owner role alone and only while that setting is on. It answers
ids only (seller, ad account), one page at a time: each backfill is then worked on in its
seller's scope. A policy and a function only: the ``CREATE POLICY`` takes its lock for a
moment, bounded by ``lock_timeout``.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0014_backfill_directory"
down_revision: str | None = "0013_ad_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: A page is at most this long, whatever the caller asks (SCALE-4: nothing unbounded).
MAX_ROWS = 1000
SIGNATURE = "pixecom_backfills_to_resume(uuid, integer)"


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(
        "CREATE POLICY owner_unscoped_rows ON ad_accounts FOR SELECT TO CURRENT_USER "
        "USING (current_setting('pixecom.unscoped_rows', true) = 'on')"
    )
    op.execute(
        f"""
        CREATE FUNCTION pixecom_backfills_to_resume(after uuid, max_rows integer)
        RETURNS TABLE (seller_id uuid, ad_account_id uuid)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            PERFORM set_config('pixecom.unscoped_rows', 'on', true);
            -- Accounts that can sync (active, a token, no reconnect pending) whose
            -- planned window is not done; paged by account id.
            RETURN QUERY
                SELECT a.seller_id, a.id
                  FROM public.ad_accounts AS a
                 WHERE a.status = 'ACTIVE'
                   AND NOT a.needs_reconnect
                   AND a.token_ciphertext IS NOT NULL
                   AND a.backfill_since IS NOT NULL
                   AND a.backfill_until IS NOT NULL
                   AND (a.backfill_done_through IS NULL
                        OR a.backfill_done_through < a.backfill_until)
                   AND (after IS NULL OR a.id > after)
                 ORDER BY a.id
                 LIMIT least(greatest(max_rows, 1), {MAX_ROWS});
            PERFORM set_config('pixecom.unscoped_rows', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        f"COMMENT ON FUNCTION {SIGNATURE} IS "
        "'One page (at most 1000) of (seller id, ad account id) of incomplete history "
        "backfills of accounts that can sync, after the given account id; each backfill "
        "is then resumed in its seller''s scope.'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {app_role}")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.execute("DROP POLICY owner_unscoped_rows ON ad_accounts")
