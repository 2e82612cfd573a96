"""Small helpers migrations share (what they need from the Alembic context).

Besides the application role's name, this module holds the lock discipline every
migration runs under (STORE-5, "schema migration on hot table": an ``ALTER TABLE`` on a
large table must not block its readers and writers for minutes). ``docs/migrations.md``
explains the rules; ``nox -s migrations`` renders each migration to SQL and lints it with
squawk so a migration that breaks them fails CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

#: How long any statement of a migration waits for a lock. A migration that cannot get
#: its lock soon fails (and is simply run again) instead of queueing behind a long
#: transaction while every query on that table queues behind the migration.
LOCK_TIMEOUT = "10s"
#: How long one statement may run while the migration's locks are held. A statement that
#: needs longer is rewriting or scanning a big table under an exclusive lock: that belongs
#: in a batched backfill or a CONCURRENTLY build, not in a locking migration.
STATEMENT_TIMEOUT = "60s"


def session_timeouts() -> tuple[str, ...]:
    """The ``SET`` statements the migration environment runs before any migration.

    They are session settings, so they hold across the transaction of each migration and
    inside :func:`autocommit_block`; offline rendering writes them at the top of the
    SQL, where squawk's ``require-lock-timeout`` / ``require-statement-timeout`` see them.
    """
    return (
        f"SET lock_timeout = '{LOCK_TIMEOUT}'",
        f"SET statement_timeout = '{STATEMENT_TIMEOUT}'",
    )


def app_role() -> str:
    """The application role migrations grant to, quoted as an identifier.

    It comes from configuration (``config.attributes['app_role']``, set by
    :func:`pixecom_core.db.admin.alembic_config`), so it is quoted, never interpolated raw.
    """
    context = op.get_context()
    role = context.config.attributes["app_role"] if context.config is not None else None
    if not role:
        raise RuntimeError("the migration needs config.attributes['app_role']")
    return str(context.dialect.identifier_preparer.quote_identifier(str(role)))


@contextmanager
def autocommit_block() -> Iterator[None]:
    """Run the enclosed operations outside a transaction, each committing on its own.

    For ``CREATE INDEX CONCURRENTLY`` and ``DROP INDEX CONCURRENTLY``, which cannot run
    in a transaction block. The statement timeout is lifted for them, since they block no
    reader or writer and a build cut short leaves an INVALID index behind; the lock
    timeout stays, and the migration's statement timeout is restored afterwards. What
    ran before the block is committed by then, so a migration with such a block should
    hold nothing else (squawk's ``prefer-robust-stmts`` says so when it does).
    """
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        op.execute("SET statement_timeout = 0")
        yield
        op.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")


def create_index_concurrently(
    name: str, table: str, definition: str, *, unique: bool = False
) -> None:
    """Build index ``name`` on an existing ``table`` without blocking its writers.

    :param definition: what follows ``ON table``: the column list and an optional
        ``WHERE`` predicate, e.g. ``"(seller_id, creative_id) WHERE creative_id IS NOT NULL"``.
    :param unique: a unique index; a later migration can turn it into a constraint with
        ``ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX`` without another build.

    A concurrent build that fails (lock timeout, cancelled, connection lost) leaves an
    INVALID index of that name, which ``IF NOT EXISTS`` alone would then keep for good.
    The migration has not been recorded as applied in that case, so an index of that name
    can only be such a leftover: it is dropped (concurrently) before the build.
    """
    with autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        kind = "UNIQUE INDEX" if unique else "INDEX"
        op.execute(f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON {table} {definition}")


def drop_index_concurrently(name: str) -> None:
    """Drop index ``name`` without blocking reads and writes of its table."""
    with autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def validate_constraint(table: str, name: str) -> None:
    """Check existing rows against constraint ``name``, added earlier as ``NOT VALID``.

    Adding a CHECK or FOREIGN KEY constraint ``NOT VALID`` takes its lock only for a
    moment (new rows are checked from then on). This scan of the old rows holds a lock
    that lets reads and writes go on, so it may take as long as it needs; call it in a
    migration of its own, after the one that added the constraint, so that no stronger
    lock taken earlier is held while it scans (each migration commits on its own).
    """
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def lint_exception(rule: str, reason: str) -> None:
    """Tell squawk that the next statement is safe although ``rule`` flags it.

    For a statement the lint cannot judge from one file, e.g. ``SET NOT NULL`` on a
    column whose ``CHECK (col IS NOT NULL)`` an earlier migration validated (PostgreSQL
    then skips the scan). ``reason`` is written above the ignore comment for the reviewer.
    Only the rendered SQL carries it; the statement must follow on one line (squawk
    ignores the line right below its comment). Nothing is sent to the database.
    """
    if not reason.strip():
        raise ValueError("a lint exception needs a reason")
    context = op.get_context()
    if context.as_sql and context.impl.output_buffer is not None:
        reason_lines = "".join(f"-- {line}\n" for line in reason.strip().splitlines())
        context.impl.output_buffer.write(f"{reason_lines}-- squawk-ignore {rule}\n")
