"""The migration lint (STORE-5, "schema migration on hot table") passes the real
migrations and fails a migration that would lock a hot table.

Every test renders migrations offline and runs the real squawk binary; none needs a
database. Bad migrations are written into a copy of the migrations folder, as a developer
would add one, and go through the same path as CI (`nox -s migrations`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pixecom_core.db import migration_lint
from pixecom_core.db.migration_lint import MIGRATIONS_DIR, MigrationLintError, Violation
from tests.db.candidate_migrations import with_candidate_migrations

CONFIG = Path(__file__).resolve().parents[2] / ".squawk.toml"

#: The rules the audit item is about; the project config must never switch them off.
LOCK_RULES = {
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "adding-field-with-default",
    "changing-column-type",
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
    "adding-not-nullable-field",
    "disallowed-unique-constraint",
    "require-lock-timeout",
    "require-statement-timeout",
    "ban-drop-column",
    "renaming-column",
    "renaming-table",
}


def _candidate_rules(violations: list[Violation]) -> set[str]:
    """Rules reported for the candidates; anything reported elsewhere fails the test."""
    elsewhere = [v for v in violations if not v.file.endswith("_candidate.sql")]
    assert elsewhere == []
    return {v.rule for v in violations}


def test_every_migration_renders_offline_and_lints_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No database is needed: CI lints on a bare machine.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    violations = migration_lint.check_migrations(CONFIG, tmp_path)

    assert violations == [], "\n".join(map(str, violations))
    revisions = [revision for _, revision in migration_lint.revisions_in_order()]
    shipped = sorted(path.stem for path in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert sorted(path.stem for path in tmp_path.glob("*.sql")) == sorted(revisions)
    assert revisions == shipped
    for revision in revisions:
        sql = (tmp_path / f"{revision}.sql").read_text()
        # Each file is one migration, under the session's timeouts, ending on its version.
        assert sql.startswith("SET lock_timeout = '10s';")
        recorded = (f"VALUES ('{revision}')", f"SET version_num='{revision}'")
        assert any(statement in sql for statement in recorded)


def test_the_concurrent_index_is_rebuilt_if_a_failed_build_left_one() -> None:
    sql = migration_lint.render_migration("0002_seller_directory", "0003_ads_by_creative")

    drop = sql.index("DROP INDEX CONCURRENTLY IF EXISTS ix_ads_seller_id_creative_id")
    create = sql.index("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_ads_seller_id_creative_id")
    # Outside the migration's transaction, without a statement timeout, then restored.
    assert sql.rindex("COMMIT;", 0, drop) > sql.rindex("BEGIN;", 0, drop)
    assert sql.rindex("SET statement_timeout = 0;", 0, drop) < drop < create
    assert "SET statement_timeout = '60s';" in sql[create:]


@pytest.mark.parametrize(
    ("upgrade_body", "expected_rule"),
    [
        pytest.param(
            'op.create_index("ix_ads_name", "ads", ["name"])',
            "require-concurrent-index-creation",
            id="index-without-concurrently",
        ),
        pytest.param(
            'op.drop_index("ix_ads_seller_id_creative_id", table_name="ads")',
            "require-concurrent-index-deletion",
            id="drop-index-without-concurrently",
        ),
        pytest.param(
            'op.add_column("ads", sa.Column("token", sa.Uuid(), nullable=False,'
            ' server_default=sa.text("gen_random_uuid()")))',
            "adding-field-with-default",
            id="volatile-default-rewrites-the-table",
        ),
        pytest.param(
            'op.execute("ALTER TABLE ad_stats_raw ADD COLUMN seen_at timestamptz'
            ' DEFAULT clock_timestamp()")',
            "adding-field-with-default",
            id="volatile-default-on-a-partitioned-hot-table",
        ),
        pytest.param(
            'op.alter_column("ads", "external_id", type_=sa.BigInteger(),'
            ' postgresql_using="external_id::bigint")',
            "changing-column-type",
            id="column-type-change",
        ),
        pytest.param(
            'op.create_check_constraint("ck_ads_name_length", "ads", "length(name) < 500")',
            "constraint-missing-not-valid",
            id="check-constraint-validated-under-lock",
        ),
        pytest.param(
            'op.create_foreign_key("fk_ads_bad", "ads", "sellers", ["seller_id"], ["id"])',
            "adding-foreign-key-constraint",
            id="foreign-key-validated-under-lock",
        ),
        pytest.param(
            'op.alter_column("ads", "creative_id", nullable=False)',
            "adding-not-nullable-field",
            id="set-not-null-scans-under-lock",
        ),
        pytest.param(
            'op.create_unique_constraint("uq_ads_external_id", "ads", ["external_id"])',
            "disallowed-unique-constraint",
            id="unique-constraint-builds-under-lock",
        ),
        pytest.param(
            """
            op.execute("ALTER TABLE ads ADD CONSTRAINT ck_ads_name CHECK (name <> '') NOT VALID")
            op.execute("ALTER TABLE ads VALIDATE CONSTRAINT ck_ads_name")
            """,
            "constraint-missing-not-valid",
            id="validate-in-the-same-transaction",
        ),
    ],
)
def test_a_migration_that_locks_an_existing_table_fails_the_lint(
    tmp_path: Path, upgrade_body: str, expected_rule: str
) -> None:
    location = with_candidate_migrations(tmp_path, upgrade_body)

    violations = migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)

    assert expected_rule in _candidate_rules(violations)
    # The report names the migration, so the developer knows which file to fix.
    assert all(v.file.endswith("0099_candidate.sql") and v.line > 0 for v in violations)


def test_the_safe_forms_of_the_same_changes_pass(tmp_path: Path) -> None:
    location = with_candidate_migrations(
        tmp_path,
        # CONCURRENTLY steps commit what came before them: a migration of their own.
        """
        migration_support.create_index_concurrently("ix_ads_name", "ads", "(name)")
        migration_support.drop_index_concurrently("ix_ads_name")
        migration_support.create_index_concurrently(
            "uq_ads_external_id", "ads", "(seller_id, external_id)", unique=True
        )
        """,
        # Nullable or constant-default columns are metadata-only; NOT VALID locks briefly.
        """
        op.add_column("ads", sa.Column("note", sa.Text(), nullable=True))
        op.add_column("ads", sa.Column("retries", sa.BigInteger(), server_default="0",
                                       nullable=False))
        op.execute("ALTER TABLE ads ADD CONSTRAINT ck_ads_note CHECK (length(note) < 500)"
                   " NOT VALID")
        """,
        # The scan of old rows, in the next migration's own transaction.
        'migration_support.validate_constraint("ads", "ck_ads_note")',
        # The constraint takes over the index built before, without another build.
        """op.execute("ALTER TABLE ads ADD CONSTRAINT uq_ads_external_id"
                   " UNIQUE USING INDEX uq_ads_external_id")""",
    )

    violations = migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)

    assert violations == [], "\n".join(map(str, violations))
    assert len(list((tmp_path / "sql").glob("*_candidate.sql"))) == 4


def test_a_concurrent_build_mixed_with_locking_changes_fails_the_lint(tmp_path: Path) -> None:
    # The build commits the ADD COLUMN before it; a failed build then cannot be rerun.
    location = with_candidate_migrations(
        tmp_path,
        """
        op.add_column("ads", sa.Column("note", sa.Text(), nullable=True))
        migration_support.create_index_concurrently("ix_ads_note", "ads", "(note)")
        """,
    )

    violations = migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)

    assert "prefer-robust-stmts" in _candidate_rules(violations)


def test_a_table_created_in_the_same_migration_may_be_indexed_plainly(tmp_path: Path) -> None:
    # Nobody reads or writes a table that does not exist yet: squawk knows, per file.
    location = with_candidate_migrations(
        tmp_path,
        """
        op.create_table("widgets", sa.Column("id", sa.BigInteger(), sa.Identity(),
                                             primary_key=True),
                        sa.Column("name", sa.Text(), nullable=False))
        op.create_index("ix_widgets_name", "widgets", ["name"])
        op.create_unique_constraint("uq_widgets_name", "widgets", ["name"])
        """,
    )

    assert migration_lint.check_migrations(CONFIG, tmp_path / "sql", location) == []


def test_a_reviewed_exception_covers_one_statement_only(tmp_path: Path) -> None:
    location = with_candidate_migrations(
        tmp_path,
        """op.execute("ALTER TABLE ads ADD CONSTRAINT ck_ads_creative_id_not_null"
                   " CHECK (creative_id IS NOT NULL) NOT VALID")""",
        'migration_support.validate_constraint("ads", "ck_ads_creative_id_not_null")',
        """
        migration_support.lint_exception(
            "adding-not-nullable-field", "0100 validated ck_ads_creative_id_not_null"
        )
        op.alter_column("ads", "creative_id", nullable=False)
        op.alter_column("ads", "ad_post_id", nullable=False)
        """,
    )

    violations = migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)

    assert [(Path(v.file).name, v.rule) for v in violations] == [
        ("0101_candidate.sql", "adding-not-nullable-field")
    ]
    sql = (tmp_path / "sql" / "0101_candidate.sql").read_text()
    assert "ad_post_id" in sql.splitlines()[violations[0].line - 1]


def test_an_exception_without_a_reason_is_refused(tmp_path: Path) -> None:
    location = with_candidate_migrations(
        tmp_path, 'migration_support.lint_exception("adding-not-nullable-field", " ")'
    )

    with pytest.raises(MigrationLintError, match="needs a reason"):
        migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)


def test_sql_without_timeouts_fails_the_lint(tmp_path: Path) -> None:
    path = tmp_path / "hand_written.sql"
    path.write_text("BEGIN;\nALTER TABLE ads ADD COLUMN note text;\nCOMMIT;\n")

    rules = {v.rule for v in migration_lint.lint([path], CONFIG)}

    assert {"require-lock-timeout", "require-statement-timeout"} <= rules


def test_the_config_keeps_every_lock_rule_on() -> None:
    config = tomllib.loads(CONFIG.read_text())
    excluded = set(config["excluded_rules"])

    assert excluded.isdisjoint(LOCK_RULES)
    assert excluded == {"ban-char-field", "prefer-bigint-over-int"}
    assert config["assume_in_transaction"] is False


def test_a_migration_that_needs_a_live_database_is_reported(tmp_path: Path) -> None:
    location = with_candidate_migrations(
        tmp_path,
        'count = op.get_bind().execute(sa.text("SELECT count(*) FROM ads")).scalar()',
    )

    with pytest.raises(MigrationLintError, match="0099_candidate does not render offline"):
        migration_lint.check_migrations(CONFIG, tmp_path / "sql", location)


def test_a_missing_or_broken_config_is_an_error_not_a_pass(tmp_path: Path) -> None:
    paths = migration_lint.render_migrations(tmp_path / "sql")

    with pytest.raises(MigrationLintError, match="does not exist"):
        migration_lint.lint(paths, tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('excluded_rules = ["no-such-rule"]\n')
    with pytest.raises(MigrationLintError, match="no-such-rule"):
        migration_lint.lint(paths, broken)
    with pytest.raises(MigrationLintError, match="nothing to lint"):
        migration_lint.lint([], CONFIG)


def test_command_line_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migration_lint.main(["--config", str(CONFIG), "--output", str(tmp_path / "ok")]) == 0
    assert "0 squawk violations" in capsys.readouterr().err

    location = with_candidate_migrations(
        tmp_path, 'op.create_index("ix_ads_name", "ads", ["name"])'
    )
    arguments = ["--config", str(CONFIG), "--script-location", str(location)]
    assert migration_lint.main(arguments) == 1
    out = capsys.readouterr().out
    assert "0099_candidate.sql" in out
    assert "require-concurrent-index-creation" in out

    assert migration_lint.main(["--config", str(tmp_path / "absent.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
