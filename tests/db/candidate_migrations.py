"""Candidate migrations written by tests on top of a copy of the real ones."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from pixecom_core.db import migration_lint
from pixecom_core.db.migration_lint import MIGRATIONS_DIR


def _head() -> str:
    """The current head revision of the real migrations."""
    return migration_lint.revisions_in_order()[-1][1]


def with_candidate_migrations(tmp_path: Path, *upgrade_bodies: str) -> Path:
    """A copy of the real migrations plus ``0099_candidate``, ``0100_candidate`` … on top
    of head, one per body, as a developer would add them."""
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    down_revision = _head()
    for number, upgrade_body in enumerate(upgrade_bodies, start=99):
        revision = f"{number:04d}_candidate"
        body = textwrap.indent(textwrap.dedent(upgrade_body).strip(), "    ")
        source = "\n".join(
            [
                '"""A candidate migration written by a test."""',
                "import sqlalchemy as sa",
                "from alembic import op",
                "",
                "from pixecom_core.db import migration_support",
                "",
                f"revision = {revision!r}",
                f"down_revision = {down_revision!r}",
                "branch_labels = None",
                "depends_on = None",
                "",
                "def upgrade() -> None:",
                body,
                "",
                "def downgrade() -> None:",
                "    pass",
                "",
            ]
        )
        (location / "versions" / f"{revision}.py").write_text(source)
        down_revision = revision
    return location
