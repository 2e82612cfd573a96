"""The migration helpers and the migration environment on a real PostgreSQL (STORE-5).

Candidate migrations are applied with Alembic, as ``pixecom db upgrade`` would, to a
migrated database of this module's own: a concurrent build replaces the INVALID index a
failed build left, a NOT VALID constraint is validated in a migration of its own, each
migration commits on its own, and a migration that cannot get its lock gives up after the
lock timeout instead of queueing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy.exc
from alembic import command

from pixecom_core.db import admin, migration_lint, migration_support
from pixecom_core.testing.databases import TestDatabase
from tests.db.candidate_migrations import with_candidate_migrations

HEAD = migration_lint.revisions_in_order()[-1][1]
Owner = psycopg.Connection[tuple[object, ...]]


def _upgrade(database: TestDatabase, location: Path) -> None:
    config = admin.alembic_config(database.owner_dsn, app_role=database.settings.app_role)
    config.set_main_option("script_location", str(location))
    command.upgrade(config, "head")


def _version(owner: Owner) -> object:
    row = owner.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return row[0]


def _index_state(owner: Owner, name: str) -> tuple[object, ...] | None:
    return owner.execute(
        "SELECT i.indisvalid, i.indisunique FROM pg_index AS i"
        " JOIN pg_class AS c ON c.oid = i.indexrelid WHERE c.relname = %s",
        (name,),
    ).fetchone()


def _constraint_validated(owner: Owner, name: str) -> object:
    row = owner.execute(
        "SELECT convalidated FROM pg_constraint WHERE conname = %s", (name,)
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def owner(scratch_database: TestDatabase) -> Iterator[Owner]:
    """An autocommit owner connection; ``hot_items`` stands for an existing busy table.

    Afterwards the table is gone and the database is back at the real head revision.
    """
    with psycopg.connect(scratch_database.owner_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE hot_items (id bigint PRIMARY KEY, code text NOT NULL)")
        try:
            yield conn
        finally:
            conn.execute("DROP TABLE hot_items")
            conn.execute("UPDATE alembic_version SET version_num = %s", (HEAD,))


def test_a_concurrent_build_replaces_the_invalid_index_a_failed_build_left(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path
) -> None:
    owner.execute("INSERT INTO hot_items VALUES (1, 'a'), (2, 'a')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        owner.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_hot_items_code ON hot_items (code)")
    assert _index_state(owner, "ix_hot_items_code") == (False, True)  # the leftover

    location = with_candidate_migrations(
        tmp_path,
        'migration_support.create_index_concurrently("ix_hot_items_code", "hot_items", "(code)")',
    )
    _upgrade(scratch_database, location)

    assert _index_state(owner, "ix_hot_items_code") == (True, False)
    assert _version(owner) == "0099_candidate"


def test_a_unique_index_built_concurrently_becomes_a_constraint(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path
) -> None:
    owner.execute("INSERT INTO hot_items VALUES (1, 'a'), (2, 'b')")
    location = with_candidate_migrations(
        tmp_path,
        'migration_support.create_index_concurrently("uq_hot_items_code", "hot_items",'
        ' "(code)", unique=True)',
        """op.execute("ALTER TABLE hot_items ADD CONSTRAINT uq_hot_items_code"
                   " UNIQUE USING INDEX uq_hot_items_code")""",
    )
    _upgrade(scratch_database, location)

    assert _index_state(owner, "uq_hot_items_code") == (True, True)
    with pytest.raises(psycopg.errors.UniqueViolation, match="uq_hot_items_code"):
        owner.execute("INSERT INTO hot_items VALUES (3, 'a')")


def test_a_not_valid_constraint_is_validated_in_a_migration_of_its_own(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path
) -> None:
    owner.execute("INSERT INTO hot_items VALUES (1, 'a')")
    location = with_candidate_migrations(
        tmp_path,
        """op.execute("ALTER TABLE hot_items ADD CONSTRAINT ck_hot_items_code"
                   " CHECK (code <> '') NOT VALID")""",
        'migration_support.validate_constraint("hot_items", "ck_hot_items_code")',
        # With the check validated, SET NOT NULL skips its scan; the exception is a comment
        # in rendered SQL only, nothing is sent to the server for it.
        """
        migration_support.lint_exception("adding-not-nullable-field", "checked by 0100")
        op.alter_column("hot_items", "note", nullable=False)
        """,
    )
    owner.execute("ALTER TABLE hot_items ADD COLUMN note text")
    owner.execute("UPDATE hot_items SET note = 'n'")
    _upgrade(scratch_database, location)

    assert _constraint_validated(owner, "ck_hot_items_code") is True
    not_null = owner.execute(
        "SELECT attnotnull FROM pg_attribute"
        " WHERE attrelid = 'hot_items'::regclass AND attname = 'note'"
    ).fetchone()
    assert not_null == (True,)
    assert _version(owner) == "0101_candidate"


def test_each_migration_commits_on_its_own(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path
) -> None:
    # An old row breaks the constraint: validation fails, the migration before it stays.
    owner.execute("INSERT INTO hot_items VALUES (1, '')")
    location = with_candidate_migrations(
        tmp_path,
        """op.execute("ALTER TABLE hot_items ADD CONSTRAINT ck_hot_items_code"
                   " CHECK (code <> '') NOT VALID")""",
        'migration_support.validate_constraint("hot_items", "ck_hot_items_code")',
    )

    with pytest.raises(sqlalchemy.exc.IntegrityError) as raised:
        _upgrade(scratch_database, location)

    assert isinstance(raised.value.orig, psycopg.errors.CheckViolation)
    assert _version(owner) == "0099_candidate"
    assert _constraint_validated(owner, "ck_hot_items_code") is False
    with pytest.raises(psycopg.errors.CheckViolation):  # new rows are checked already
        owner.execute("INSERT INTO hot_items VALUES (2, '')")


def test_a_migration_gives_up_on_a_busy_table_after_the_lock_timeout(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration_support, "LOCK_TIMEOUT", "300ms")
    location = with_candidate_migrations(
        tmp_path, 'op.add_column("hot_items", sa.Column("note", sa.Text(), nullable=True))'
    )
    with psycopg.connect(scratch_database.owner_dsn) as reader:
        # Should the timeout not work, the server ends this session: a failure, not a hang.
        reader.execute("SET idle_in_transaction_session_timeout = '10s'")
        reader.execute("SELECT count(*) FROM hot_items")  # a long read holds ACCESS SHARE
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
            _upgrade(scratch_database, location)
        waited = time.monotonic() - started
        reader.rollback()

    assert isinstance(raised.value.orig, psycopg.errors.LockNotAvailable)
    assert waited < 5
    assert _version(owner) == HEAD
    # Once the table is free, the same migration simply runs again.
    _upgrade(scratch_database, location)
    assert _version(owner) == "0099_candidate"


def test_statements_are_bounded_except_in_autocommit_blocks(
    owner: Owner, scratch_database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration_support, "STATEMENT_TIMEOUT", "200ms")
    slow = with_candidate_migrations(tmp_path / "slow", 'op.execute("SELECT pg_sleep(1)")')
    with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
        _upgrade(scratch_database, slow)
    assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)
    assert _version(owner) == HEAD

    lifted = with_candidate_migrations(
        tmp_path / "lifted",
        """
        with migration_support.autocommit_block():
            op.execute("SELECT pg_sleep(1)")
        """,
    )
    _upgrade(scratch_database, lifted)
    assert _version(owner) == "0099_candidate"
