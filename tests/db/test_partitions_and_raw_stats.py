"""Monthly partitions, their maintenance, and the raw-stats dedup key (STORE-1..3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg import errors, sql

from pixecom_core.db.partitions import add_months, maintain_partitions
from pixecom_core.models import PARTITIONED_TABLES
from pixecom_core.testing.databases import TestDatabase
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import (
    Connection,
    TwoSellers,
    insert_seller,
    raw_stats_values,
    seller_scope,
)


def _insert_raw(
    conn: Connection, seller: uuid.UUID, values: dict[str, object], *, dedup: bool
) -> int:
    columns = ["seller_id", *values]
    statement = sql.SQL("INSERT INTO ad_stats_raw ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    if dedup:
        statement += sql.SQL(
            " ON CONFLICT (seller_id, network, entity_type, entity_id, date_start, date_stop,"
            " fetched_at) DO NOTHING"
        )
    return conn.execute(statement, [seller, *values.values()]).rowcount


def test_the_same_raw_fetch_is_stored_once(app_conn: Connection, two_sellers: TwoSellers) -> None:
    # STORE-2, STATS-1: a retried fetch must not duplicate rows.
    entity = f"ad_{uuid.uuid4().hex}"
    fetched = datetime(2026, 3, 1, 12, tzinfo=UTC)
    row = raw_stats_values(datetime.now(UTC).date(), entity_id=entity, fetched_at=fetched)
    with seller_scope(app_conn, two_sellers.a):
        assert _insert_raw(app_conn, two_sellers.a, row, dedup=True) == 1
        assert _insert_raw(app_conn, two_sellers.a, row, dedup=True) == 0
        # A later fetch of the same day is a new snapshot, kept next to the first.
        later = {**row, "fetched_at": fetched + timedelta(hours=1)}
        assert _insert_raw(app_conn, two_sellers.a, later, dedup=True) == 1
        count = app_conn.execute(
            "SELECT count(*) FROM ad_stats_raw WHERE entity_id = %s", (entity,)
        ).fetchone()
    assert count == (2,)
    with pytest.raises(errors.UniqueViolation, match="uq_ad_stats_raw_fetch|ad_stats_raw_p"):
        with seller_scope(app_conn, two_sellers.a):
            _insert_raw(app_conn, two_sellers.a, row, dedup=False)


# -- partition maintenance, on a database of its own -----------------------------------


def _utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class PartitionedRows:
    """One row in each partitioned table, for one seller, on one day."""

    seller: uuid.UUID
    day: date


def _insert_partitioned_rows(owner: Connection, app: Connection, day: date) -> PartitionedRows:
    """One row per partitioned table on ``day``, written by the app role in scope."""
    seller = uuid.uuid4()
    insert_seller(owner, seller)
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    with seller_scope(app, seller):
        sellpage = app.execute(
            "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 't') RETURNING id",
            (seller, f"p-{uuid.uuid4().hex[:12]}"),
        ).fetchone()
        assert sellpage is not None
        app.execute(
            "INSERT INTO orders (seller_id, created_at, currency, subtotal_minor, total_minor,"
            " customer_email) VALUES (%s, %s, 'USD', 100, 100, 'c@example.com')",
            (seller, at),
        )
        app.execute(
            "INSERT INTO order_events (seller_id, created_at, order_id, event_type)"
            " VALUES (%s, %s, gen_random_uuid(), 'CREATED')",
            (seller, at),
        )
        _insert_raw(app, seller, raw_stats_values(day, entity_id="ad_1"), dedup=False)
        app.execute(
            "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id, stat_date,"
            " snapshot_fetched_at, spend_micros, impressions, clicks, purchases,"
            " purchase_value_micros, currency)"
            " VALUES (%s, 'meta', 'ad', 'ad_1', %s, now(), 1, 1, 1, 0, 0, 'USD')",
            (seller, day),
        )
        app.execute(
            "INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date,"
            " reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
            " chargebacks_minor, net_revenue_minor, orders_count)"
            " VALUES (%s, %s, %s, 'USD', 0, 100, 0, 0, 100, 1)",
            (seller, sellpage[0], day),
        )
        app.execute(
            "INSERT INTO entity_stats_daily (seller_id, entity_type, network, entity_id,"
            " stat_date, reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
            " chargebacks_minor, net_revenue_minor, orders_count)"
            " VALUES (%s, 'campaign', 'meta', 'c_1', %s, 'USD', 1, 0, 0, 0, 0, 0)",
            (seller, day),
        )
    # The inbox's rows are written by owner functions, never by the app role; this one is
    # already attributed to the seller (the owner inserts it in the seller's scope).
    with seller_scope(owner, seller):
        owner.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, body, status, received_at, seller_id)"
            " VALUES ('fakepay', %s, 'b', 'PROCESSED', %s, %s)",
            (f"evt_{uuid.uuid4().hex}", at, seller),
        )
    return PartitionedRows(seller=seller, day=day)


def _homes(app: Connection, rows: PartitionedRows) -> dict[str, list[str]]:
    """Which partition each of the seller's rows sits in, per table (read as the app)."""
    homes: dict[str, list[str]] = {}
    with seller_scope(app, rows.seller):
        for table in PARTITIONED_TABLES:
            found = app.execute(
                sql.SQL("SELECT tableoid::regclass::text FROM {} ORDER BY 1").format(
                    sql.Identifier(table)
                )
            ).fetchall()
            homes[table] = [name for (name,) in found]
    return homes


def _partition_names(conn: Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchall()
    return {name for (name,) in rows}


def _assert_secured(conn: Connection, partition: str, app_role: str) -> None:
    row = conn.execute(
        "SELECT c.relrowsecurity, c.relforcerowsecurity,"
        " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid),"
        " has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE')"
        " FROM pg_class AS c WHERE c.oid = %s::regclass",
        (app_role, partition),
    ).fetchone()
    assert row == (True, True, True, False), partition


@pytest.fixture
def scratch_owner(scratch_database: TestDatabase) -> Iterator[Connection]:
    with psycopg.connect(scratch_database.owner_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def scratch_app(scratch_database: TestDatabase) -> Iterator[Connection]:
    with psycopg.connect(scratch_database.app_dsn) as conn:
        yield conn


def test_rows_without_a_partition_wait_in_default_then_move(
    scratch_database: TestDatabase, scratch_owner: Connection, scratch_app: Connection
) -> None:
    today = _utc_today()
    far_month = add_months(today, 20)
    rows = _insert_partitioned_rows(scratch_owner, scratch_app, far_month + timedelta(days=3))
    # No partition covers that month: nothing is refused, the rows wait in the default.
    assert _homes(scratch_app, rows) == {t: [f"{t}_default"] for t in PARTITIONED_TABLES}

    report = maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=3,
        raw_retention_days=90,
        inbox_retention_days=180,
        today=today,
    )

    suffix = far_month.strftime("%Y%m")
    expected = {f"{table}_p{suffix}" for table in PARTITIONED_TABLES}
    assert expected <= set(report.created)
    assert {name: report.moved_rows[name] for name in expected} == dict.fromkeys(expected, 1)
    assert report.dropped == ()
    # Every row is still there, now in its month's partition.
    assert _homes(scratch_app, rows) == {t: [f"{t}_p{suffix}"] for t in PARTITIONED_TABLES}
    app_role = scratch_database.settings.app_role
    for table in PARTITIONED_TABLES:
        _assert_secured(scratch_owner, f"{table}_p{suffix}", app_role)
        _assert_secured(scratch_owner, f"{table}_default", app_role)
    # The append-only guard was lifted on the default partition for the move only.
    triggers = scratch_owner.execute(
        "SELECT tgname, tgenabled FROM pg_trigger"
        " WHERE tgrelid IN ('order_events_default'::regclass, %s::regclass)"
        " AND NOT tgisinternal ORDER BY 1, 2",
        (f"order_events_p{suffix}",),
    ).fetchall()
    assert triggers == [("forbid_change", "O")] * 2 + [("forbid_truncate", "O")] * 2

    again = maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=3,
        raw_retention_days=90,
        inbox_retention_days=180,
        today=today,
    )
    assert (again.created, again.moved_rows, again.dropped) == ((), {}, ())
    assert not again.changed


def test_months_ahead_are_created(
    scratch_database: TestDatabase, scratch_owner: Connection
) -> None:
    today = add_months(_utc_today(), 48)
    report = maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=2,
        raw_retention_days=10_000,
        inbox_retention_days=10_000,
        today=today,
    )
    months = [add_months(today, n).strftime("%Y%m") for n in range(3)]
    assert set(report.created) == {f"{t}_p{m}" for t in PARTITIONED_TABLES for m in months}
    assert report.moved_rows == {}
    for table in PARTITIONED_TABLES:
        assert {f"{table}_p{m}" for m in months} <= _partition_names(scratch_owner, table)


def test_raw_partitions_past_retention_are_dropped_and_nothing_else(
    scratch_database: TestDatabase, scratch_owner: Connection, scratch_app: Connection
) -> None:
    rows = _insert_partitioned_rows(scratch_owner, scratch_app, _utc_today())
    current = rows.day.strftime("%Y%m")
    before = {t: _partition_names(scratch_owner, t) for t in PARTITIONED_TABLES}
    assert f"ad_stats_raw_p{current}" in before["ad_stats_raw"]

    later = add_months(rows.day, 30) + timedelta(days=14)
    report = maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=1,
        raw_retention_days=90,
        inbox_retention_days=10_000,
        today=later,
    )

    cutoff = later - timedelta(days=90)
    assert f"ad_stats_raw_p{current}" in report.dropped
    assert all(name.startswith("ad_stats_raw_p") for name in report.dropped)
    for name in report.dropped:  # the whole month lies before the cutoff
        month = datetime.strptime(name[-6:], "%Y%m").date()
        assert add_months(month, 1) <= cutoff
    remaining = _partition_names(scratch_owner, "ad_stats_raw")
    assert "ad_stats_raw_default" in remaining
    for name in remaining - {"ad_stats_raw_default"}:
        month = datetime.strptime(name[-6:], "%Y%m").date()
        assert add_months(month, 1) > cutoff, name
    # With the inbox's retention beyond reach, only raw data loses partitions: the other
    # tables keep every partition and row.
    for table in PARTITIONED_TABLES:
        if table != "ad_stats_raw":
            assert before[table] <= _partition_names(scratch_owner, table)
    homes = _homes(scratch_app, rows)
    assert homes["ad_stats_raw"] == []
    assert homes["orders"] == [f"orders_p{current}"]

    again = maintain_partitions(
        scratch_database.owner_dsn,
        months_ahead=1,
        raw_retention_days=90,
        inbox_retention_days=10_000,
        today=later,
    )
    assert not again.changed


def test_append_only_tables_never_lose_partitions(scratch_owner: Connection) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        scratch_owner.execute("SELECT pixecom_drop_partitions_before('order_events', '2999-01-01')")


# -- an owner that is not a superuser ------------------------------------------------


def test_maintenance_works_for_an_owner_under_forced_rls(
    restricted_owner_database: RestrictedOwnerDatabase,
) -> None:
    db = restricted_owner_database
    today = _utc_today()
    far_month = add_months(today, 20)
    with (
        psycopg.connect(db.owner_dsn, autocommit=True) as owner,
        psycopg.connect(db.app_dsn) as app,
    ):
        assert owner.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        rows = _insert_partitioned_rows(owner, app, far_month + timedelta(days=1))
        # FORCE applies to this owner: without a scope it sees nothing.
        assert owner.execute("SELECT count(*) FROM orders").fetchone() == (0,)

        report = maintain_partitions(
            db.owner_dsn,
            months_ahead=3,
            raw_retention_days=90,
            inbox_retention_days=180,
            today=today,
        )

        suffix = far_month.strftime("%Y%m")
        assert {
            f"{t}_p{suffix}": 1 for t in PARTITIONED_TABLES
        }.items() <= report.moved_rows.items()
        assert _homes(app, rows) == {t: [f"{t}_p{suffix}"] for t in PARTITIONED_TABLES}
        forced = owner.execute(
            "SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relname LIKE '%%\\_default'"
        ).fetchone()
        assert forced == (True,)
