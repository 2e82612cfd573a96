"""The migrated schema is the one the models describe, and follows the schema rules
(STORE-6): seller-leading keys, composite tenant FKs, timestamptz, money."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Table, create_engine, pool
from sqlalchemy.engine import Connection as SAConnection

from pixecom_core.db import admin
from pixecom_core.models import (
    APPEND_ONLY_TABLES,
    PARTITIONED_TABLES,
    SELLER_OWNED_TABLES,
    SellerOwned,
    metadata,
)
from pixecom_core.models.base import EnumText
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from tests.db.tenant_rows import Connection


@pytest.fixture
def sa_connection(database: TestDatabase) -> Iterator[SAConnection]:
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(database.owner_dsn),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _partition_children(conn: Connection) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relispartition"
    ).fetchall()
    return {name for (name,) in rows}


def test_models_match_the_migrated_schema(
    sa_connection: SAConnection, owner_conn: Connection
) -> None:
    # Monthly and default partitions are created by the migration and by maintenance,
    # never by the models (SQLAlchemy has no notion of a partition child): they, and the
    # indexes PostgreSQL clones onto them, are the only objects left out of the comparison.
    children = _partition_children(owner_conn)

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if reflected and compare_to is None:
            if type_ == "table" and name in children:
                return False
            if type_ == "index" and obj.table.name in children:
                return False
        return True

    context = MigrationContext.configure(
        sa_connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": include_object,
        },
    )
    assert compare_metadata(context, metadata) == []


def test_check_constraints_match(owner_conn: Connection) -> None:
    # Alembic does not compare CHECK constraints; names must agree table by table.
    rows = owner_conn.execute(
        "SELECT c.relname, k.conname FROM pg_constraint AS k"
        " JOIN pg_class AS c ON c.oid = k.conrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND k.contype = 'c' AND NOT c.relispartition"
    ).fetchall()
    in_database: dict[str, set[str]] = {}
    for table, name in rows:
        in_database.setdefault(table, set()).add(name)
    in_models = {
        table.name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for table in metadata.sorted_tables
    }
    in_models = {table: names for table, names in in_models.items() if names}
    assert in_database == in_models


def _enum_columns() -> Iterator[tuple[Table, str, EnumText[Any]]]:
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EnumText):
                yield table, column.name, column.type


@pytest.mark.parametrize(
    ("table", "column", "enum_type"),
    [pytest.param(t, c, e, id=f"{t.name}.{c}") for t, c, e in _enum_columns()],
)
def test_enum_checks_allow_exactly_the_enum_values(
    owner_conn: Connection, table: Table, column: str, enum_type: EnumText[Any]
) -> None:
    row = owner_conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND conname = %s",
        (table.name, f"ck_{table.name}_{column}_allowed"),
    ).fetchone()
    assert row is not None, f"{table.name}.{column} has no CHECK constraint"
    allowed = set(re.findall(r"'([^']*)'::text", row[0]))
    assert allowed == {member.value for member in enum_type.enum_class}


def test_seller_owned_tables_are_the_seller_owned_models() -> None:
    def subclasses(cls: type[SellerOwned]) -> Iterator[type[SellerOwned]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    modelled = {
        str(cls.__tablename__) for cls in subclasses(SellerOwned) if hasattr(cls, "__table__")
    }
    assert modelled == set(SELLER_OWNED_TABLES)
    assert len(SELLER_OWNED_TABLES) == len(set(SELLER_OWNED_TABLES))
    assert set(APPEND_ONLY_TABLES) <= set(SELLER_OWNED_TABLES)


def test_partitioned_tables_are_partitioned_by_their_column(owner_conn: Connection) -> None:
    rows = owner_conn.execute(
        "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table AS p"
        " JOIN pg_class AS c ON c.oid = p.partrelid"
    ).fetchall()
    expected = {table: f"RANGE ({column})" for table, column in PARTITIONED_TABLES.items()}
    assert dict(rows) == expected
    for table, key in expected.items():
        assert metadata.tables[table].dialect_options["postgresql"]["partition_by"] == key


def test_every_key_of_a_seller_owned_table_leads_with_seller_id(owner_conn: Connection) -> None:
    # STORE-6: distributable by seller_id (Citus) — every PK and unique key starts with it.
    rows = owner_conn.execute(
        "SELECT c.relname, i.indexrelid::regclass::text, a.attname"
        " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid"
        " JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]"
        " WHERE i.indisunique AND c.relname = ANY(%s) AND NOT c.relispartition",
        (list(SELLER_OWNED_TABLES),),
    ).fetchall()
    assert {table for table, _, _ in rows} == set(SELLER_OWNED_TABLES)
    assert [(index, column) for _, index, column in rows if column != "seller_id"] == []


def test_references_between_seller_owned_tables_carry_the_seller(
    owner_conn: Connection,
) -> None:
    # A child can never point at another seller's parent: (seller_id, x) -> (seller_id, id).
    rows = owner_conn.execute(
        "SELECT k.conname, src.relname, dst.relname,"
        " ARRAY(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY AS u(n, o)"
        "       JOIN pg_attribute ON attrelid = k.conrelid AND attnum = u.n ORDER BY u.o),"
        " ARRAY(SELECT attname FROM unnest(k.confkey) WITH ORDINALITY AS u(n, o)"
        "       JOIN pg_attribute ON attrelid = k.confrelid AND attnum = u.n ORDER BY u.o)"
        " FROM pg_constraint AS k JOIN pg_class AS src ON src.oid = k.conrelid"
        " JOIN pg_class AS dst ON dst.oid = k.confrelid"
        " WHERE k.contype = 'f' AND NOT src.relispartition AND k.conparentid = 0"
    ).fetchall()
    owned = set(SELLER_OWNED_TABLES) | {"login_identities", "public_sellpage_slugs"}
    checked = 0
    for name, source, target, columns, referenced in rows:
        if source in owned and target in SELLER_OWNED_TABLES:
            checked += 1
            assert columns[0] == "seller_id" and referenced[0] == "seller_id", name
    assert checked >= 15


def test_column_conventions(owner_conn: Connection) -> None:
    columns = owner_conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    ).fetchall()
    naive = [(t, c) for t, c, kind in columns if kind == "timestamp without time zone"]
    assert naive == []
    money = [
        (t, c, kind)
        for t, c, kind in columns
        if (c.endswith(("_minor", "_micros"))) and kind != "bigint"
    ]
    assert money == []
    checks = {
        name
        for (name,) in owner_conn.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'c'"
        ).fetchall()
    }
    for table, column, _ in columns:
        if (column == "currency" or column.endswith("_currency")) and table in metadata.tables:
            assert f"ck_{table}_{column}_iso4217" in checks, (table, column)


def test_downgrade_removes_everything_and_upgrade_restores_it(
    servers: tuple[str, str], database: TestDatabase
) -> None:
    role = database.settings.app_role
    with provision_test_database(*servers, app_role=role) as scratch:
        admin.downgrade(scratch.owner_dsn, app_role=role, revision="base")
        with psycopg.connect(scratch.owner_dsn) as conn:
            leftovers = conn.execute(
                "SELECT relname FROM pg_class AS c JOIN pg_namespace AS n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                " AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'"
                " UNION ALL SELECT proname FROM pg_proc AS p JOIN pg_namespace AS n"
                " ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            ).fetchall()
        assert leftovers == []
        admin.upgrade(scratch.owner_dsn, app_role=role)
        with psycopg.connect(scratch.owner_dsn) as conn:
            count = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname = ANY(%s)",
                (list(metadata.tables),),
            ).fetchone()
        assert count == (len(metadata.tables),)
