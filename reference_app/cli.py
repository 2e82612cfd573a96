"""The ``pixecom`` command line: run the dev deployment and operate a production one.

Configuration comes from the environment (see :class:`pixecom_core.settings.Settings`).
A configuration problem — a weak secret outside dev mode, a missing ``DATABASE_URL``, a
malformed value — ends the command with one line on stderr saying what to fix and exit
status 78 (``EX_CONFIG`` from sysexits.h, which systemd also understands), never with a
traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import psycopg
import typer

from pixecom_core.security.secret_box import SecretDecryptionError
from pixecom_core.settings import Mode, Settings
from reference_app import keys
from reference_app.configuration import CONFIGURATION_ERRORS, describe_configuration_error

#: sysexits.h EX_CONFIG: "something was found in an unconfigured or misconfigured state".
EXIT_CONFIGURATION_ERROR = 78
#: The database could not be reached (sysexits.h EX_UNAVAILABLE).
EXIT_SERVICE_UNAVAILABLE = 69

app = typer.Typer(
    name="pixecom",
    help="PixEcom: run the dev deployment, migrate and maintain the database, make keys.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with local variables would print connection strings and secrets.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(
    help="Database administration, as the schema owner (DATABASE_URL).", no_args_is_help=True
)
keys_app = typer.Typer(help="Secrets for a deployment.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="Background jobs that failed for good.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@app.command()
def dev(
    host: Annotated[
        str | None, typer.Option(help="Interface the API listens on [default: PIXECOM_API_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port the API listens on [default: PIXECOM_API_PORT].")
    ] = None,
) -> None:
    """Start the dev deployment: databases, migrations, partitions, then the API.

    Runs in dev mode (weak secrets allowed). When DATABASE_URL / REDIS_URL are unset, an
    embedded PostgreSQL and an embedded Valkey are started with their data under
    PIXECOM_DATA_DIR (default `.pixecom/`). Ctrl-C stops everything.
    """
    settings = Settings(mode=Mode.DEV)
    from reference_app.dev import run_dev  # uvicorn and the API load only for this command

    code = run_dev(
        settings,
        host=host if host is not None else settings.api_host,
        port=port if port is not None else settings.api_port,
    )
    raise typer.Exit(code)


@app.command()
def worker(
    queue: Annotated[
        str,
        typer.Option(
            help="Queue to consume: payments, tracking, stats-high, stats-medium, stats-low."
        ),
    ] = "payments",
    max_tasks: Annotated[int, typer.Option(help="Tasks run at once in this process.")] = 50,
) -> None:
    """Run a worker: consume one queue until Ctrl-C or SIGTERM.

    Tasks are acknowledged only after they ran, so a worker that dies mid-task leaves its
    messages to be delivered again (to another worker, after
    PIXECOM_WORKER_REDELIVERY_AFTER_SECONDS). Start one process per queue and scale by
    starting more.
    """
    settings = Settings()
    from reference_app.worker.broker import Queue
    from reference_app.worker.run import run_worker

    try:
        chosen = Queue(queue)
    except ValueError:
        raise typer.BadParameter(
            f"unknown queue {queue!r}; choose from {', '.join(q.value for q in Queue)}"
        ) from None
    run_worker(settings, chosen, max_tasks=max_tasks)


@app.command()
def scheduler() -> None:
    """Run the scheduler: queue each seller's syncs by tier, spread over the interval.

    Safe to run twice (failover): each sync slot is claimed in Redis before it is queued.
    """
    settings = Settings()
    from reference_app.worker.scheduler import run_scheduler

    run_scheduler(settings)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to migrate to.")] = "head",
) -> None:
    """Create the application role if missing, then migrate the schema as the owner.

    Safe to run on every deploy: both steps do nothing when already done.
    """
    settings = Settings()  # validated before the heavy imports, so errors come fast
    from reference_app import database  # Alembic and SQLAlchemy load only when needed

    database.migrate(settings, revision=revision)
    typer.echo(f"database migrated to {revision}; application role {settings.app_role!r} ready")


@db_app.command("maintain")
def db_maintain(
    months_ahead: Annotated[
        int | None,
        typer.Option(help="Months of partitions to keep ready [default: from settings]."),
    ] = None,
    raw_retention_days: Annotated[
        int | None,
        typer.Option(help="Drop raw-stats partitions older than this [default: from settings]."),
    ] = None,
) -> None:
    """Create monthly partitions ahead and drop raw-stats partitions past retention.

    Prints what was created, moved and dropped. Idempotent: safe to run daily (timer or
    cron) and by hand after changing the retention.
    """
    settings = Settings()
    from reference_app import database

    report = database.maintain_partitions(
        settings, months_ahead=months_ahead, raw_retention_days=raw_retention_days
    )
    for line in database.describe_maintenance(report):
        typer.echo(line)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print fresh strong secrets for every secret setting, as an env file.

    Example: `pixecom keys generate > /etc/pixecom/secrets.env && chmod 600
    /etc/pixecom/secrets.env`. Nothing is stored: each run prints new secrets.
    """
    typer.echo(keys.generate_env_file(), nl=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt stored ad-account tokens with the newest token encryption key.

    Rotation without a flag day: put a new key first in PIXECOM_TOKEN_ENCRYPTION_KEYS
    (keep the old ones after it), restart the API and workers, run this command, then
    remove the old keys. Safe to re-run: tokens already under the newest key are skipped.
    """
    settings = Settings()
    from reference_app.key_rotation import rotate_tokens

    report = rotate_tokens(settings)
    typer.echo(
        f"re-encrypted {report.tokens_reencrypted} ad-account token(s) of "
        f"{len(report.sellers_with_changes)} seller(s); {report.sellers_visited} seller(s) "
        "checked"
    )


@jobs_app.command("dead-letters")
def jobs_dead_letters(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """List dead letters: jobs that exhausted their retries, oldest first."""
    settings = Settings()
    from reference_app.jobs import list_dead_letters

    lines = list_dead_letters(settings, include_resolved=all_)
    if not lines:
        typer.echo("no dead letters" if all_ else "no open dead letters")
        return
    for line in lines:
        state = f"resolved {line.resolved_at:%Y-%m-%d %H:%M}" if line.resolved_at else "open"
        typer.echo(
            f"{line.id}\t{line.failed_at:%Y-%m-%d %H:%M:%S}\t{line.task_name}\t"
            f"seller={line.seller_id or '-'}\tattempts={line.attempts}\t{state}\t"
            f"{' '.join(line.error.split())[:200]}"
        )


@jobs_app.command("resolve")
def jobs_resolve(
    dead_letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
) -> None:
    """Mark a dead letter handled (after fixing its cause or re-running the job)."""
    settings = Settings()
    from reference_app.jobs import resolve_dead_letter

    if not resolve_dead_letter(settings, dead_letter_id):
        typer.echo(f"pixecom: no open dead letter {dead_letter_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"dead letter {dead_letter_id} resolved")


def _mount_plugins_cli() -> None:
    try:
        from reference_app.cli_plugins import plugins_command
    except ModuleNotFoundError as exc:
        if exc.name != "reference_app.cli_plugins":
            raise  # the module exists but is broken: say so rather than hide the command
        return
    app.command("plugins")(plugins_command)


_mount_plugins_cli()


def main() -> None:
    """Entry point of the ``pixecom`` console script."""
    try:
        app()
    except CONFIGURATION_ERRORS as exc:
        typer.echo(f"pixecom: {describe_configuration_error(exc)}", err=True)
        sys.exit(EXIT_CONFIGURATION_ERROR)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"pixecom: cannot reach PostgreSQL: {first_line}", err=True)
        sys.exit(EXIT_SERVICE_UNAVAILABLE)
    except SecretDecryptionError as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
