"""Render each Alembic migration to SQL offline and lint it with squawk.

STORE-5, "schema migration on hot table": an ``ALTER TABLE`` on a big table takes an
``ACCESS EXCLUSIVE`` lock and can block every read and write for minutes. squawk
(``squawk-cli`` on PyPI) knows which statements do that; this module feeds it exactly the
SQL Alembic would run, one file per migration (``alembic upgrade <prev>:<rev> --sql``), so
its report names the migration. No database is needed. ``nox -s migrations`` runs it::

    python -m pixecom_core.db.migration_lint --config .squawk.toml --output build/migrations

The exit status is 1 when squawk reports anything, 2 when it cannot run at all.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Migrations grant to the app role; any name renders the same statements.
RENDER_APP_ROLE = "pixecom_app"
#: Alembic's own bookkeeping table has a ``VARCHAR(32)`` column that Alembic, not a
#: migration, creates; only that line is exempt from ``prefer-text-field`` (a squawk
#: ignore comment covers the line below it).
_VERSION_COLUMN = re.compile(r"(CREATE TABLE alembic_version \(\n)(\s*version_num VARCHAR)")


class MigrationLintError(RuntimeError):
    """The lint could not run (squawk missing, a bad config, a migration that won't render)."""


@dataclass(frozen=True)
class Violation:
    """One squawk finding in a rendered migration."""

    file: str
    #: 1-based, as editors count (squawk reports 0-based lines).
    line: int
    rule: str
    message: str
    help: str | None = None

    def __str__(self) -> str:
        hint = f" ({self.help})" if self.help else ""
        return f"{self.file}:{self.line}: {self.rule}: {self.message}{hint}"


def revisions_in_order(script_location: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    """``(previous, revision)`` pairs from the first migration to head.

    ``previous`` is ``"base"`` for the first. A branched history cannot be rendered one
    step at a time, so it is refused.
    """
    config = Config()
    config.set_main_option("script_location", str(script_location))
    script = ScriptDirectory.from_config(config)
    if len(script.get_heads()) > 1:
        raise MigrationLintError(f"migrations have several heads: {script.get_heads()}")
    steps: list[tuple[str, str]] = []
    for revision in reversed(list(script.walk_revisions())):
        down = revision.down_revision
        if isinstance(down, tuple | list):
            raise MigrationLintError(f"{revision.revision} merges {down}: render it by hand")
        steps.append((down or "base", revision.revision))
    return steps


def render_migration(previous: str, revision: str, script_location: Path = MIGRATIONS_DIR) -> str:
    """The SQL ``alembic upgrade previous:revision --sql`` writes, with no database."""
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(script_location))
    config.attributes["app_role"] = RENDER_APP_ROLE
    try:
        command.upgrade(config, f"{previous}:{revision}", sql=True)
    except Exception as error:  # whatever a migration raises, say which one it was
        raise MigrationLintError(f"{revision} does not render offline: {error!r}") from error
    return _VERSION_COLUMN.sub(
        r"\1    -- squawk-ignore prefer-text-field\n\2", buffer.getvalue(), count=1
    )


def render_migrations(output_dir: Path, script_location: Path = MIGRATIONS_DIR) -> list[Path]:
    """Write ``<revision>.sql`` for every migration into ``output_dir``; return the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for previous, revision in revisions_in_order(script_location):
        path = output_dir / f"{revision}.sql"
        path.write_text(render_migration(previous, revision, script_location))
        paths.append(path)
    return paths


def squawk_executable() -> str:
    """The ``squawk`` binary of this environment (``squawk-cli``), else the one on PATH."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which("squawk", path=search)
    if found is None:
        raise MigrationLintError(
            "squawk not found: `pip install squawk-cli` (it is in pixecom's test extra)"
        )
    return found


def lint(paths: Sequence[Path], config: Path) -> list[Violation]:
    """Run squawk over ``paths`` with ``config``; every finding, in file order."""
    if not config.is_file():
        raise MigrationLintError(f"squawk config {config} does not exist")
    if not paths:
        raise MigrationLintError("nothing to lint: no migration was rendered")
    result = subprocess.run(
        [squawk_executable(), "--config", str(config), "--reporter", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        findings = json.loads(result.stdout)
    except json.JSONDecodeError:
        # A bad config or a missing file: squawk prints an error, no report, exits 1.
        raise MigrationLintError(
            f"squawk failed (exit {result.returncode}): {result.stderr.strip()}"
        ) from None
    violations = [
        Violation(
            file=str(finding["file"]),
            line=int(finding["line"]) + 1,
            rule=str(finding["rule_name"]),
            message=str(finding["message"]),
            help=finding.get("help"),
        )
        for finding in findings
    ]
    if result.returncode != 0 and not violations:
        raise MigrationLintError(f"squawk exited {result.returncode}: {result.stderr.strip()}")
    return violations


def check_migrations(
    config: Path, output_dir: Path, script_location: Path = MIGRATIONS_DIR
) -> list[Violation]:
    """Render every migration into ``output_dir`` and lint them: the CI gate."""
    return lint(render_migrations(output_dir, script_location), config)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: render, lint, print each violation; exit 1 if there is any."""
    parser = argparse.ArgumentParser(
        prog="python -m pixecom_core.db.migration_lint",
        description="Render each Alembic migration to SQL and lint it with squawk.",
    )
    parser.add_argument("--config", type=Path, default=Path(".squawk.toml"))
    parser.add_argument(
        "--output", type=Path, help="keep the rendered SQL here (default: a temporary folder)"
    )
    parser.add_argument("--script-location", type=Path, default=MIGRATIONS_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            rendered = render_migrations(args.output or Path(scratch), args.script_location)
            violations = lint(rendered, args.config)
        except MigrationLintError as error:
            print(f"migration lint: {error}", file=sys.stderr)  # noqa: T201 (a CLI)
            return 2
    for violation in violations:
        print(violation)  # noqa: T201 (a CLI)
    summary = f"{len(rendered)} migrations rendered, {len(violations)} squawk violations"
    print(summary, file=sys.stderr)  # noqa: T201 (a CLI)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
