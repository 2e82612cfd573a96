"""Row-level security keeps every seller to its own rows (TENANT-2).

Arranged as the owner, acted on as the application role: the role the API and worker use.
Besides the named lists of tables, the catalogue is walked: every table (and partition)
with a ``seller_id`` column is checked, so a table added later is caught without anyone
remembering to list it (issue 12 item 3).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import errors, sql

from pixecom_core.models import PARTITIONED_TABLES, SELLER_ATTRIBUTED_TABLES, SELLER_OWNED_TABLES
from pixecom_core.testing.databases import TestDatabase
from tests.db.tenant_rows import Connection, TwoSellers, insert_unattributed_rows, seller_scope

#: Every table the seeding covers and whose rows the named tests check.
SELLER_TABLES = (*SELLER_OWNED_TABLES, *SELLER_ATTRIBUTED_TABLES)
#: The one table with a ``seller_id`` the app role reads without a scope: the public slug
#: directory, which a storefront request reads to learn the seller in the first place.
READABLE_ACROSS_SELLERS = {"public_sellpage_slugs"}


def tables_with_a_seller_id(conn: Connection) -> list[str]:
    """Every table (partitioned parents, not partitions) with a ``seller_id`` column."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'seller_id'"
        "  AND NOT a.attisdropped"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


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
    assert set(two_sellers.rows_a) == set(SELLER_TABLES)
    assert set(two_sellers.rows_b) == set(SELLER_TABLES)


@pytest.mark.parametrize("table", SELLER_TABLES)
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
        for table in (*SELLER_TABLES, "sellers"):
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
    # PostgreSQL: a partition queried directly ignores its parent's policies, so each
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
    # A connection's own temporary tables (the raw ingest's staging table, kept for the
    # connection's life) are its scratch space, gone with it; schema objects are not.
    owned = owner_conn.execute(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid"
        " AND relpersistence <> 't')"
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
    assert {name for (name,) in rows} == {*SELLER_TABLES, "sellers"}


def test_every_table_with_a_seller_id_keeps_sellers_apart(
    app_conn: Connection,
    owner_conn: Connection,
    two_sellers: TwoSellers,
    database: TestDatabase,
) -> None:
    """From the catalogue: a table with a ``seller_id`` that the app role holds any
    privilege on has row-level security enabled and forced, and shows the app role, in
    seller A's scope, none of seller B's rows nor the rows of no seller, and nothing
    without a scope. A table the app role holds no privilege on (the login and payment
    directories, read through owner functions) refuses it outright."""
    role = database.settings.app_role
    tables = tables_with_a_seller_id(owner_conn)
    assert set(SELLER_TABLES) <= set(tables)  # the walk is not vacuous
    insert_unattributed_rows(owner_conn)
    checked: list[str] = []
    for table in tables:
        if table in READABLE_ACROSS_SELLERS:
            continue
        query = sql.SQL("SELECT count(*) FROM {} WHERE seller_id = %s").format(
            sql.Identifier(table)
        )
        with seller_scope(owner_conn, two_sellers.b):
            b_rows = owner_conn.execute(query, (two_sellers.b,)).fetchone()
        assert b_rows is not None and b_rows[0] > 0, (
            f"{table}: seed a row of each seller in tests/db/tenant_rows.py, so the isolation "
            "tests can prove it is invisible to other sellers"
        )
        forced, privileged, readable = owner_conn.execute(
            "SELECT c.relrowsecurity AND c.relforcerowsecurity,"
            " has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'),"
            " has_table_privilege(%s, c.oid, 'SELECT')"
            " FROM pg_class AS c WHERE c.oid = %s::regclass",
            (role, role, table),
        ).fetchone() or (None, None, None)
        if not privileged:
            with pytest.raises(errors.InsufficientPrivilege):
                with seller_scope(app_conn, two_sellers.a):
                    app_conn.execute(query, (two_sellers.a,))
            checked.append(table)
            continue
        assert forced, f"{table}: the app role may use it, so it needs FORCE ROW LEVEL SECURITY"
        if not readable:
            continue
        others = sql.SQL("SELECT count(*) FROM {} WHERE seller_id IS DISTINCT FROM %s").format(
            sql.Identifier(table)
        )
        everything = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        with seller_scope(app_conn, two_sellers.a):
            assert app_conn.execute(others, (two_sellers.a,)).fetchone() == (0,), table
            assert app_conn.execute(query, (two_sellers.a,)).fetchone() == (
                two_sellers.rows_a.get(table, 1),
            ), table
        with seller_scope(app_conn, None):
            assert app_conn.execute(everything).fetchone() == (0,), table
        checked.append(table)
    assert set(SELLER_TABLES) | {"login_identities", "payment_directory"} <= set(checked)


def test_no_partition_of_a_table_with_a_seller_id_is_open_to_the_app_role(
    owner_conn: Connection, database: TestDatabase
) -> None:
    # PostgreSQL: a partition queried directly ignores its parent's policies. Walked from
    # the catalogue, so a partitioned table added later is covered too.
    role = database.settings.app_role
    rows = owner_conn.execute(
        "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity,"
        " has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
        " FROM pg_class AS c"
        " JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'seller_id'"
        " WHERE c.relispartition AND c.relkind IN ('r', 'p')",
        (role,),
    ).fetchall()
    assert len(rows) >= 2 * len(PARTITIONED_TABLES)
    assert [name for name, forced, privileged in rows if not forced or privileged] == []
