"""One simulation run: deploy, generate, drive load, sync, burst, measure, report.

Phases (each announced on the terminal with the time elapsed):

1. start the reference deployment (:mod:`reference_app.simulate.deployment`);
2. generate the scenario's data (:mod:`reference_app.simulate.datagen`);
3. log sellers in, and for a webhook burst place its orders ahead (unpaid);
4. the warm-up (``warmup`` seconds, 5 by default): load at the window's rates, so that the
   window starts with the generator's keep-alive connections open (their TLS handshakes
   done) and every route served once; its answers are reported apart, never in the
   window's figures;
5. the measurement window (``duration`` seconds): open-loop API load at the scenario's
   peak rates; at its start a full sync cycle of every seller is queued on the workers
   (all at once — worse than the scheduler's spread, on purpose) and, in scenario C, a
   tracking refresh of every seller against a tracker slower than its timeout; halfway,
   the webhook burst (payments completed with their webhooks held, then delivered twice
   each, shuffled, by concurrent senders);
6. wait for the cycle to finish (up to ``cycle_timeout``) and the webhooks to be processed,
   then count rows and check every paid payment reached the ledger exactly as a fact.

With ``edge`` (the default for scenario C, issue 18 item 2) the deploy kit's nginx config
runs in front of the API (:mod:`reference_app.simulate.edge`): the load reaches the API as
a deployment's would, through TLS, per-address rate limits and the sellpages'
micro-cache. Sandboxes still deliver webhooks to the API directly.

Each process of the deployment runs at the priority (nice value) of its deploy-kit unit,
background work below the API; the sandboxes and the load generator at the default. The
report names each process's priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from pixecom_core.models.sellers import SellerTier
from pixecom_core.providers import DemoPayment, SimulatedPayments
from pixecom_core.settings import Settings
from pixecom_core.stats.schedule import DueSync
from reference_app.simulate import datagen
from reference_app.simulate.deployment import DeploymentOptions, SimulatedDeployment
from reference_app.simulate.edge import EdgeProxy
from reference_app.simulate.load import (
    CHECKOUT,
    DASHBOARD,
    STOREFRONT,
    Edge,
    LoadGenerator,
    LoadResult,
    LoadTargets,
)
from reference_app.simulate.payment_accounts import connect_payment_accounts
from reference_app.simulate.probes import LOAD_GENERATOR, Probes, count_rows
from reference_app.simulate.scenarios import SYNC_WINDOW_SECONDS, Scenario
from reference_app.worker.broker import Queue, build_broker, kick_sync, kick_tracking_refresh

#: Shares of the API rate: shoppers reading sellpages, sellers reading their dashboards.
STOREFRONT_SHARE = 0.6
DASHBOARD_SHARE = 0.4
#: Dashboard requests per second per logged-in seller (the quota is 10/s; stay well under).
DASHBOARD_RATE_PER_SESSION = 5.0
#: Payments completed per burst round (the Stripe sandbox lists its last 1,000 events).
BURST_ROUND = 300
#: Concurrent senders delivering a burst round.
BURST_SENDERS = 16


@dataclass(frozen=True)
class RunOptions:
    """How to run a scenario.

    :param duration: seconds of the measurement window.
    :param cycle_timeout: how long to wait for the sync cycle before calling it unfinished.
    :param drain_timeout: how long to wait, after the window, for webhooks to be processed.
    :param edge: put the deploy kit's nginx in front of the API; None: only for scenario C.
    :param generator_core_limit: cores the load generator may use before the report warns
        that it, not the API, may have set the pace.
    :param api_processes: API processes; None: the deploy kit's two behind nginx (its
        upstream names two servers), one straight to the API.
    :param warmup: seconds of load at the window's rates before it, the sync cycle and
        the burst not yet started: the generator's keep-alive connections (TLS
        handshakes, behind nginx) are open and the processes have served each route once
        when the window starts. Its answers are reported apart, never in the window's.
    """

    output_dir: Path
    duration: float = 90.0
    keep_data: bool = False
    stats_concurrency: int = 100
    cycle_timeout: float = 900.0
    drain_timeout: float = 120.0
    seed: int = 7
    shed_max_in_flight: int | None = None
    database_url: str | None = None
    redis_url: str | None = None
    edge: bool | None = None
    generator_core_limit: float = 1.0
    api_processes: int | None = None
    warmup: float = 5.0


#: The scenarios measured behind nginx unless told otherwise: the audit sized C's
#: 500 req/s for a deployment, which has its edge in front (issue 18 item 2).
EDGE_SCENARIOS = frozenset({"C"})


def uses_edge(scenario: Scenario, options: RunOptions) -> bool:
    """Whether ``scenario`` runs behind nginx: ``options.edge``, else its default."""
    return options.edge if options.edge is not None else scenario.name in EDGE_SCENARIOS


#: API processes behind nginx unless told otherwise: the deploy kit's upstream has two.
EDGE_API_PROCESSES = 2


def api_processes(scenario: Scenario, options: RunOptions) -> int:
    """How many API processes ``scenario`` runs: ``options.api_processes``, else the
    deploy kit's two behind nginx and one without it."""
    if options.api_processes is not None:
        return options.api_processes
    return EDGE_API_PROCESSES if uses_edge(scenario, options) else 1


@dataclass
class CycleResult:
    """The full sync cycle: wall time from queueing to the last account synced."""

    accounts: int = 0
    synced: int = 0
    failed: int = 0
    seconds: float | None = None
    dead_letters: int = 0
    progress: list[tuple[float, int]] = field(default_factory=list)

    @property
    def fits_window(self) -> bool:
        """Every account synced within the 5-minute window."""
        return (
            self.seconds is not None
            and self.synced == self.accounts
            and self.seconds <= SYNC_WINDOW_SECONDS
        )


@dataclass
class WebhookResult:
    """Payments paid at the sandbox against what reached the inbox and the ledger."""

    #: The payment gateway whose sandbox was paid at.
    gateway: str = ""
    paid: int = 0
    captured_in_ledger: int = 0
    burst_events: int = 0
    burst_deliveries: int = 0
    burst_refused: int = 0
    burst_seconds: float = 0.0
    inbox_unprocessed: int = 0

    #: Paid payments whose success delivery (the sandbox's ``paid_event_type``) is in the
    #: inbox.
    stored_in_inbox: int = 0
    #: Pay calls the sandbox did not confirm (not counted in ``paid``).
    payment_calls_failed: int = 0

    @property
    def lost(self) -> int:
        """Paid payments neither in the ledger nor stored in the inbox: gone for good
        (a stored delivery not yet processed is late, not lost: see ``unprocessed``)."""
        return self.paid - max(self.captured_in_ledger, self.stored_in_inbox)

    @property
    def unprocessed(self) -> int:
        """Paid payments whose capture has not reached the ledger yet."""
        return self.paid - self.captured_in_ledger


@dataclass
class TrackerResult:
    """Scenario C's slow 17TRACK: refreshes queued, parcels the tracker accepted, the
    tracker's circuit breaker state at the end (``opened`` while it keeps failing)."""

    refreshes_queued: int = 0
    parcels: int = 0
    parcels_registered: int = 0
    breaker_state: str = ""
    #: Seconds into the window when the breaker was first seen open (None: never).
    breaker_opened_after: float | None = None
    tracking_queue_max: int = 0


@dataclass
class SimulationResult:
    """Everything measured in one run."""

    scenario: Scenario
    options: RunOptions
    generated: datagen.GeneratedData
    load: LoadResult
    rates: dict[str, float]
    sessions: int
    cycle: CycleResult
    webhooks: WebhookResult
    tracker: TrackerResult | None
    probes: Probes
    rows: dict[str, int]
    exited: dict[str, int]
    pids: dict[str, int]
    elapsed: float
    #: nginx's access log when the load went through it (None: straight to the API).
    edge_access_log: Path | None = None
    #: process name → the nice value it ran the window at, read off the process (the
    #: deploy kit's ``Nice=`` for the deployment's), the load generator's included.
    priorities: dict[str, int] = field(default_factory=dict)
    #: The warm-up's load (``RunOptions.warmup``), None without one.
    warmup: LoadResult | None = None


class Progress:
    """Prints phases with the time since the run started."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._started = time.monotonic()

    def __call__(self, message: str) -> None:
        """Print ``[  12.3s] message``."""
        self._say(f"[{time.monotonic() - self._started:7.1f}s] {message}")


def rates_for(scenario: Scenario) -> dict[str, float]:
    """Requests per second of each class at the scenario's peak."""
    return {
        STOREFRONT: scenario.api_rate * STOREFRONT_SHARE,
        DASHBOARD: scenario.api_rate * DASHBOARD_SHARE,
        CHECKOUT: scenario.checkout_rate,
    }


def sessions_for(scenario: Scenario, dashboard_rate: float) -> int:
    """Sellers to log in so that each stays well inside its request quota."""
    return max(1, min(scenario.sellers, math.ceil(dashboard_rate / DASHBOARD_RATE_PER_SESSION)))


def run_simulation(
    scenario: Scenario, options: RunOptions, say: Callable[[str], None]
) -> SimulationResult:
    """Run ``scenario`` end to end (see the module docstring); the deployment is always
    stopped, and its database dropped unless ``keep_data``."""
    progress = Progress(say)
    started = time.monotonic()
    # SIGTERM would end the process on the spot and orphan the deployment's processes;
    # as KeyboardInterrupt it unwinds through the deployment's stop().
    signal.signal(signal.SIGTERM, _interrupt)
    deployment = SimulatedDeployment(
        scenario,
        DeploymentOptions(
            output_dir=options.output_dir,
            keep_data=options.keep_data,
            stats_concurrency=options.stats_concurrency,
            shed_max_in_flight=options.shed_max_in_flight,
            database_url=options.database_url,
            redis_url=options.redis_url,
            api_processes=api_processes(scenario, options),
        ),
        say=progress,
    )
    with deployment:
        progress(f"scenario {scenario.name}: {scenario.title}")
        deployment.start_infrastructure()
        settings = deployment.settings
        assert settings is not None and settings.database_url is not None
        # Data first, then the processes: nothing syncs half-generated sellers, and the
        # measured cycle is each account's first (cold) one.
        progress("generating data")
        sandboxes = deployment.sandboxes
        assert sandboxes is not None and sandboxes.ad_network.simulation_accounts is not None
        generated = datagen.generate(
            settings.database_url,
            settings,
            scenario,
            ad_network=sandboxes.ad_network.provider,
            ad_accounts=sandboxes.ad_network.simulation_accounts(
                scenario.sellers, datagen.CURRENCY
            ),
            gateway=sandboxes.payment_gateway.provider,
            seed=options.seed,
            say=progress,
        )
        # Issue 15 item 5: each seller is paid into an account of its own.
        asyncio.run(
            connect_payment_accounts(
                settings,
                deployment.environment,
                sandboxes.payment_gateway,
                generated.seller_ids,
                api_url=deployment.api_url,
                say=progress,
            )
        )
        progress(f"data generated in {generated.seconds:.1f} s; starting the processes")
        deployment.start_processes()
        edge = None
        if uses_edge(scenario, options):
            ports = [int(url.rsplit(":", 1)[1]) for url in deployment.api_urls]
            edge = EdgeProxy(
                options.output_dir / "nginx",
                ports[0],
                second_api_port=ports[1] if len(ports) > 1 else None,
            )
        try:
            if edge is not None:
                edge.start()
                progress(f"nginx (the deploy kit's config) at {edge.https_url}")
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                result = runner.run(
                    _measure(deployment, settings, generated, scenario, options, progress, edge)
                )
        finally:
            if edge is not None:
                edge.stop()
        result.elapsed = time.monotonic() - started
        result.exited = deployment.exited()
        progress("stopping the deployment")
    return result


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (a dependency of the reference app outside
    Windows), else asyncio's own: the load generator's CPU per answer is what decides
    whether one process can offer scenario C's rate without taking the API's cores."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _measure(
    deployment: SimulatedDeployment,
    settings: Settings,
    generated: datagen.GeneratedData,
    scenario: Scenario,
    options: RunOptions,
    progress: Progress,
    edge: EdgeProxy | None = None,
) -> SimulationResult:
    owner_dsn = settings.database_url
    assert owner_dsn is not None
    rates = rates_for(scenario)
    sandboxes = deployment.sandboxes
    assert sandboxes is not None and sandboxes.payment_gateway.simulation_payments is not None
    gateway = sandboxes.payment_gateway.provider
    # One object for the load's payments and the burst: it knows when delivery is held.
    payments = sandboxes.payment_gateway.simulation_payments(
        deployment.sandbox_urls[sandboxes.payment_gateway.name]
    )
    generator = LoadGenerator(
        deployment.api_url,
        LoadTargets(
            slugs=generated.slugs,
            logins=generated.logins,
            gateway=gateway,
            payments=payments,
        ),
        seed=options.seed,
        edge=Edge(url=edge.https_url, certificate=edge.cert) if edge is not None else None,
    )
    probes = Probes(
        owner_dsn,
        settings,
        deployment.pids,
        breaker=("tracker", sandboxes.tracker.provider) if scenario.slow_tracker else None,
        trees={"nginx": edge.pid} if edge is not None and edge.pid is not None else {},
    )
    broker = build_broker(settings, Queue.STATS_LOW)
    await broker.startup()
    webhooks = WebhookResult(gateway=gateway)
    tracker = TrackerResult() if scenario.slow_tracker else None
    try:
        sessions = sessions_for(scenario, rates[DASHBOARD])
        progress(f"logging {sessions} sellers in")
        logins = LoadResult()
        await generator.log_in(sessions, logins)
        if not generator.sessions:
            statuses = sorted({o.status for o in logins.outcomes})
            raise RuntimeError(
                f"no seller could log in (HTTP statuses {statuses}); see the API log"
            )
        burst_payments: list[DemoPayment] = []
        if scenario.webhook_burst:
            progress(f"placing {scenario.webhook_burst} orders for the webhook burst")
            burst_payments = await generator.place_unpaid_orders(scenario.webhook_burst)
        priorities = running_priorities(deployment.pids)
        warm: LoadResult | None = None
        if options.warmup > 0:
            progress(f"warming up for {options.warmup:g} s at the window's rates")
            warm = await generator.run(rates, options.warmup)
        await probes.start()
        cycle = CycleResult()
        # Queued in full before the load starts (1,000 XADDs take well under a second on a
        # free event loop, but minutes on one busy sending requests).
        kicked_at = await _kick_cycle(owner_dsn, broker, settings, cycle)
        cycle_task = asyncio.create_task(_watch_cycle(owner_dsn, kicked_at, cycle))
        if tracker is not None:
            tracker.refreshes_queued = await _kick_tracking(owner_dsn, broker, settings)
        progress(
            f"measuring for {options.duration:g} s: "
            + ", ".join(f"{kind} {rate:.1f}/s" for kind, rate in rates.items())
            + f"; sync cycle of {scenario.sellers} sellers queued"
        )

        def on_progress(at: float, done: int, in_flight: int) -> None:
            depth = probes.samples[-1].total_queue_depth if probes.samples else 0
            progress(
                f"  t={at:5.0f}s requests done {done}, in flight {in_flight}, "
                f"accounts synced {cycle.synced}/{cycle.accounts}, queue depth {depth}"
            )

        burst_task = None
        if burst_payments:
            burst_task = asyncio.create_task(
                _burst_later(
                    options.duration / 2,
                    payments,
                    burst_payments,
                    webhooks,
                    progress,
                )
            )
        load = await generator.run(rates, options.duration, on_progress=on_progress)
        burst_paid = await burst_task if burst_task is not None else []
        progress(
            f"window over: {len(load.outcomes)} requests in {load.elapsed:.1f} s; "
            f"waiting for the sync cycle"
        )
        try:
            await asyncio.wait_for(asyncio.shield(cycle_task), options.cycle_timeout)
        except TimeoutError:
            progress(f"sync cycle unfinished after {options.cycle_timeout:g} s")
        cycle_task.cancel()
        linked = datagen.link_campaigns(owner_dsn)
        progress(f"{linked} campaigns linked to sellpages; waiting for webhooks to drain")
        paid = [*load.paid_references, *burst_paid]
        webhooks.payment_calls_failed += load.payment_failures
        if warm is not None:  # its payments must reach the ledger too
            paid += warm.paid_references
            webhooks.payment_calls_failed += warm.payment_failures
        await _drain(owner_dsn, paid, payments.paid_event_type, webhooks, options.drain_timeout)
        if tracker is not None:
            await _tracker_state(owner_dsn, probes, tracker)
        await probes.stop()
        rows = count_rows(owner_dsn)
        load.outcomes.extend(logins.outcomes)
    finally:
        await probes.stop()
        await broker.shutdown()
        await generator.aclose()
        await payments.aclose()
    return SimulationResult(
        scenario=scenario,
        options=options,
        generated=generated,
        load=load,
        rates=rates,
        sessions=len(generator.sessions),
        cycle=cycle,
        webhooks=webhooks,
        tracker=tracker,
        probes=probes,
        rows=rows,
        exited={},
        pids=dict(deployment.pids),
        elapsed=0.0,
        edge_access_log=edge.access_log if edge is not None else None,
        priorities=priorities,
        warmup=warm,
    )


def running_priorities(pids: dict[str, int]) -> dict[str, int]:
    """The nice value each process runs at, and this process's (the load generator)."""
    priorities = {}
    for name, pid in pids.items():
        with contextlib.suppress(ProcessLookupError):
            priorities[name] = os.getpriority(os.PRIO_PROCESS, pid)
    priorities[LOAD_GENERATOR] = os.getpriority(os.PRIO_PROCESS, 0)
    return priorities


async def _sellers(owner_dsn: str) -> list[tuple[uuid.UUID, SellerTier]]:
    async with await psycopg.AsyncConnection.connect(owner_dsn) as conn:
        cursor = await conn.execute("SELECT id, tier FROM sellers ORDER BY id")
        return [(row[0], SellerTier(row[1])) for row in await cursor.fetchall()]


async def _kick_cycle(
    owner_dsn: str, broker: Any, settings: Settings, cycle: CycleResult
) -> datetime:
    """Queue every seller's sync at once, on its tier's queue; return when (database
    clock) the cycle started."""
    async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
        row = await (await conn.execute("SELECT now(), count(*) FROM ad_accounts")).fetchone()
    assert row is not None
    kicked_at: datetime = row[0]
    cycle.accounts = int(row[1])
    for seller_id, tier in await _sellers(owner_dsn):
        await kick_sync(
            broker,
            settings,
            DueSync(
                seller_id=seller_id,
                tier=tier,
                days_back=settings.sync_window_days,
                claim_key="",
                claim_seconds=0,
                sweep=False,
            ),
        )
    return kicked_at


async def _watch_cycle(owner_dsn: str, kicked_at: datetime, cycle: CycleResult) -> None:
    """Watch ``ad_accounts`` until each account has synced since the kick; the cycle
    ends at the last ``last_synced_at``."""
    async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
        started = time.monotonic()
        while True:
            row = await (
                await conn.execute(
                    """
                    SELECT count(*) FILTER (WHERE last_synced_at >= %(t)s),
                           count(*) FILTER (WHERE last_sync_error IS NOT NULL
                                              AND last_sync_attempt_at >= %(t)s),
                           max(last_synced_at) - %(t)s,
                           (SELECT count(*) FROM dead_letters WHERE failed_at >= %(t)s)
                      FROM ad_accounts
                    """,
                    {"t": kicked_at},
                )
            ).fetchone()
            assert row is not None
            cycle.synced, cycle.failed, cycle.dead_letters = int(row[0]), int(row[1]), int(row[3])
            cycle.progress.append((time.monotonic() - started, cycle.synced))
            if cycle.synced >= cycle.accounts:
                cycle.seconds = row[2].total_seconds()
                return
            await asyncio.sleep(1.0)


async def _kick_tracking(owner_dsn: str, broker: Any, settings: Settings) -> int:
    sellers = await _sellers(owner_dsn)
    for seller_id, _tier in sellers:
        await kick_tracking_refresh(broker, settings, seller_id)
    return len(sellers)


async def _burst_later(
    delay: float,
    payments: SimulatedPayments,
    burst: list[DemoPayment],
    webhooks: WebhookResult,
    progress: Progress,
) -> list[str]:
    await asyncio.sleep(delay)
    progress(f"webhook burst: {len(burst)} payments, each event delivered twice")
    started = time.monotonic()
    paid = await webhook_burst(payments, burst, webhooks)
    webhooks.burst_seconds = time.monotonic() - started
    progress(
        f"webhook burst done in {webhooks.burst_seconds:.1f} s: "
        f"{webhooks.burst_deliveries} deliveries of {webhooks.burst_events} events, "
        f"{webhooks.burst_refused} refused"
    )
    return paid


async def webhook_burst(
    payments: SimulatedPayments, burst: list[DemoPayment], webhooks: WebhookResult
) -> list[str]:
    """Complete ``burst`` at the gateway's sandbox with delivery held, then deliver the
    events twice each, shuffled, from :data:`BURST_SENDERS` concurrent senders (gateways
    deliver at least once and in no order: MONEY-2, "duplicate payment events").

    Returns the references the sandbox confirmed as paid; the others are counted in
    ``webhooks.payment_calls_failed``.
    """
    confirmed: list[str] = []
    await payments.hold_webhooks()
    try:
        for start in range(0, len(burst), BURST_ROUND):
            chunk = burst[start : start + BURST_ROUND]
            paid = await asyncio.gather(
                *(payments.pay(payment) for payment in chunk), return_exceptions=True
            )
            for payment, outcome in zip(chunk, paid, strict=True):
                if isinstance(outcome, BaseException):
                    webhooks.payment_calls_failed += 1
                else:
                    confirmed.append(payment.gateway_reference)
            ids = await payments.held_webhooks()
            webhooks.burst_events += len(ids)
            groups = [ids[i::BURST_SENDERS] for i in range(BURST_SENDERS)]
            answers = await asyncio.gather(
                *(
                    payments.deliver_webhooks(group, copies=2, shuffle=True)
                    for group in groups
                    if group
                )
            )
            for statuses in answers:
                webhooks.burst_deliveries += len(statuses)
                webhooks.burst_refused += sum(1 for status in statuses if status != 200)
    finally:
        # Also sends the events the load's own payments raised while delivery was held,
        # after the last round fetched its events: nothing else would send them.
        await payments.release_webhooks()
    return confirmed


async def _drain(
    owner_dsn: str,
    paid: list[str],
    paid_event_type: str,
    webhooks: WebhookResult,
    timeout: float,
) -> None:
    """Wait until every paid payment (the gateway's payment id, through the order it
    belongs to) has a CAPTURED fact and the inbox is processed; ``paid_event_type`` is
    the gateway's notification of a completed payment."""
    webhooks.paid = len(set(paid))
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
        while True:
            row = await (
                await conn.execute(
                    """
                    SELECT (SELECT count(DISTINCT op.payment_id)
                              FROM order_payments AS op
                              JOIN payment_events AS pe
                                ON pe.seller_id = op.seller_id AND pe.order_id = op.order_id
                             WHERE op.gateway = %(gateway)s AND op.payment_id = ANY(%(paid)s)
                               AND pe.event_type = 'CAPTURED'),
                           (SELECT count(*) FROM webhook_inbox WHERE status <> 'PROCESSED'),
                           (SELECT count(*) FROM unnest(%(paid)s::text[]) AS ref
                             WHERE EXISTS (
                                SELECT 1 FROM webhook_inbox AS i
                                 WHERE i.gateway = %(gateway)s
                                   AND i.event_type = %(paid_event_type)s
                                   AND convert_from(i.body, 'UTF8') LIKE '%%' || ref || '%%'))
                    """,
                    {
                        "gateway": webhooks.gateway,
                        "paid": list(set(paid)),
                        "paid_event_type": paid_event_type,
                    },
                )
            ).fetchone()
            assert row is not None
            webhooks.captured_in_ledger, webhooks.inbox_unprocessed = int(row[0]), int(row[1])
            webhooks.stored_in_inbox = int(row[2])
            if webhooks.unprocessed == 0 and webhooks.inbox_unprocessed == 0:
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(1.0)


async def _tracker_state(
    owner_dsn: str,
    probes: Probes,
    tracker: TrackerResult,
) -> None:
    async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
        row = await (
            await conn.execute("SELECT count(*), count(last_checked_at) FROM tracking_records")
        ).fetchone()
    assert row is not None
    tracker.parcels, tracker.parcels_registered = int(row[0]), int(row[1])
    # sampled every second: the breaker half-opens after its reset time, so the state at
    # the end alone would not show that it opened
    states = [s.breaker_state for s in probes.samples if s.breaker_state]
    opened_at = next((s.at for s in probes.samples if s.breaker_state == "opened"), None)
    tracker.breaker_state = states[-1] if states else ""
    tracker.breaker_opened_after = opened_at
    tracker.tracking_queue_max = max(
        (s.queue_depth.get(Queue.TRACKING.value, 0) for s in probes.samples), default=0
    )
