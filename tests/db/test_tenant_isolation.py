"""Row-level security keeps every seller to its own rows (audit §5, must-fix-1000 #7).

Arranged as the owner, acted on as the application role: the role the API and worker use.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import errors, sql

from pixecom_core.models import PARTITIONED_TABLES, SELLER_OWNED_TABLES
from pixecom_core.testing.databases import TestDatabase
from tests.db.tenant_rows import Connection, TwoSellers, seller_scope


def partitions_of(conn: Connection, table: str) -> list[str]:
    """Every partition of ``table``, the default one included."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (table,),
    ).fetchall()
    return [name for (name,) in rows]


def test_every_seller_owned_table_is_seeded(two_sellers: TwoSellers) -> None:
    # The isolation tests below are only as good as their coverage.
    assert set(two_sellers.rows_a) == set(SELLER_OWNED_TABLES)
    assert set(two_sellers.rows_b) == set(SELLER_OWNED_TABLES)


@pytest.mark.parametrize("table", SELLER_OWNED_TABLES)
def test_scope_sees_only_its_own_rows(
    app_conn: Connection, two_sellers: TwoSellers, table: str
) -> None:
    with seller_scope(app_conn, two_sellers.a):
        sellers = app_conn.execute(
            sql.SQL("SELECT DISTINCT seller_id FROM {}").format(sql.Identifier(table))
        ).fetchall()
        count = app_conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    assert sellers == [(two_sellers.a,)]
    assert count == (two_sellers.rows_a[table],)


def test_scope_sees_only_its_own_seller(app_conn: Connection, two_sellers: TwoSellers) -> None:
    with seller_scope(app_conn, two_sellers.a):
        assert app_conn.execute("SELECT id FROM sellers").fetchall() == [(two_sellers.a,)]


@pytest.mark.parametrize("scope", [None, "", str(uuid.uuid4())])
def test_without_a_scope_every_table_is_empty(
    app_conn: Connection, two_sellers: TwoSellers, scope: str | None
) -> None:
    assert two_sellers.rows_a  # rows exist; the app role must not see them
    with seller_scope(app_conn, scope):
        for table in (*SELLER_OWNED_TABLES, "sellers"):
            count = app_conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
            assert count == (0,), table


@pytest.mark.parametrize("table", sorted(PARTITIONED_TABLES))
def test_partitions_cannot_be_queried_directly(
    app_conn: Connection, owner_conn: Connection, two_sellers: TwoSellers, table: str
) -> None:
    partitions = partitions_of(owner_conn, table)
    assert f"{table}_default" in partitions
    assert len(partitions) > 1
    for partition in partitions:
        try:
            with seller_scope(app_conn, two_sellers.a):
                rows = app_conn.execute(
                    sql.SQL("SELECT seller_id FROM {}").format(sql.Identifier(partition))
                ).fetchall()
        except errors.InsufficientPrivilege:
            continue  # refused: the app role holds privileges on the parent only
        assert (two_sellers.b,) not in rows, partition


@pytest.mark.parametrize("table", sorted(PARTITIONED_TABLES))
def test_every_partition_has_forced_rls_and_no_app_privilege(
    owner_conn: Connection, database: TestDatabase, table: str
) -> None:
    # STACK-NOTES: a partition queried directly ignores its parent's policies, so each
    # one carries its own, in case a privilege is ever granted by mistake.
    role = database.settings.app_role
    for partition in partitions_of(owner_conn, table):
        row = owner_conn.execute(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid"
            "         AND p.polname = 'seller_isolation'),"
            " has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
            " FROM pg_class AS c WHERE c.oid = %s::regclass",
            (role, partition),
        ).fetchone()
        assert row == (True, True, True, False), partition


def test_scope_cannot_write_another_sellers_rows(
    app_conn: Connection, two_sellers: TwoSellers
) -> None:
    now = datetime.now(UTC)
    attempts = [
        ("INSERT INTO products (seller_id, sku, name) VALUES (%s, 'X-1', 'x')", (two_sellers.b,)),
        (
            "INSERT INTO orders (seller_id, currency, subtotal_minor, total_minor,"
            " customer_email, created_at) VALUES (%s, 'USD', 1, 1, 'a@b.c', %s)",
            (two_sellers.b, now),
        ),
        ("UPDATE products SET seller_id = %s", (two_sellers.b,)),
    ]
    for statement, params in attempts:
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            with seller_scope(app_conn, two_sellers.a):
                app_conn.execute(statement, params)


def test_scope_cannot_change_another_sellers_rows(
    app_conn: Connection, owner_conn: Connection, two_sellers: TwoSellers
) -> None:
    with seller_scope(app_conn, two_sellers.a):
        cursor = app_conn.execute(
            "UPDATE products SET name = 'hijacked' WHERE seller_id = %s", (two_sellers.b,)
        )
        assert cursor.rowcount == 0
        cursor = app_conn.execute("DELETE FROM products WHERE seller_id = %s", (two_sellers.b,))
        assert cursor.rowcount == 0
    names = owner_conn.execute(
        "SELECT name FROM products WHERE seller_id = %s", (two_sellers.b,)
    ).fetchall()
    assert names == [("Widget",)]


def test_app_role_is_neither_owner_nor_privileged(
    database: TestDatabase, owner_conn: Connection
) -> None:
    role = database.settings.app_role
    attributes = owner_conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
        " WHERE rolname = %s",
        (role,),
    ).fetchone()
    assert attributes == (False, False, False, False)
    owned = owner_conn.execute(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)"
        " + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)"
        " + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)"
        " FROM pg_roles AS r WHERE r.rolname = %s",
        (role,),
    ).fetchone()
    assert owned == (0,)
    with psycopg.connect(database.app_dsn, autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (x int)")


def test_every_seller_owned_table_forces_rls(owner_conn: Connection) -> None:
    rows = owner_conn.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND c.relrowsecurity AND c.relforcerowsecurity"
    ).fetchall()
    assert {name for (name,) in rows} == {*SELLER_OWNED_TABLES, "sellers"}
