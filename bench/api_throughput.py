"""Benchmark: what one API process serves per second, per request class, against /healthz.

    .venv/bin/python -m bench.api_throughput [--seconds 10] [--concurrency 32]
        [--rounds 2] [--driver auto|wrk|python] [--driver-processes N]

One API process — ``python -m reference_app.simulate.processes api``: uvicorn, one worker,
``reference_app.api.create_app`` with its production middleware — on real PostgreSQL and
Redis (``DATABASE_URL`` / ``REDIS_URL``, else embedded servers) and a database of the
bench's own (migrated; dropped afterwards) holding one seller made by the simulation's data
generator: a published sellpage and 100 paid orders over the last 25 days.

A closed-loop driver keeps ``--concurrency`` keep-alive connections busy (each sends its
next request when the previous one is answered) for ``--seconds`` per class, after a
warm-up, from processes of its own so that its CPU is not the API's: ``wrk`` when it is on
PATH (``--driver auto``), else asyncio + aiohttp in ``--driver-processes`` processes. The
classes, measured in ``--rounds`` interleaved rounds (so drift of the machine's load is
shared between them):

- ``GET /healthz`` — the baseline: routing and middleware, no I/O;
- ``GET /public/sellpages/{slug}`` — the storefront, a Redis cache hit after the first
  request, each request from one of 1,024 client IPs in ``X-Forwarded-For`` (the API trusts
  127.0.0.1 as its proxy, as in production behind nginx), as the simulation's load does;
- ``GET /orders?limit=50`` — an authenticated list (token check, seller quota on Redis),
  answered from the seller's dashboard cache after the first request, as a dashboard's
  repeated reads are (:mod:`pixecom_core.dashboard_cache`);
- ``GET /orders?limit=50 (uncached)`` — the same page with a ``created_to`` far ahead
  whose microseconds change per request: every request a cache miss (one page of the
  seller's 100 orders under row-level security, serialised, stored);
- ``GET /stats/overview?since=&until=`` — the seller's 30-day report (cached likewise).

The per-IP and per-seller rate limits are raised to 10,000,000/minute in the API's
environment: every request is still counted on Redis (the cost is measured), none is
refused with 429. Logging is at WARNING, as in the simulation (uvicorn's access log off).
Everything else is the settings' defaults: a pool of 10 + 10 connections, and load shedding
past 64 requests in flight — a ``--concurrency`` above 64 gets 503s, which count as errors.

Prints, per class: requests/s; p50 / p99 latency in ms; errors (answers other than 2xx /
304, and requests not answered); the CPU the API process and the driver used, of one core
(the API near 100 % means the API is what is measured; the driver near 100 % means the
driver is); the API's CPU microseconds per request; and two ratios against /healthz in the
same run: ``ratio``, of requests/s, and ``cpu ratio``, /healthz's CPU per request over the
class's — what ``ratio`` would be were the API process's CPU the only limit, steadier than
``ratio`` on a machine that other work is loading; and ``x healthz``, the class's CPU per
request as a multiple of /healthz's (the inverse of ``cpu ratio``). The machine's load
average is printed with the table: figures from a loaded machine are not comparable.
Compare ratios between runs (and only between runs with the same driver), not absolute
numbers. Exit status 1 when any class had an error: its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import Pool
from pathlib import Path

import aiohttp
import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import reference_app  # noqa: E402
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager  # noqa: E402
from pixecom_core.settings import Settings  # noqa: E402
from pixecom_core.testing.databases import provision_test_database, test_servers  # noqa: E402
from reference_app.database import maintain_partitions  # noqa: E402
from reference_app.simulate.datagen import CURRENCY, GeneratedData, generate  # noqa: E402
from reference_app.simulate.deployment import (  # noqa: E402
    find_simulation_sandboxes,
    process_environment,
)
from reference_app.simulate.load import percentiles  # noqa: E402
from reference_app.simulate.scenarios import Scenario  # noqa: E402

#: One seller with a published sellpage and 100 paid orders over 25 days (the simulation's
#: generator; no campaigns: nothing syncs during the bench).
BENCH_SCENARIO = Scenario(
    name="BENCH",
    title="api_throughput: one seller, 100 orders",
    sellers=1,
    campaigns_per_seller=0,
    orders_per_day=4,
    api_rate=0.0,
    history_days=25,
)
#: Days the stats class reports on.
STATS_DAYS = 30
#: Makes each orders request a cache miss: "created before" an instant far ahead, its
#: microseconds random — the same 50 orders, a cache key of its own.
UNCACHED_ORDERS_SUFFIX = "&created_to=2100-01-01T00:00:00.%06dZ"
#: Client IPs the storefront requests come from (through X-Forwarded-For).
CLIENT_IPS = 1_024
#: Rate limits the API runs with: every request counted, none refused.
UNLIMITED_RATE = "10000000/minute"
#: A request unanswered this long counts as an error.
REQUEST_TIMEOUT_SECONDS = 10.0
#: Seconds the API gets to answer /readyz, and to stop.
START_SECONDS = 120.0
STOP_SECONDS = 20.0


@dataclass(frozen=True)
class RequestClass:
    """One request class: a GET with fixed headers, optionally from many client IPs."""

    name: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    forwarded_ips: bool = False
    #: Appended to the path with a random number 0–999,999 per request (``%06d``): a
    #: query that means the same rows but names a cache entry of its own, so every
    #: request misses the dashboard cache.
    cache_busting_suffix: str | None = None


@dataclass(frozen=True)
class DriveJob:
    """One driver process's share of a measurement.

    ``start_at`` is a wall-clock time (``time.time()``): every process warms up from
    ``start_at - warmup`` and counts the requests answered in ``[start_at, start_at +
    seconds)``.
    """

    base_url: str
    request: RequestClass
    connections: int
    warmup: float
    seconds: float
    start_at: float
    seed: int


@dataclass
class Sample:
    """Requests answered in a measurement window, their latencies and statuses."""

    seconds: float = 0.0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    #: status → count; 0 stands for no answer (timeout, connection error).
    statuses: dict[int, int] = field(default_factory=dict)
    #: Driver CPU seconds in the window (all driver processes); None when unknown.
    driver_cpu: float | None = 0.0
    api_cpu: float = 0.0
    #: Latency percentiles of a driver that reports no latencies (wrk), in ms.
    p50_ms: float | None = None
    p99_ms: float | None = None

    def add(self, other: Sample) -> None:
        """Merge ``other`` (another process, or another round) into this sample."""
        self.answered += other.answered
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        if self.driver_cpu is not None and other.driver_cpu is not None:
            self.driver_cpu += other.driver_cpu
        else:
            self.driver_cpu = None
        self.api_cpu += other.api_cpu

    @property
    def errors(self) -> int:
        """Answers other than 2xx and 304, and requests not answered at all."""
        return sum(
            count
            for status, count in self.statuses.items()
            if not (200 <= status < 300 or status == 304)
        )


# -- the API process ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def api_environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The environment ``processes api`` builds its ``Settings()`` from: the bench
    database, its secrets, limits that refuse nothing, and this checkout's code first."""
    env = process_environment(settings, data_dir)
    # This checkout's code first (also when the bench runs from another worktree).
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
            "PIXECOM_APP_ROLE": settings.app_role,
            "PIXECOM_SELLER_REQUEST_RATE": UNLIMITED_RATE,
            "PIXECOM_PUBLIC_IP_RATE": UNLIMITED_RATE,
            "PIXECOM_LOGIN_IP_RATE": UNLIMITED_RATE,
        }
    )
    return env


@contextmanager
def api_process(settings: Settings, data_dir: Path) -> Iterator[tuple[str, int]]:
    """Serve the API in a process of its own; yield (base URL, pid) once it is ready."""
    port = _free_port()
    log_path = data_dir / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reference_app.simulate.processes", "api", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=api_environment(settings, data_dir),
            cwd=REPO_ROOT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the API exited with status {process.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not get ready within {START_SECONDS:g} s")
            time.sleep(0.2)
        yield base_url, process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log_in(base_url: str, email: str, password: str) -> str:
    """An access token of the seller (a real password check)."""
    answer = httpx.post(
        f"{base_url}/auth/login", json={"email": email, "password": password}, timeout=30
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def generate_bench_data(owner_dsn: str, settings: Settings) -> GeneratedData:
    """The bench's seller, through the simulation's generator, with the installed
    sandboxes' ad network and gateway (the accounts are never synced here)."""
    sandboxes = find_simulation_sandboxes(ProviderRegistry(create_plugin_manager()))
    accounts = sandboxes.ad_network.simulation_accounts
    assert accounts is not None  # find_simulation_sandboxes only picks one that has them
    return generate(
        owner_dsn,
        settings,
        BENCH_SCENARIO,
        ad_network=sandboxes.ad_network.provider,
        ad_accounts=accounts(BENCH_SCENARIO.sellers, CURRENCY),
        gateway=sandboxes.payment_gateway.provider,
    )


def request_classes(slug: str, token: str) -> list[RequestClass]:
    """The measured classes, the /healthz baseline first."""
    today = datetime.now(UTC).date()
    since = today - timedelta(days=STATS_DAYS - 1)
    bearer = {"Authorization": f"Bearer {token}"}
    return [
        RequestClass("GET /healthz", "/healthz"),
        RequestClass("GET /public/sellpages/{slug}", f"/public/sellpages/{slug}", {}, True),
        RequestClass("GET /orders?limit=50", "/orders?limit=50", bearer),
        RequestClass(
            "GET /orders?limit=50 (uncached)",
            "/orders?limit=50",
            bearer,
            cache_busting_suffix=UNCACHED_ORDERS_SUFFIX,
        ),
        RequestClass(
            f"GET /stats/overview ({STATS_DAYS} days)",
            f"/stats/overview?since={since.isoformat()}&until={today.isoformat()}",
            bearer,
        ),
    ]


def client_ips(seed: int, count: int = CLIENT_IPS) -> list[str]:
    """``count`` client addresses in 10.0.0.0/8, as a proxy would forward them."""
    rng = random.Random(seed)
    return [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(count)
    ]


# -- the Python driver (one process per DriveJob) ------------------------------------------


def _ready(_: int) -> int:
    """A pool process that answers this has imported everything a job needs."""
    time.sleep(0.2)  # long enough that each process takes one
    return os.getpid()


def drive(job: DriveJob) -> Sample:
    """Run one driver process's connections for the job (in a pool process)."""
    return asyncio.run(_drive(job))


async def _drive(job: DriveJob) -> Sample:
    sample = Sample(seconds=job.seconds)
    # The wall-clock start, on this process's monotonic clock.
    start = time.monotonic() + (job.start_at - time.time())
    end = start + job.seconds
    ips = client_ips(job.seed) if job.request.forwarded_ips else []
    connector = aiohttp.TCPConnector(limit=job.connections, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(
        job.base_url, connector=connector, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as session:

        async def connection(index: int) -> None:
            rng = random.Random(job.seed * 1_000 + index)
            headers = dict(job.request.headers)
            suffix = job.request.cache_busting_suffix
            while (now := time.monotonic()) < end:
                if ips:
                    headers["X-Forwarded-For"] = rng.choice(ips)
                path = job.request.path
                if suffix is not None:
                    path += suffix % rng.randrange(1_000_000)
                try:
                    async with session.get(path, headers=headers) as answer:
                        await answer.read()
                        status = answer.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                done = time.monotonic()
                if start <= done < end:
                    sample.answered += 1
                    sample.latencies.append(done - now)
                    sample.statuses[status] = sample.statuses.get(status, 0) + 1

        async def cpu_meter() -> None:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            cpu_start = time.process_time()
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            sample.driver_cpu = time.process_time() - cpu_start

        await asyncio.sleep(max(0.0, start - job.warmup - time.monotonic()))
        await asyncio.gather(cpu_meter(), *(connection(i) for i in range(job.connections)))
    return sample


def measure_python(
    pool: Pool, processes: int, base_url: str, request: RequestClass, args: Options, api_pid: int
) -> Sample:
    """One closed-loop measurement of ``request`` with the Python driver."""
    shares = [
        args.concurrency // processes + (i < args.concurrency % processes) for i in range(processes)
    ]
    # Leave the pool's processes time to pick their job up before the warm-up starts.
    start_at = time.time() + 0.5 + args.warmup
    jobs = [
        DriveJob(base_url, request, share, args.warmup, args.share_seconds, start_at, seed)
        for seed, share in enumerate(shares, start=1)
        if share
    ]
    pending = pool.map_async(drive, jobs, chunksize=1)
    api_cpu = _api_cpu_during(api_pid, start_at, args.share_seconds)
    total = Sample(seconds=args.share_seconds)
    for part in pending.get(timeout=args.share_seconds + args.warmup + 60):
        total.add(part)
    total.api_cpu = api_cpu
    return total


def _api_cpu_during(pid: int, start_at: float, seconds: float) -> float:
    """CPU seconds the API process uses in ``[start_at, start_at + seconds)``."""
    api = psutil.Process(pid)
    time.sleep(max(0.0, start_at - time.time()))
    before = api.cpu_times()
    time.sleep(max(0.0, start_at + seconds - time.time()))
    after = api.cpu_times()
    return (after.user + after.system) - (before.user + before.system)


# -- the wrk driver ------------------------------------------------------------------------

#: Counts answers by status (wrk itself only counts "non-2xx or 3xx"), and sets
#: X-Forwarded-For per request from the bench's client addresses when there are any.
_WRK_SCRIPT = """
local ips = {%s}
local suffix = %s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; math.randomseed(7) end
if #ips > 0 or suffix then
  request = function()
    if #ips > 0 then wrk.headers["X-Forwarded-For"] = ips[math.random(#ips)] end
    if suffix then
      return wrk.format(nil, wrk.path .. string.format(suffix, math.random(0, 999999)))
    end
    return wrk.format(nil)
  end
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %%d %%d\\n", status, count))
    end
  end
end
"""
_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match[1]) * _WRK_UNITS[match[2]]


def measure_wrk(
    wrk: str, base_url: str, request: RequestClass, args: Options, api_pid: int, tmp: Path
) -> Sample:
    """One closed-loop measurement of ``request`` with wrk (one thread: on a small machine
    its CPU is the API's competitor)."""
    command = [wrk, "-t1", f"-c{args.concurrency}", "--latency"]
    command += [f"--timeout={REQUEST_TIMEOUT_SECONDS:g}s"]
    for name, value in request.headers.items():
        command += ["-H", f"{name}: {value}"]
    script = tmp / "wrk.lua"
    ips = client_ips(1) if request.forwarded_ips else []
    suffix = request.cache_busting_suffix
    script.write_text(
        _WRK_SCRIPT
        % (", ".join(f'"{ip}"' for ip in ips), "nil" if suffix is None else f'"{suffix}"')
    )
    command += ["-s", str(script)]
    url = base_url + request.path
    if args.warmup > 0:
        subprocess.run(
            [*command, f"-d{max(1, round(args.warmup))}s", url],
            check=True,
            capture_output=True,
        )
    api = psutil.Process(api_pid)
    before = api.cpu_times()
    wrk_before = _children_cpu()
    output = subprocess.run(
        [*command, f"-d{max(1, round(args.share_seconds))}s", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = api.cpu_times()
    sample = Sample(seconds=args.share_seconds, latencies=[])
    sample.api_cpu = (after.user + after.system) - (before.user + before.system)
    sample.driver_cpu = _children_cpu() - wrk_before
    answered = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if answered is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    sample.answered = int(answered[1])
    sample.seconds = _wrk_ms(answered[2] + answered[3]) / 1000
    sample.statuses = {
        int(status): int(count)
        for status, count in re.findall(r"^status (\d+) (\d+)$", output, re.M)
    }
    if sample.answered and not sample.statuses:
        raise RuntimeError(f"wrk's script counted no answers:\n{output}")
    sample.answered = sum(sample.statuses.values())
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        failed = sum(int(n) for n in re.findall(r"\d+", socket_errors[1]))
        sample.statuses[0] = sample.statuses.get(0, 0) + failed
    distribution = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    if set(distribution) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    sample.p50_ms = _wrk_ms(distribution["50"])
    sample.p99_ms = _wrk_ms(distribution["99"])
    return sample


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk runs)."""
    times = os.times()
    return times.children_user + times.children_system


# -- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Command-line options, and what follows from them."""

    seconds: float
    concurrency: int
    rounds: int
    driver: str
    driver_processes: int

    @property
    def share_seconds(self) -> float:
        """Seconds each class is measured for in one round."""
        return self.seconds / self.rounds

    @property
    def warmup(self) -> float:
        """Warm-up before each measurement: connections open, the storefront cached."""
        return min(2.0, max(0.5, self.share_seconds / 5))


@dataclass
class ClassResult:
    """A class's samples over all rounds."""

    request: RequestClass
    rounds: list[Sample] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Requests answered per second, over all rounds."""
        return sum(s.answered for s in self.rounds) / sum(s.seconds for s in self.rounds)

    def latency_ms(self) -> tuple[float, float]:
        """p50 and p99 in ms (for wrk: the rounds' mean of wrk's own percentiles)."""
        latencies = [latency * 1000 for s in self.rounds for latency in s.latencies]
        if latencies:
            p50, p99 = percentiles(latencies, (50, 99))
            return p50, p99
        wrk = [(s.p50_ms, s.p99_ms) for s in self.rounds if s.p50_ms is not None]
        if not wrk:
            return float("nan"), float("nan")
        return (
            sum(p50 for p50, _ in wrk) / len(wrk),
            sum(p99 or 0.0 for _, p99 in wrk) / len(wrk),
        )

    def api_cpu_per_request(self) -> float:
        """CPU seconds the API process spent per answered request (all rounds)."""
        total = self.total()
        return total.api_cpu / max(1, total.answered)

    def total(self) -> Sample:
        """All rounds as one sample."""
        merged = Sample()
        for sample in self.rounds:
            merged.add(sample)
            merged.seconds += sample.seconds
        return merged


def run(args: Options) -> int:
    """Provision, start the API, measure every class in every round; the exit status."""
    wrk = shutil.which("wrk") if args.driver in ("auto", "wrk") else None
    if args.driver == "wrk" and wrk is None:
        raise SystemExit("--driver wrk: wrk is not on PATH")
    driver = (
        f"wrk ({wrk}, 1 thread)"
        if wrk
        else f"python (aiohttp, {args.driver_processes} process"
        f"{'es' if args.driver_processes > 1 else ''})"
    )
    print(
        f"api throughput: reference_app from {Path(reference_app.__file__).parent}; "
        f"driver {driver}; concurrency {args.concurrency}; {args.seconds:g} s per class "
        f"in {args.rounds} round{'s' if args.rounds > 1 else ''}",
        flush=True,
    )
    with (
        test_servers() as (server_dsn, redis_url),
        provision_test_database(server_dsn, redis_url) as db,
        tempfile.TemporaryDirectory(prefix="pixecom-bench-") as tmp,
    ):
        settings = db.settings.model_copy(
            update={"redis_key_prefix": f"pixecom-bench:{os.getpid()}:{time.time_ns()}:"}
        )
        maintain_partitions(settings)
        data = generate_bench_data(db.owner_dsn, settings)
        with api_process(settings, Path(tmp)) as (base_url, api_pid), ExitStack() as stack:
            # The driver's processes start (and import) once, before the first measurement.
            pool = (
                None
                if wrk
                else stack.enter_context(
                    multiprocessing.get_context("spawn").Pool(args.driver_processes)
                )
            )
            if pool is not None:
                pool.map(_ready, range(args.driver_processes), chunksize=1)
            token = log_in(base_url, *data.logins[0])
            results = [ClassResult(c) for c in request_classes(data.slugs[0], token)]
            for _ in range(args.rounds):
                for result in results:
                    if pool is None:
                        assert wrk is not None
                        sample = measure_wrk(
                            wrk, base_url, result.request, args, api_pid, Path(tmp)
                        )
                    else:
                        sample = measure_python(
                            pool, args.driver_processes, base_url, result.request, args, api_pid
                        )
                    result.rounds.append(sample)
    return report(results)


def report(results: Sequence[ClassResult]) -> int:
    """Print the table; 1 when a class had errors."""
    baseline = results[0]
    baseline_cpu = baseline.api_cpu_per_request()
    print(
        f"{'class':<32}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'api cpu':>8}{'us/req':>8}{'driver':>7}{'ratio':>7}{'cpu ratio':>10}"
        f"{'x healthz':>10}"
    )
    failed = False
    for result in results:
        total = result.total()
        p50, p99 = result.latency_ms()
        driver_cpu = (
            f"{total.driver_cpu / total.seconds:>7.0%}" if total.driver_cpu is not None else "?"
        )
        print(
            f"{result.request.name:<32}{result.per_second:>8.0f}{p50:>8.1f}{p99:>8.1f}"
            f"{total.errors:>7}{total.api_cpu / total.seconds:>8.0%}"
            f"{result.api_cpu_per_request() * 1e6:>8.0f}{driver_cpu:>7}"
            f"{result.per_second / baseline.per_second:>7.3f}"
            f"{baseline_cpu / result.api_cpu_per_request():>10.3f}"
            f"{result.api_cpu_per_request() / baseline_cpu:>9.2f}x"
        )
        if total.errors:
            failed = True
            shown = ", ".join(
                f"{'no answer' if status == 0 else status}: {count}"
                for status, count in sorted(total.statuses.items())
            )
            print(f"    answers: {shown}")
    print(
        "ratio: requests/s against GET /healthz in this run. api cpu, driver: CPU used, of "
        "one core;\nus/req: API CPU microseconds per request; cpu ratio: /healthz's us/req "
        "over the class's\n(the ratio were the API process's CPU the only limit); x healthz: "
        "the class's us/req\nas a multiple of /healthz's (the figure issue 18's targets name)."
    )
    print(
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    if failed:
        print("FAILED: a class had errors (answers other than 2xx / 304, or none)")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per class (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--driver", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--driver-processes",
        type=int,
        default=max(1, min(4, (os.cpu_count() or 2) // 2)),
        help="processes of the Python driver (default: half the cores, 1 to 4)",
    )
    parsed = parser.parse_args()
    if parsed.seconds <= 0 or parsed.concurrency < 1 or parsed.rounds < 1:
        parser.error("--seconds, --concurrency and --rounds must be positive")
    sys.exit(
        run(
            Options(
                seconds=parsed.seconds,
                concurrency=parsed.concurrency,
                rounds=parsed.rounds,
                driver=parsed.driver,
                driver_processes=max(1, min(parsed.driver_processes, parsed.concurrency)),
            )
        )
    )


if __name__ == "__main__":
    main()
