"""The dev deployment behind ``pixecom dev``: everything PixEcom needs, one process tree.

The deployment is a list of components started in order; each one registers how to
stop itself on the deployment's exit stack, so Ctrl-C (or SIGTERM) unwinds them in
reverse order. The API then runs in the foreground. Components that later issues add
(worker, scheduler, plugin sandboxes, demo seed) are functions of the same shape
appended to :data:`COMPONENTS`.

With demo data on (the default), the demo seller's shop sees traffic while it runs (see
:mod:`reference_app.demo_traffic`): orders placed through the public API, paid and now and
then refunded at the payment sandbox, whose signed webhooks the workers turn into ledger
facts, while the ad sandboxes' spend grows through the day; syncs (which re-aggregate the
days those facts touched) run every minute for every tier, so the numbers change while
you look.

The console stays quiet (issue 13 item 11): it shows progress, the banner with the URLs and
the demo login, and warnings; every log line (per-request access logs, the embedded
servers' commands, sandbox calls) goes to ``<data_dir>/logs/dev.log``, next to the
workers' and the scheduler's logs. ``pixecom dev --verbose`` prints them on the console too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import typer
import uvicorn
from pydantic import SecretStr

from pixecom_core.accounts.demo import DemoLogin, ensure_demo_seller
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.db.urls import conninfo
from pixecom_core.devservers import ensure_servers
from pixecom_core.observability import configure_logging
from pixecom_core.settings import Mode, Settings
from reference_app import database
from reference_app.api import create_app
from reference_app.keys import new_secret

#: Mean seconds between two demo shopper visits (``pixecom dev --demo-traffic-seconds``).
DEMO_TRAFFIC_SECONDS = 5.0
#: Seconds between syncs of every tier while demo traffic runs (unless the environment
#: sets them): the sync re-aggregates the days new payments touched, so revenue and spend
#: move within a minute instead of the low tier's half hour.
DEMO_SYNC_INTERVAL_SECONDS = 60
#: The dev process's own log file under ``<data_dir>/logs/``.
DEV_LOG_FILE = "dev.log"


@dataclass
class DevDeployment:
    """State shared by the components of one ``pixecom dev`` run.

    :param settings: the settings in force; components that start a server put its URL
        here, so later components (and the API) connect to it.
    :param stack: where each component registers how to stop what it started.
    :param endpoints: name → URL, printed once everything is up.
    """

    settings: Settings
    stack: ExitStack
    endpoints: dict[str, str] = field(default_factory=dict)
    #: Where the API will listen (components that point others at it need it early).
    api_url: str = "http://127.0.0.1:8000"
    #: Mean seconds between two demo shopper visits; ``None``: no demo traffic.
    demo_traffic_seconds: float | None = DEMO_TRAFFIC_SECONDS
    #: Sandbox name → base URL, for the sandboxes being served.
    sandbox_urls: dict[str, str] = field(default_factory=dict)
    #: The demo seller's login, once it exists.
    demo_login: DemoLogin | None = None
    #: Print every log line on the console too, not only warnings and errors.
    verbose: bool = False
    #: Where every log line of this process goes (``<data_dir>/logs/dev.log``).
    log_file: TextIO | None = None

    def say(self, message: str) -> None:
        """Report progress on the terminal."""
        typer.echo(f"pixecom dev: {message}")


#: Start something, and register on ``deployment.stack`` how to stop it.
DevComponent = Callable[[DevDeployment], None]


def logs_dir(settings: Settings) -> Path:
    """Where ``pixecom dev`` and the processes it starts write their logs."""
    return settings.data_dir / "logs"


def configure_dev_logging(deployment: DevDeployment) -> None:
    """Every log line to ``dev.log``; on the console only warnings and errors, unless
    ``--verbose``.

    Per-request access lines and the embedded PostgreSQL's command dumps would otherwise
    scroll the banner (with the demo login) away within seconds. Called again after
    uvicorn (sandboxes) re-applied its own logging config.
    """
    settings = deployment.settings
    if deployment.log_file is None:
        directory = logs_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        # Line-buffered: `tail -f` shows each line as it is logged. Left open until the
        # process exits: the embedded servers log their last lines from atexit hooks.
        deployment.log_file = (directory / DEV_LOG_FILE).open("a", buffering=1)
    # configure_logging installs one handler on the root logger: build the file's (no
    # colours, as the stream is no terminal), keep it, then build the console's.
    configure_logging(settings, process="dev", stream=deployment.log_file)
    root = logging.getLogger()
    to_file = root.handlers[0]
    configure_logging(settings, process="dev")
    if not deployment.verbose:
        for handler in root.handlers:
            handler.setLevel(logging.WARNING)
    root.addHandler(to_file)


def _redacted_redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


#: Secrets the API cannot start without; generated once per data folder in dev mode.
DEV_SECRETS_FILE = "dev-secrets.json"


def dev_secrets(deployment: DevDeployment) -> None:
    """Fill in signing, encryption and pepper secrets the environment does not set.

    They are generated once and kept in ``<data_dir>/dev-secrets.json`` (mode 600), so
    logins and encrypted tokens survive a restart of ``pixecom dev``. Dev mode only:
    production refuses to start without its own secrets.
    """
    settings = deployment.settings
    path = settings.data_dir / DEV_SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    for name in ("jwt_signing_key", "token_encryption_key", "refresh_token_pepper"):
        stored.setdefault(name, new_secret())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2))
    path.chmod(0o600)
    update: dict[str, object] = {}
    if not settings.jwt_signing_keys:
        update["jwt_signing_keys"] = [SecretStr(stored["jwt_signing_key"])]
    if not settings.token_encryption_keys:
        update["token_encryption_keys"] = [SecretStr(stored["token_encryption_key"])]
    if not settings.refresh_token_peppers:
        update["refresh_token_peppers"] = [SecretStr(stored["refresh_token_pepper"])]
    if update:
        deployment.say(f"using dev secrets from {path}")
        deployment.settings = settings.model_copy(update=update)


def embedded_servers(deployment: DevDeployment) -> None:
    """Use DATABASE_URL / REDIS_URL when set; start embedded PostgreSQL / Valkey otherwise.

    The embedded PostgreSQL keeps its data in ``<data_dir>/postgres`` between runs.
    """
    settings = deployment.settings
    if settings.database_url is None or settings.redis_url is None:
        deployment.say(f"starting embedded servers under {settings.data_dir.resolve()}")
    servers = ensure_servers(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
    )
    deployment.stack.callback(servers.stop)
    assert servers.database_url is not None and servers.redis_url is not None
    # Exported so that processes started later (worker, scheduler) reach the same servers.
    os.environ["DATABASE_URL"] = servers.database_url
    os.environ["REDIS_URL"] = servers.redis_url
    deployment.settings = settings.model_copy(
        update={"database_url": servers.database_url, "redis_url": servers.redis_url}
    )
    deployment.endpoints["PostgreSQL"] = conninfo(servers.database_url, password=None)
    deployment.endpoints["Redis"] = _redacted_redis_url(servers.redis_url)


def database_schema(deployment: DevDeployment) -> None:
    """Create the application role and migrate the schema to head, as the owner."""
    deployment.say("migrating the database")
    database.migrate(deployment.settings)


def partition_maintenance(deployment: DevDeployment) -> None:
    """The daily maintenance, as ``pixecom db maintain`` runs it: partitions ahead, and
    what is past retention pruned (a dev database kept between runs grows too)."""
    result = database.maintain(deployment.settings)
    for line in database.describe_daily_maintenance(result):
        deployment.say(f"maintenance: {line}")


async def _seed_demo(settings: Settings) -> DemoLogin:
    engine = create_engine(settings, role="app")
    try:
        return await ensure_demo_seller(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()


def demo_seller(deployment: DevDeployment) -> None:
    """Create the demo seller (dev mode only; SEC-4) unless disabled by
    ``PIXECOM_SEED_DEMO_DATA=false``, and print how to log in."""
    if not deployment.settings.seed_demo_data:
        return
    login = asyncio.run(_seed_demo(deployment.settings))
    if login.created:
        deployment.say("created the demo seller")
    deployment.demo_login = login
    deployment.endpoints["Demo login"] = f"{login.email} / {login.password}"


#: Seconds a sandbox server gets to start.
SANDBOX_START_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _serve_in_thread(app: Any, port: int, name: str) -> Callable[[], None]:
    """Serve ``app`` on 127.0.0.1:``port`` in a thread; return how to stop it."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, name=f"sandbox-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + SANDBOX_START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} sandbox did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return stop


def plugin_sandboxes(deployment: DevDeployment) -> None:
    """Serve every installed plugin's sandbox on loopback and point the plugins at them.

    Each sandbox's ``environment`` (plugin-provided) is exported before the API and the
    workers are built, so gateways and ad networks talk to their sandbox and sandbox
    webhooks reach this API; nothing here knows any plugin.
    """
    from pixecom_core.plugins import ProviderRegistry, create_plugin_manager

    for sandbox in ProviderRegistry(create_plugin_manager()).sandboxes():
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        # Exported first: a sandbox reads its own settings from them when it is built.
        if sandbox.environment is not None:
            os.environ.update(sandbox.environment(url, deployment.api_url))
        try:
            app = sandbox.create_app()
        except Exception as exc:  # one broken plugin must not stop the whole dev deployment
            deployment.say(f"skipping the {sandbox.name} sandbox, it failed to build: {exc!r}")
            continue
        deployment.stack.callback(_serve_in_thread(app, port, sandbox.name))
        deployment.sandbox_urls[sandbox.name] = url
        deployment.endpoints[f"{sandbox.name} sandbox"] = url
        deployment.say(f"{sandbox.name} sandbox for {sandbox.provider} at {url}")


def demo_activity(deployment: DevDeployment) -> None:
    """Connect the sandboxes' demo ad accounts to the demo seller and sync them once."""
    if not deployment.settings.seed_demo_data:
        return
    from reference_app.demo_activity import seed_demo_activity

    try:
        activity = asyncio.run(
            seed_demo_activity(
                deployment.settings,
                api_url=deployment.api_url,
                sandbox_urls=deployment.sandbox_urls,
            )
        )
    except Exception as exc:  # demo data is a convenience: never a reason not to start
        deployment.say(f"demo activity skipped: {exc!r}")
        return
    if activity.accounts_connected or activity.campaigns_linked:
        deployment.say(
            f"demo seller: {activity.accounts_connected} ad account(s) connected, "
            f"{activity.campaigns_linked} campaign(s) linked to its sellpage"
        )
    if activity.payment_accounts_connected:
        deployment.say(
            f"demo seller: {activity.payment_accounts_connected} payment account(s) connected"
        )


def _demo_traffic_on(deployment: DevDeployment) -> bool:
    # Demo traffic is dev-only, like the demo seller it shops from (SEC-4).
    settings = deployment.settings
    return (
        settings.mode is Mode.DEV
        and settings.seed_demo_data
        and deployment.demo_traffic_seconds is not None
    )


def demo_sync_intervals(deployment: DevDeployment) -> None:
    """With demo traffic on, sync every seller every minute whatever its tier (unless
    ``PIXECOM_SYNC_INTERVAL_*_SECONDS`` say otherwise), so the sellpage days new payments
    mark dirty are re-aggregated and /stats/overview moves within a minute."""
    if not _demo_traffic_on(deployment):
        return
    for tier in ("LOW", "MEDIUM", "HIGH"):
        os.environ.setdefault(
            f"PIXECOM_SYNC_INTERVAL_{tier}_SECONDS", str(DEMO_SYNC_INTERVAL_SECONDS)
        )


#: Seconds the demo traffic gets to wind down (close its HTTP clients) when stopping.
DEMO_TRAFFIC_STOP_SECONDS = 10.0


def _run_in_thread(
    name: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, object]]
) -> Callable[[], None]:
    """Run the coroutine ``work(stop)`` on its own event loop in a thread; return how to
    stop it: ``stop`` is set and the coroutine cancelled, so a visit in flight (whose API
    may already be gone) never holds up the shutdown."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    task = loop.create_task(work(stop))

    def main() -> None:
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        task.cancel()

    def stop_it() -> None:
        if thread.is_alive():
            try:
                loop.call_soon_threadsafe(halt)
            except RuntimeError:  # the loop closed in between: nothing left to stop
                pass
        thread.join(timeout=DEMO_TRAFFIC_STOP_SECONDS)

    return stop_it


def demo_traffic(deployment: DevDeployment) -> None:
    """Start the demo shopper (dev mode only): every few seconds it orders from the demo
    sellpage through the public API and pays at the payment sandbox, which sends its signed
    webhooks to the API; now and then it refunds part of a payment and ships an order.
    ``pixecom dev --no-demo-traffic`` (or ``PIXECOM_SEED_DEMO_DATA=false``) turns it off."""
    from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
    from reference_app.demo_activity import DEMO_SLUG
    from reference_app.demo_traffic import DemoTrafficConfig, find_payment_sandbox, run_demo_traffic

    if not _demo_traffic_on(deployment) or deployment.demo_traffic_seconds is None:
        deployment.say("demo traffic off")
        return
    sandbox = find_payment_sandbox(
        ProviderRegistry(create_plugin_manager()), deployment.sandbox_urls
    )
    if sandbox is None:
        deployment.say(
            "demo traffic off: no installed payment gateway's sandbox offers demo payments"
        )
        return
    login = deployment.demo_login
    config = DemoTrafficConfig(
        api_url=deployment.api_url,
        slug=DEMO_SLUG,
        login=(login.email, login.password) if login is not None else None,
        interval_seconds=deployment.demo_traffic_seconds,
    )
    deployment.stack.callback(
        _run_in_thread("demo-traffic", lambda stop: run_demo_traffic(config, sandbox, stop))
    )
    deployment.say(
        f"demo traffic: a shopper orders from /public/sellpages/{DEMO_SLUG} about every "
        f"{config.interval_seconds:g} s and pays with {sandbox.gateway}'s sandbox"
    )


#: Seconds a background process gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 20.0


def _export_settings(settings: Settings) -> None:
    """Put what child processes need into the environment (dev mode only)."""
    os.environ["PIXECOM_MODE"] = "dev"
    os.environ["PIXECOM_DATA_DIR"] = str(settings.data_dir)
    os.environ["PIXECOM_REDIS_KEY_PREFIX"] = settings.redis_key_prefix
    for name, keys in (
        ("PIXECOM_JWT_SIGNING_KEYS", settings.jwt_signing_keys),
        ("PIXECOM_TOKEN_ENCRYPTION_KEYS", settings.token_encryption_keys),
        ("PIXECOM_REFRESH_TOKEN_PEPPERS", settings.refresh_token_peppers),
    ):
        os.environ[name] = json.dumps([key.get_secret_value() for key in keys])


def _stop_process(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            typer.echo(f"pixecom dev: {name} did not stop in time; killing it")
            process.kill()
            process.wait()


def background_processes(deployment: DevDeployment) -> None:
    """Start a worker per queue and the scheduler, logging to ``<data_dir>/logs/``."""
    from reference_app.worker.broker import Queue

    settings = deployment.settings
    _export_settings(settings)
    logs = logs_dir(settings)
    logs.mkdir(parents=True, exist_ok=True)
    commands = {f"worker-{queue.value}": ["worker", "--queue", queue.value] for queue in Queue}
    commands["scheduler"] = ["scheduler"]
    for name, arguments in commands.items():
        with (logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "reference_app.cli", *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deployment.stack.callback(_stop_process, process, name)
    deployment.say(f"started {len(commands) - 1} workers and the scheduler (logs in {logs})")
    deployment.endpoints["Logs"] = str(logs.resolve())


#: What ``pixecom dev`` starts, in order, before serving the API.
COMPONENTS: list[DevComponent] = [
    dev_secrets,
    embedded_servers,
    database_schema,
    partition_maintenance,
    demo_seller,
    plugin_sandboxes,
    demo_activity,
    demo_sync_intervals,
    background_processes,
    demo_traffic,
]


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM's default action kills the process on the spot, leaving the embedded
    # servers running; turning it into KeyboardInterrupt unwinds the stack instead.
    raise KeyboardInterrupt


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    # A second Ctrl-C while servers are being stopped would leave them half-stopped.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def serve_api(deployment: DevDeployment, *, host: str, port: int) -> None:
    """Serve the API in the foreground until Ctrl-C or SIGTERM."""
    app = create_app(deployment.settings)
    base = f"http://{host}:{port}"
    deployment.endpoints = {
        "Seller dashboard": f"{base}/dashboard/",
        "API": base,
        "API docs": f"{base}/docs",
        "Readiness": f"{base}/readyz",
        **deployment.endpoints,
    }
    width = max(len(name) for name in deployment.endpoints)
    deployment.say("serving the API; press Ctrl-C to stop")
    for name, url in deployment.endpoints.items():
        typer.echo(f"  {name.ljust(width)}  {url}")
    # Again, now: each sandbox's uvicorn.Config re-applied uvicorn's own logging config.
    configure_dev_logging(deployment)
    # log_config=None: uvicorn keeps the structured logging configured above.
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None)
    )
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raised the signal it caught.
        pass
    if not server.started:
        # Port in use, lifespan failure …: uvicorn has logged why.
        raise typer.Exit(code=1)


def run_dev(
    settings: Settings,
    *,
    host: str,
    port: int,
    demo_traffic_seconds: float | None = DEMO_TRAFFIC_SECONDS,
    verbose: bool = False,
) -> int:
    """Start every component, serve the API, stop everything; return the exit code.

    0 after a Ctrl-C while serving; 130 when interrupted during startup.

    :param demo_traffic_seconds: mean seconds between demo shopper visits; ``None``: none.
    :param verbose: print every log line on the console too (they always go to
        ``<data_dir>/logs/dev.log``).
    """
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    stack = ExitStack()
    # Sandboxes call the API back (webhooks): a wildcard bind is reached on loopback.
    reachable = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    deployment = DevDeployment(
        settings=settings,
        stack=stack,
        api_url=f"http://{reachable}:{port}",
        demo_traffic_seconds=demo_traffic_seconds,
        verbose=verbose,
    )
    try:
        configure_dev_logging(deployment)
        deployment.say(f"logging to {logs_dir(settings) / DEV_LOG_FILE}")
        for component in COMPONENTS:
            component(deployment)
        serve_api(deployment, host=host, port=port)
    except KeyboardInterrupt:
        deployment.say("interrupted during startup")
        return 130
    finally:
        with _interrupts_ignored():
            deployment.say("stopping")
            stack.close()
    deployment.say("stopped")
    return 0
