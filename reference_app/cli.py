"""The ``pixecom`` command line: run the dev deployment and operate a production one.

Configuration comes from the environment (see :class:`pixecom_core.settings.Settings`).
A configuration problem — a weak secret outside dev mode, a missing ``DATABASE_URL``, a
malformed value — ends the command with one line on stderr saying what to fix and exit
status 78 (``EX_CONFIG`` from sysexits.h, which systemd also understands), never with a
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer

from pixecom_core.security.secret_box import SecretDecryptionError
from pixecom_core.settings import Mode, Settings
from reference_app import keys
from reference_app.configuration import CONFIGURATION_ERRORS, describe_configuration_error

if TYPE_CHECKING:
    from fastapi import FastAPI

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
keys_app = typer.Typer(
    help=(
        "Secrets for a deployment. Key lists (PIXECOM_JWT_SIGNING_KEYS, "
        "PIXECOM_TOKEN_ENCRYPTION_KEYS, PIXECOM_REFRESH_TOKEN_PEPPERS) rotate without a flag "
        "day: put a new key first, restart, drop the old one once nothing needs it (see "
        "`pixecom keys generate --help`)."
    ),
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="Background jobs that failed for good.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
webhooks_app = typer.Typer(
    help="Payment webhooks the worker could not process, as the schema owner (DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
fx_app = typer.Typer(
    help="Currency rates: load a range from the rate source, set a seller's own.",
    no_args_is_help=True,
)
app.add_typer(fx_app, name="fx")
stats_app = typer.Typer(help="Sellers' figures.", no_args_is_help=True)
app.add_typer(stats_app, name="stats")


@app.command()
def dev(
    host: Annotated[
        str | None, typer.Option(help="Interface the API listens on [default: PIXECOM_API_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port the API listens on [default: PIXECOM_API_PORT].")
    ] = None,
    demo_traffic: Annotated[
        bool,
        typer.Option(
            help="Let a demo shopper order from the demo sellpage and pay at the payment "
            "sandbox while it runs (dev mode only)."
        ),
    ] = True,
    demo_traffic_seconds: Annotated[
        float,
        typer.Option(min=0.1, help="Mean seconds between two demo shopper visits."),
    ] = 5.0,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Print every log line (access logs, the embedded servers' commands) on the "
            "console too; they always go to PIXECOM_DATA_DIR/logs/dev.log.",
        ),
    ] = False,
) -> None:
    """Start the dev deployment: databases, migrations, partitions, then the API.

    Runs in dev mode (weak secrets allowed). When DATABASE_URL / REDIS_URL are unset, an
    embedded PostgreSQL and an embedded Valkey are started with their data under
    PIXECOM_DATA_DIR (default `.pixecom/`). Unless --no-demo-traffic, a demo shopper keeps
    ordering, paying and now and then refunding, so the numbers change. The console shows
    progress, where everything is (with the demo login) and warnings; every log line goes
    to PIXECOM_DATA_DIR/logs/ (--verbose prints them too). Ctrl-C stops everything.
    """
    settings = Settings(mode=Mode.DEV)
    from reference_app.dev import run_dev  # uvicorn and the API load only for this command

    code = run_dev(
        settings,
        host=host if host is not None else settings.api_host,
        port=port if port is not None else settings.api_port,
        demo_traffic_seconds=demo_traffic_seconds if demo_traffic else None,
        verbose=verbose,
    )
    raise typer.Exit(code)


@app.command()
def worker(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            help="Queue to consume, as NAME or NAME:N (N tasks of it at once); repeat it, or"
            " separate with commas, to consume several queues in this one process. Queues:"
            " payments, tracking, stats-high, stats-medium, stats-low, backfill."
            " [default: payments]",
            show_default=False,
        ),
    ] = None,
    max_tasks: Annotated[
        int, typer.Option(min=1, help="Tasks run at once from a queue named without :N.")
    ] = 50,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics and /readyz on this port (on PIXECOM_API_HOST); 0 serves "
            "nothing [default: PIXECOM_WORKER_METRICS_PORT].",
        ),
    ] = None,
) -> None:
    """Run a worker: consume one queue, or several, until Ctrl-C or SIGTERM.

    Tasks are acknowledged only after they ran, so a worker that dies mid-task leaves its
    messages to be delivered again (to another worker, after
    PIXECOM_WORKER_REDELIVERY_AFTER_SECONDS). Either start one process per queue and
    scale by starting more, or, on a small machine, one process for every queue, each
    bounded by its own N: pixecom worker --queue payments:50 --queue tracking:10
    --queue stats-high:20 --queue stats-medium:20 --queue stats-low:20 --queue backfill:5
    """
    from reference_app.worker.run import QueueSpecError, parse_queue_specs, run_worker

    try:
        chosen = parse_queue_specs(queue or ["payments"], default_max_tasks=max_tasks)
    except QueueSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--queue'") from None
    settings = Settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"worker_metrics_port": metrics_port})
    run_worker(settings, chosen)


@app.command()
def scheduler() -> None:
    """Run the scheduler: queue each seller's syncs by tier, spread over the interval.

    Safe to run twice (failover): each sync slot is claimed in Redis before it is queued.
    """
    settings = Settings()
    from reference_app.worker.scheduler import run_scheduler

    run_scheduler(settings)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [default: PIXECOM_API_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on [default: PIXECOM_API_PORT].")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="API processes sharing the port.")] = 1,
    graceful_timeout: Annotated[
        int, typer.Option(min=1, help="Seconds in-flight requests get to finish on SIGTERM.")
    ] = 30,
) -> None:
    """Serve the production API with uvicorn (no embedded servers, no demo data).

    Meant to run behind nginx (see reference_app/deploy/): X-Forwarded-For and
    X-Forwarded-Proto are believed only from PIXECOM_TRUSTED_PROXIES. Settings are
    validated before any process starts, so a misconfiguration exits with status 78.
    """
    settings = Settings()
    from reference_app.api.app import validated_settings

    validated_settings(settings)  # weak secrets, missing URLs: fail here, not per worker
    import uvicorn

    from pixecom_core.observability.metrics import multiprocess_target

    # N processes share the port and so one /metrics: they pool their samples.
    with multiprocess_target(workers):
        uvicorn.run(
            "reference_app.cli:production_app",
            factory=True,
            host=host if host is not None else settings.api_host,
            port=port if port is not None else settings.api_port,
            workers=workers,
            lifespan="on",
            # Only the configured proxies may set the client address and scheme (SEC-1:
            # per-IP limits must not be spoofable by a client sending X-Forwarded-For).
            proxy_headers=True,
            forwarded_allow_ips=",".join(settings.trusted_proxies),
            timeout_graceful_shutdown=graceful_timeout,
            server_header=False,
            access_log=False,
        )


def production_app() -> FastAPI:
    """ASGI factory behind ``pixecom serve``: the API for the environment's settings.

    Each uvicorn worker process calls it once (``uvicorn --factory
    reference_app.cli:production_app`` works too).
    """
    from pixecom_core.observability import configure_logging
    from reference_app.api import create_app

    settings = Settings()
    # Issue 7: JSON lines for uvicorn's records and ours, in every API process.
    configure_logging(settings, process="api")
    return create_app(settings)


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
    inbox_retention_days: Annotated[
        int | None,
        typer.Option(
            help="Drop webhook-inbox months older than this [default: from settings].", min=30
        ),
    ] = None,
) -> None:
    """The daily maintenance: nothing grows without bound.

    Creates monthly partitions ahead; drops raw-stats and webhook-inbox partitions past
    retention (an inbox month with a delivery still waiting or parked is kept); deletes
    resolved dead letters and old sync runs in batches; trims acknowledged entries older
    than PIXECOM_QUEUE_RETENTION_DAYS from the queue streams (never one still pending).
    Prints what changed, with counts. Idempotent: safe to run daily (timer or cron) and by
    hand after changing a retention.
    """
    settings = Settings()
    from reference_app import database

    result = database.maintain(
        settings,
        months_ahead=months_ahead,
        raw_retention_days=raw_retention_days,
        inbox_retention_days=inbox_retention_days,
    )
    for line in database.describe_daily_maintenance(result):
        typer.echo(line)


_PG_BIN_DIR_HELP = "Directory with pg_dump/pg_restore [default: matched to the server version]."


@db_app.command("backup")
def db_backup(
    to: Annotated[Path, typer.Option("--to", help="File to write (pg_dump custom format).")],
    pg_bin_dir: Annotated[Path | None, typer.Option(help=_PG_BIN_DIR_HELP)] = None,
) -> None:
    """Dump the whole database (schema, RLS policies, grants, rows) to a file.

    Runs as the DATABASE_URL role, which must be a superuser or have BYPASSRLS. The file
    appears only when the dump succeeded, with mode 600. Restore with `pixecom db restore`.
    """
    settings = Settings()
    from reference_app.backup import BackupError, backup

    try:
        written = backup(settings, to, pg_bin_dir=pg_bin_dir)
    except BackupError as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"backup written to {written} ({written.stat().st_size} bytes)")


@db_app.command("restore")
def db_restore(
    from_: Annotated[Path, typer.Option("--from", help="A file written by `pixecom db backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Replace a database that already has tables.")
    ] = False,
    pg_bin_dir: Annotated[Path | None, typer.Option(help=_PG_BIN_DIR_HELP)] = None,
) -> None:
    """Replace the database's contents with a backup, in one transaction.

    Creates the application role first (roles are not in a dump), so its grants and
    row-level security hold after the restore. Stop the API, workers and scheduler first.
    """
    settings = Settings()
    from reference_app.backup import BackupError, database_is_empty, restore

    if not yes and not database_is_empty(settings):
        typer.echo(
            "pixecom: the database already has tables; pass --yes to replace its contents",
            err=True,
        )
        raise typer.Exit(code=1)
    try:
        report = restore(settings, from_, pg_bin_dir=pg_bin_dir)
    except BackupError as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"restored {from_} into {report.database}; {report.tables_with_rls} tables force "
        f"row-level security for {report.app_role!r}"
    )


@keys_app.command("generate")
def keys_generate(
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            "--credentials-dir",
            help="Write one file per secret here (systemd credentials) instead of printing.",
        ),
    ] = None,
) -> None:
    """Fresh strong secrets for every secret setting: an env file, or credential files.

    Example: `pixecom keys generate --credentials-dir /etc/pixecom/credentials` (the
    deploy kit's units load those files with LoadCredential=), or `pixecom keys generate
    > secrets.env`. Existing credential files are never overwritten.

    Rotating a key list, newest first: PIXECOM_JWT_SIGNING_KEYS — add a new key first,
    restart, drop the old one after PIXECOM_ACCESS_TOKEN_TTL_SECONDS.
    PIXECOM_REFRESH_TOKEN_PEPPERS — add a new pepper first, restart (sessions keep
    working; each refresh re-hashes under the new pepper), drop the old one after
    PIXECOM_REFRESH_TOKEN_TTL_DAYS. PIXECOM_TOKEN_ENCRYPTION_KEYS — add a new key first,
    restart, run `pixecom keys rotate`, then drop the old one.
    """
    if credentials_dir is None:
        typer.echo(keys.generate_env_file(), nl=False)
        return
    try:
        written = keys.generate_credentials(credentials_dir)
    except keys.CredentialExistsError as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        raise typer.Exit(code=1) from None
    for path in written:
        typer.echo(f"wrote {path}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt stored secrets (ad-account tokens and grants, sellers' payment accounts)
    with the newest token encryption key.

    Rotation without a flag day: put a new key first in PIXECOM_TOKEN_ENCRYPTION_KEYS
    (keep the old ones after it), restart the API and workers, run this command, then
    remove the old keys. Safe to re-run: secrets already under the newest key are skipped.
    """
    settings = Settings()
    from reference_app.key_rotation import rotate_tokens

    report = rotate_tokens(settings)
    typer.echo(
        f"re-encrypted {report.tokens_reencrypted} stored secret(s) of "
        f"{len(report.sellers_with_changes)} seller(s); {report.sellers_visited} seller(s) "
        "checked"
    )
    for secret in report.undecryptable:
        typer.echo(
            f"pixecom: no configured key decrypts {secret.table} row {secret.row_id} of "
            f"seller {secret.seller_id}; it keeps its old ciphertext (was its key removed "
            "before `pixecom keys rotate` ran?)",
            err=True,
        )
    if report.undecryptable:
        typer.echo(
            f"pixecom: {len(report.undecryptable)} stored secret(s) not rotated: keep the "
            "old keys configured until they are resolved",
            err=True,
        )
        raise typer.Exit(code=1)


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


@fx_app.command("backfill")
def fx_backfill(
    since: Annotated[str, typer.Option(help="First day to load (YYYY-MM-DD).")],
    until: Annotated[
        str | None, typer.Option(help="Last day to load (YYYY-MM-DD) [default: today].")
    ] = None,
) -> None:
    """Load the rate source's reference rates of a range (history, or days a load missed).

    Every day the answer is final for is stored (days without publication under the last
    one, saying so); sellers whose days waited for these rates are re-aggregated.
    Idempotent: a second run changes nothing.
    """
    from datetime import UTC, date, datetime

    from reference_app import fx

    first = date.fromisoformat(since)
    last = date.fromisoformat(until) if until else datetime.now(UTC).date()
    if last < first:
        typer.echo("pixecom: --until is before --since", err=True)
        raise typer.Exit(code=2)
    for load in fx.backfill(Settings(), first, last):
        typer.echo(
            f"{load.source} {load.since}..{load.until}: {load.publication_days} publication "
            f"day(s), {load.carried_days} carried, {load.rows_changed} row(s) changed, "
            f"stored through {load.stored_through or '-'}, "
            f"{len(load.sellers_marked)} seller(s) re-aggregated"
        )


@stats_app.command("reaggregate")
def stats_reaggregate(
    seller: Annotated[
        list[str] | None, typer.Option(help="A seller's id (repeat it); default: every seller.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD).")] = None,
) -> None:
    """Recompute sellers' days (every day with spend or money, or those in the range).

    Needed once after upgrading to revision 0017 (days aggregated before it have no
    per-seller row yet), or after repairing data by hand. The days are marked and the
    workers recompute them, oldest first; the overview counts them as pending meanwhile.
    """
    import uuid as uuid_module
    from datetime import date

    from reference_app import fx

    try:
        ids = [uuid_module.UUID(value) for value in seller or []]
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    marked = fx.reaggregate(Settings(), ids, since=first, until=last)
    typer.echo(
        f"{sum(marked.values())} day(s) of {sum(1 for d in marked.values() if d)} seller(s)"
        " marked for re-aggregation"
    )


@fx_app.command("set")
def fx_set(
    seller: Annotated[str, typer.Option(help="The seller's id.")],
    day: Annotated[str, typer.Argument(help="The day (YYYY-MM-DD).")],
    base: Annotated[str, typer.Argument(help="Base currency (ISO 4217), e.g. EUR.")],
    quote: Annotated[str, typer.Argument(help="Quote currency (ISO 4217), e.g. VND.")],
    rate: Annotated[
        str, typer.Argument(help="Units of QUOTE one BASE bought that day; 'none' removes.")
    ],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit).")] = None,
) -> None:
    """Set (or remove) a seller's own rate of a currency pair for one day; audited."""
    import getpass
    import uuid as uuid_module
    from datetime import date
    from decimal import Decimal, InvalidOperation

    from pixecom_core.errors import InvalidRequestError
    from reference_app import fx

    try:
        value = None if rate.lower() == "none" else Decimal(rate)
        result = fx.set_manual_rate(
            Settings(),
            uuid_module.UUID(seller),
            date.fromisoformat(day),
            base.upper(),
            quote.upper(),
            value,
            changed_by=f"cli:{getpass.getuser()}",
            note=note,
        )
    except (ValueError, InvalidOperation, InvalidRequestError) as exc:
        typer.echo(f"pixecom: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if result is False:
        typer.echo(f"pixecom: no manual rate of {base}/{quote} on {day}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{base}/{quote} on {day}: {'removed' if value is None else value}")


@webhooks_app.command("failed")
def webhooks_failed(
    after: Annotated[
        int | None, typer.Option(help="List deliveries after this inbox id (the next page).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Deliveries per page.")] = 100,
) -> None:
    """List DEFERRED (being retried) and FAILED (parked) payment webhooks, oldest first.

    Every seller's and those no seller could be found for ("unattributed": the delivery
    did not parse, or names a payment no order is known for). Bodies and headers are not
    shown. A full page ends with the command for the next one.
    """
    settings = Settings()
    from reference_app.webhooks import list_failed_deliveries

    deliveries = list_failed_deliveries(settings, after=after, limit=limit)
    if not deliveries:
        typer.echo("no deferred or failed webhook deliveries")
        return
    for d in deliveries:
        error = " ".join((d.last_error or "").split())[:200]
        typer.echo(
            f"{d.inbox_id}\t{d.received_at:%Y-%m-%d %H:%M:%S}\t{d.gateway}\t"
            f"{d.event_type or '-'}\t{d.event_id}\t{d.status}\tattempts={d.attempts}\t"
            f"seller={d.seller_id or 'unattributed'}\t{error}"
        )
    if len(deliveries) == limit:
        typer.echo(f"next page: pixecom webhooks failed --after {deliveries[-1].inbox_id}")


def _mount_plugins_cli() -> None:
    try:
        from reference_app.cli_plugins import plugins_command
    except ModuleNotFoundError as exc:
        if exc.name != "reference_app.cli_plugins":
            raise  # the module exists but is broken: say so rather than hide the command
        return
    app.command("plugins")(plugins_command)


_mount_plugins_cli()


def _mount_simulate_cli() -> None:
    # the scale scenarios of docs/scaling.md; the heavy modules load only when the command runs
    from reference_app.simulate.cli import simulate_command

    app.command("simulate")(simulate_command)


_mount_simulate_cli()


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
