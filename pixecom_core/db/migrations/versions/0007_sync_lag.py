"""Sync lag by tier: how far behind the stats syncs are, for the metrics endpoint.

Revision ID: 0007_sync_lag
Revises: 0006_sync_runs
Create Date: 2026-11-26 00:00:00

OPS-2 (stats lagging 30-60 minutes went unseen, with no monitoring): an operator
must see, per spend tier, how long ago the most-behind ad account last synced, without a
worker reading any seller's rows outside that seller's scope. Like the seller directory,
``pixecom_sync_lag_by_tier()`` runs as the owner, switches a setting on around its one
query, and the policies that admit it apply to the owner role alone and only while that
setting is on. It answers aggregates only (counts and seconds per tier): no seller id,
account id or name leaves it. Policies and a function only: nothing here locks a hot
table for long.
"""

from collections.abc import Sequence

from alembic import op

from pixecom_core.db import migration_support

revision: str = "0007_sync_lag"
down_revision: str | None = "0006_sync_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    app_role = migration_support.app_role()
    op.execute("SET LOCAL lock_timeout = '5s'")
    for table in ("sellers", "ad_accounts"):
        op.execute(
            f"CREATE POLICY owner_sync_lag ON {table} FOR SELECT TO CURRENT_USER "
            "USING (current_setting('pixecom.sync_lag', true) = 'on')"
        )
    op.execute(
        """
        CREATE FUNCTION pixecom_sync_lag_by_tier()
        RETURNS TABLE (tier text, accounts bigint, never_synced bigint,
                       needs_reconnect bigint, max_lag_seconds double precision)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp
        AS $fn$
        BEGIN
            PERFORM set_config('pixecom.sync_lag', 'on', true);
            -- Active accounts only (paused and disconnected ones are not meant to sync);
            -- one waiting for its seller to reconnect is counted apart, its lag is the
            -- seller's to fix. An account never synced is behind since it was connected.
            RETURN QUERY
                SELECT s.tier,
                       count(*) FILTER (WHERE NOT a.needs_reconnect),
                       count(*) FILTER (WHERE NOT a.needs_reconnect
                                        AND a.last_synced_at IS NULL),
                       count(*) FILTER (WHERE a.needs_reconnect),
                       coalesce(max(extract(epoch FROM
                                    now() - coalesce(a.last_synced_at, a.created_at)))
                                FILTER (WHERE NOT a.needs_reconnect), 0)::double precision
                  FROM public.ad_accounts AS a
                  JOIN public.sellers AS s ON s.id = a.seller_id
                 WHERE a.status = 'ACTIVE'
                 GROUP BY s.tier;
            PERFORM set_config('pixecom.sync_lag', 'off', true);
        END
        $fn$
        """
    )
    op.execute(
        "COMMENT ON FUNCTION pixecom_sync_lag_by_tier() IS "
        "'Per seller tier: active ad accounts, never synced, waiting for a reconnect, and "
        "the longest time since a successful sync, in seconds. Aggregates only.'"
    )
    op.execute("REVOKE ALL ON FUNCTION pixecom_sync_lag_by_tier() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION pixecom_sync_lag_by_tier() TO {app_role}")


def downgrade() -> None:
    op.execute("DROP FUNCTION pixecom_sync_lag_by_tier()")
    for table in ("ad_accounts", "sellers"):
        op.execute(f"DROP POLICY owner_sync_lag ON {table}")
