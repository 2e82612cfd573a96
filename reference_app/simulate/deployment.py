"""The reference deployment a simulation runs against, on one machine.

What ``pixecom dev`` starts, as separate processes, minus the demo seller: PostgreSQL and
Redis (``DATABASE_URL`` / ``REDIS_URL``, else embedded servers), a database of the
simulation's own (created, migrated, partitioned; dropped afterwards unless kept), three
plugin sandboxes on loopback — an ad network's, a payment gateway's and a tracker's,
found by role through the ``Sandbox`` contract (:func:`find_simulation_sandboxes`) and
configured for the scenario through :class:`~pixecom_core.providers.SimulatedConditions`
(the ad network's latency and campaigns per account, a slow tracker) — one worker per
queue (or one worker process for every queue: the scenario's ``worker_layout``, the
small-VPS layout of scenario A), the scheduler and the API, each process logging to
``<output>/logs/``. Each process of the deployment starts at the priority its deploy-kit
systemd unit gives it (``Nice=``, :func:`unit_nice`: the workers and the scheduler below
the API); the sandboxes and the load generator run at the default.

Pool sizes are set per process so that the whole deployment stays inside PostgreSQL's
default ``max_connections`` of 100 (SCALE-3: bounded pools, explicitly):
three stats workers × (10 + 5), the API 10 + 10, the payments worker 10 + 10, the
tracking worker 3 + 3, the scheduler 2 + 2, and the simulation's own probes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import psycopg

from pixecom_core.db import admin
from pixecom_core.db.urls import conninfo
from pixecom_core.devservers import EmbeddedServers
from pixecom_core.plugins import ProviderKind, ProviderRegistry, create_plugin_manager
from pixecom_core.providers import Sandbox, SimulatedConditions
from pixecom_core.settings import Mode, Settings
from reference_app import database
from reference_app.simulate.scenarios import Scenario, WorkerLayout
from reference_app.worker.broker import Queue

#: The sandbox roles a simulation needs, and what a sandbox must offer to fill each.
SANDBOX_ROLES = {
    "ad network": "an ad network's sandbox that offers simulation_accounts",
    "payment gateway": "a payment gateway's sandbox that offers simulation_payments",
    "tracker": "a tracker's sandbox",
}
#: The tracker sandbox's latency in scenario C: twice the tracker's 5 s call timeout,
#: so every call times out (SCALE-9; the audit's scenario C: "tracking API delays, common
#: during peak").
SLOW_TRACKER_LATENCY_SECONDS = 10.0
#: How long a worker's job waits for a pooled connection before it fails.
WORKER_POOL_TIMEOUT_SECONDS = 60.0
#: Seconds each process gets to answer its readiness probe or stop.
START_SECONDS = 180.0
STOP_SECONDS = 20.0
#: The deploy kit's systemd units, whose ``Nice=`` each process of the simulation runs at.
SYSTEMD_DIR = Path(__file__).resolve().parents[1] / "deploy" / "systemd"


def unit_nice(unit: str) -> int:
    """The ``Nice=`` of the deploy kit's systemd ``unit`` (0 when it sets none)."""
    for line in (SYSTEMD_DIR / unit).read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key == "Nice":
            return int(value)
    return 0


class PluginMissingError(RuntimeError):
    """A plugin the simulation drives is not installed."""


@dataclass(frozen=True)
class DeploymentOptions:
    """How to run the deployment.

    :param output_dir: logs go to ``<output_dir>/logs``; embedded servers keep data there.
    :param keep_data: keep the simulation's database (and embedded server data) afterwards.
    :param stats_concurrency: sync jobs each stats worker runs at once (``--max-tasks``).
    :param api_pool_size: the API's connection pool (plus as many overflow connections),
        shared between its processes.
    :param api_processes: API processes (the deploy kit runs two behind nginx's upstream).
    :param shed_max_in_flight: the API's shed level; the settings' default when None.
    :param database_url: a PostgreSQL server to create the database on; embedded if None.
    :param redis_url: a Redis to use; embedded Valkey if None.
    """

    output_dir: Path
    keep_data: bool = False
    stats_concurrency: int = 100
    api_pool_size: int = 10
    api_processes: int = 1
    shed_max_in_flight: int | None = None
    database_url: str | None = None
    redis_url: str | None = None


def process_environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    """This process's environment plus what a PixEcom process started for ``settings``
    needs: servers, secrets, mode, key prefix and data dir; warnings-only logging; no demo
    data."""
    assert settings.database_url and settings.redis_url
    env = dict(os.environ)
    # Several interpreters start at once: compiling every module in each of them (no
    # bytecode cache) costs minutes of CPU on two cores.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "PIXECOM_MODE": settings.mode.value,
            "PIXECOM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "PIXECOM_DATA_DIR": str(data_dir),
            "PIXECOM_SEED_DEMO_DATA": "false",
            "PIXECOM_JWT_SIGNING_KEYS": json.dumps(
                [k.get_secret_value() for k in settings.jwt_signing_keys]
            ),
            "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(
                [k.get_secret_value() for k in settings.token_encryption_keys]
            ),
            "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps(
                [k.get_secret_value() for k in settings.refresh_token_peppers]
            ),
            "PIXECOM_LOG_LEVEL": "WARNING",
        }
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class SimulationSandboxes:
    """The installed sandboxes a simulation drives, one per role.

    :param ad_network: serves the generated sellers' ad accounts
        (:attr:`~pixecom_core.providers.Sandbox.simulation_accounts`).
    :param payment_gateway: pays the checkouts and replays the webhook burst
        (:attr:`~pixecom_core.providers.Sandbox.simulation_payments`); its ``provider`` is the
        gateway the orders are placed with.
    :param tracker: answers the parcels' tracking refreshes.
    """

    ad_network: Sandbox
    payment_gateway: Sandbox
    tracker: Sandbox

    def by_role(self) -> dict[str, Sandbox]:
        """Role → sandbox, in :data:`SANDBOX_ROLES`' order."""
        return {
            "ad network": self.ad_network,
            "payment gateway": self.payment_gateway,
            "tracker": self.tracker,
        }


def _fills(role: str, sandbox: Sandbox, registry: ProviderRegistry) -> bool:
    """Whether ``sandbox`` can play ``role`` in a simulation."""
    if role == "ad network":
        return (
            sandbox.provider in registry.names(ProviderKind.AD_NETWORK)
            and sandbox.simulation_accounts is not None
        )
    if role == "payment gateway":
        return (
            sandbox.provider in registry.names(ProviderKind.PAYMENT_GATEWAY)
            and sandbox.simulation_payments is not None
        )
    return sandbox.provider in registry.names(ProviderKind.TRACKER)


def _sandboxes_by_role(registry: ProviderRegistry) -> dict[str, Sandbox]:
    """The first sandbox (by name) that fills each role; roles none fills are absent."""
    found: dict[str, Sandbox] = {}
    for role in SANDBOX_ROLES:
        chosen = next((s for s in registry.sandboxes() if _fills(role, s, registry)), None)
        if chosen is not None:
            found[role] = chosen
    return found


def missing_plugins() -> list[str]:
    """What is missing, per sandbox role no installed plugin fills (empty: nothing)."""
    found = _sandboxes_by_role(ProviderRegistry(create_plugin_manager()))
    return [need for role, need in SANDBOX_ROLES.items() if role not in found]


def find_simulation_sandboxes(registry: ProviderRegistry) -> SimulationSandboxes:
    """One installed sandbox per role, the first by name that fills it.

    :raises PluginMissingError: a role no installed plugin fills, with what to install.
    """
    found = _sandboxes_by_role(registry)
    missing = [need for role, need in SANDBOX_ROLES.items() if role not in found]
    if missing:
        raise PluginMissingError(
            "pixecom simulate needs "
            + "; ".join(missing)
            + ": install the plugins that offer them (e.g. `.venv/bin/pip install -e "
            "plugins/<name>` for each one in plugins/)"
        )
    return SimulationSandboxes(
        ad_network=found["ad network"],
        payment_gateway=found["payment gateway"],
        tracker=found["tracker"],
    )


def scenario_conditions(scenario: Scenario) -> dict[str, SimulatedConditions]:
    """Role → how the scenario wants that role's sandbox to behave."""
    return {
        # SCALE-5, the audit's sync cycle: "if Meta API latency is 1-2 seconds per call
        # (realistic)"
        "ad network": SimulatedConditions(
            latency_seconds=scenario.ad_network_latency_seconds,
            campaigns_per_account=scenario.campaigns_per_seller,
        ),
        "payment gateway": SimulatedConditions(),
        # parcels do not progress by themselves during a run
        "tracker": SimulatedConditions(
            latency_seconds=SLOW_TRACKER_LATENCY_SECONDS if scenario.slow_tracker else 0.0,
            parcels_progress=False,
        ),
    }


@dataclass
class SimulatedDeployment:
    """Starts the deployment on :meth:`start`; stops everything on context exit.

    After :meth:`start`: ``settings`` (owner ``database_url``, ``redis_url``, the run's
    ``redis_key_prefix`` and secrets), ``api_url`` (the first API process's),
    ``api_urls`` (every API process's), ``sandboxes``, ``sandbox_urls`` and ``pids``
    (process name → pid, for the probes: ``api``, ``api-2``, …) are set.
    """

    scenario: Scenario
    options: DeploymentOptions
    say: Callable[[str], None] = print  # noqa: T202 - replaced by the CLI's progress
    settings: Settings | None = None
    api_url: str = ""
    api_urls: list[str] = field(default_factory=list)
    sandboxes: SimulationSandboxes | None = None
    sandbox_urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _servers: EmbeddedServers | None = None
    _server_dsn: str = ""
    _database: str = ""
    _environment: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> SimulatedDeployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        """Servers, database, sandboxes, workers, scheduler and API, in that order."""
        self.start_infrastructure()
        self.start_processes()

    def start_infrastructure(self) -> None:
        """Check the plugins; servers, the database and the sandboxes (no API, no workers:
        data can be generated before anything syncs it)."""
        self.sandboxes = find_simulation_sandboxes(ProviderRegistry(create_plugin_manager()))
        self._start_servers()
        self._create_database()
        self._start_sandboxes()

    def _start_servers(self) -> None:
        options = self.options
        if options.database_url is None or options.redis_url is None:
            if options.keep_data:
                data_dir = options.output_dir / "servers"
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="pixecom-simulate-")
                data_dir = Path(self._tmp.name)
            self.say(f"starting embedded servers under {data_dir}")
            self._servers = EmbeddedServers(data_dir=data_dir, ephemeral=not options.keep_data)
        pg = options.database_url or self._servers.start_postgres()  # type: ignore[union-attr]
        redis_url = options.redis_url or self._servers.start_valkey()  # type: ignore[union-attr]
        self._server_dsn = conninfo(pg)
        token = secrets.token_hex(4)
        self._database = f"pixecom_simulate_{self.scenario.name.lower()}_{token}"
        self.settings = Settings(
            mode=Mode.TEST,
            redis_url=redis_url,
            redis_key_prefix=f"pixecom-simulate:{token}:",
            jwt_signing_keys=[secrets.token_urlsafe(48)],
            token_encryption_keys=[secrets.token_urlsafe(48)],
            refresh_token_peppers=[secrets.token_urlsafe(48)],
            seed_demo_data=False,
        )

    def _create_database(self) -> None:
        assert self.settings is not None
        self.say(f"creating database {self._database}")
        owner_dsn = admin.create_database(
            conninfo(self._server_dsn, dbname="postgres"), self._database
        )
        self.settings = self.settings.model_copy(update={"database_url": owner_dsn})
        database.migrate(self.settings)
        database.maintain_partitions(self.settings)
        with psycopg.connect(owner_dsn) as conn:
            row = conn.execute(
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
        if not row or not row[0]:
            raise RuntimeError(
                "pixecom simulate bulk-loads its data with COPY, which row-level security "
                "refuses: DATABASE_URL must name a superuser (or a BYPASSRLS role)"
            )

    @property
    def environment(self) -> dict[str, str]:
        """The environment the deployment's processes run with (plugin settings pointing
        at the sandboxes included); a copy."""
        return dict(self._environment)

    def _base_environment(self) -> dict[str, str]:
        assert self.settings is not None
        return process_environment(self.settings, self.options.output_dir)

    def _start_sandboxes(self) -> None:
        assert self.sandboxes is not None
        api_port = _free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self._environment = self._base_environment()
        self._environment["PIXECOM_API_PORT"] = str(api_port)
        conditions = scenario_conditions(self.scenario)
        assignments = []
        for role, sandbox in self.sandboxes.by_role().items():
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            if sandbox.environment is not None:
                self._environment.update(sandbox.environment(url, self.api_url))
            if sandbox.simulation_environment is not None:
                self._environment.update(sandbox.simulation_environment(conditions[role]))
            self.sandbox_urls[sandbox.name] = url
            assignments.append(f"{sandbox.name}={port}")
        self._spawn(
            "sandboxes",
            ["-m", "reference_app.simulate.processes", "sandboxes", *assignments],
        )
        for name, url in self.sandbox_urls.items():
            self._wait_for(f"{url}/_sandbox/config", f"the {name} sandbox")
        self.say("sandboxes: " + ", ".join(f"{n} {u}" for n, u in self.sandbox_urls.items()))

    def _pool(self, size: int, overflow: int, timeout: float | None = None) -> dict[str, str]:
        pool = {
            "PIXECOM_DB_POOL_SIZE": str(size),
            "PIXECOM_DB_POOL_MAX_OVERFLOW": str(overflow),
        }
        if timeout is not None:
            pool["PIXECOM_DB_POOL_TIMEOUT_SECONDS"] = str(timeout)
        return pool

    def start_processes(self) -> None:
        """The workers (one per queue, or one for all: the scenario's ``worker_layout``),
        the scheduler and the API; returns once the API is ready."""
        concurrency = self.options.stats_concurrency
        per_queue = self.scenario.worker_layout is WorkerLayout.PER_QUEUE
        if not per_queue:
            self._spawn_one_worker(concurrency)
        for queue in Queue if per_queue else []:
            # Backfills are batch work like syncs: the same concurrency and pool.
            stats = queue.value.startswith("stats-") or queue is Queue.BACKFILL
            self._spawn(
                f"worker-{queue.value}",
                [
                    "-m",
                    "reference_app.cli",
                    "worker",
                    "--queue",
                    queue.value,
                    "--max-tasks",
                    str(concurrency if stats else 50),
                ],
                # A sync holds a connection only while it writes (a tenth of its slots);
                # a job waits for one (up to a minute) rather than fail: it is batch work.
                # Sellers move between tiers, so every stats worker gets the same pool.
                extra=(
                    self._pool(max(5, concurrency // 10), 5, timeout=WORKER_POOL_TIMEOUT_SECONDS)
                    if stats
                    # a webhook burst runs 50 tasks at once in the payments worker
                    else self._pool(10, 10, timeout=WORKER_POOL_TIMEOUT_SECONDS)
                    if queue is Queue.PAYMENTS
                    else self._pool(3, 3, timeout=WORKER_POOL_TIMEOUT_SECONDS)
                ),
                nice=unit_nice("pixecom-worker@.service"),
            )
        self._spawn(
            "scheduler",
            ["-m", "reference_app.cli", "scheduler"],
            extra=self._pool(2, 2),
            nice=unit_nice("pixecom-scheduler.service"),
        )
        # The deploy kit's processes share the pool the single one had: the deployment
        # stays inside PostgreSQL's max_connections whatever the count.
        processes = max(1, self.options.api_processes)
        pool = max(2, self.options.api_pool_size // processes)
        self.api_urls = [self.api_url] + [
            f"http://127.0.0.1:{_free_port()}" for _ in range(processes - 1)
        ]
        for index, url in enumerate(self.api_urls):
            self._spawn(
                "api" if index == 0 else f"api-{index + 1}",
                ["-m", "reference_app.simulate.processes", "api", "--port", url.rsplit(":", 1)[1]],
                nice=unit_nice("pixecom-api@.service"),
                extra={
                    **self._pool(pool, pool),
                    **(
                        {"PIXECOM_SHED_MAX_IN_FLIGHT": str(self.options.shed_max_in_flight)}
                        if self.options.shed_max_in_flight is not None
                        else {}
                    ),
                },
            )
        for url in self.api_urls:
            self._wait_for(f"{url}/readyz", "the API")
        self.say(
            f"API at {', '.join(self.api_urls)}; workers, scheduler started "
            f"(logs in {self._logs()})"
        )

    def _spawn_one_worker(self, concurrency: int) -> None:
        """One worker process for every queue (issue 18 item 6), each queue with the
        concurrency its own process would have had, sharing one pool: a sync holds a
        connection only while it writes, a webhook for milliseconds."""
        batch = {Queue.STATS_HIGH, Queue.STATS_MEDIUM, Queue.STATS_LOW, Queue.BACKFILL}
        queues = ",".join(
            f"{queue.value}:{concurrency if queue in batch else 50}" for queue in Queue
        )
        self._spawn(
            "worker-all",
            ["-m", "reference_app.cli", "worker", "--queue", queues],
            extra=self._pool(max(10, concurrency // 5), 20, timeout=WORKER_POOL_TIMEOUT_SECONDS),
            nice=unit_nice("pixecom-worker-all.service"),
        )

    def _logs(self) -> Path:
        logs = self.options.output_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs

    def _spawn(
        self,
        name: str,
        arguments: list[str],
        extra: dict[str, str] | None = None,
        nice: int = 0,
    ) -> None:
        """Start ``python arguments`` as ``name``, ``nice`` below this process's own
        priority (through coreutils' ``nice``, so every thread of the process has it from
        the start; a simulation run niced keeps the units' differences)."""
        env = {**self._environment, **(extra or {})}
        command = [sys.executable, *arguments]
        if nice:
            command = ["nice", "-n", str(nice), *command]
        with (self._logs() / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._processes[name] = process
        self.pids[name] = process.pid

    def _wait_for(self, url: str, what: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with status {process.returncode} while waiting for "
                        f"{what}; see {self._logs() / (name + '.log')}"
                    )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not answer {url} within {START_SECONDS:g} s")

    def exited(self) -> dict[str, int]:
        """Processes that have exited (name → status): none should, during a run."""
        return {
            name: process.returncode
            for name, process in self._processes.items()
            if process.poll() is not None
        }

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the processes (SIGTERM, then SIGKILL after a grace period), drop the
        database unless kept, stop embedded servers."""
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self._processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._database and not self.options.keep_data:
            try:
                admin.drop_database(self._server_dsn, self._database)
            except psycopg.Error as exc:
                self.say(f"could not drop database {self._database}: {exc}")
        self._database = "" if not self.options.keep_data else self._database
        if self._servers is not None:
            self._servers.stop()  # ephemeral unless kept: data stays on disk when kept
            self._servers = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
