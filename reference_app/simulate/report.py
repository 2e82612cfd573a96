"""The verdict table beside the audit's figures, the JSON record and the PNG chart.

The table has one row per metric the audit sized (docs/scaling.md): our measurement, the
audit's figure for the previous version, and a verdict. Verdicts are mechanical:

- sync cycle: PASS when every account synced and the cycle fits the 5-minute window;
- API: PASS when no 5xx other than deliberate sheds was answered and the error rate
  (those, plus requests unanswered within 10 s) is under 1 %; sheds and p50/p99 are
  shown, not judged (they depend on the machine);
- webhooks: PASS when every paid payment is in the inbox or the ledger (zero lost) and
  no delivery was refused; how many were still unprocessed after the drain is shown;
- 17TRACK: PASS when the tracker's breaker opened (calls stopped) while the other queues
  kept draining;
- the rest are measurements (INFO).

The load generator's own CPU is reported next to the API's, and a line starting with
``WARNING`` precedes the table when the generator used more than
``RunOptions.generator_core_limit`` cores: on a shared machine such a generator took
cores the API needed, so a starved API is not mistaken for a slow one (issue 18 item 2).
"""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402

from pixecom_core.settings import Settings  # noqa: E402
from reference_app.simulate.load import (  # noqa: E402
    DASHBOARD,
    LOGIN,
    STOREFRONT,
    ClassStats,
    percentiles,
)
from reference_app.simulate.probes import LOAD_GENERATOR  # noqa: E402
from reference_app.simulate.runner import SimulationResult  # noqa: E402
from reference_app.simulate.scenarios import SYNC_WINDOW_SECONDS, Metric  # noqa: E402

#: An API error rate at or above this fails the API row.
MAX_ERROR_RATE = 0.01
MIB = 1024 * 1024


def generator_starved(ran_seconds: float, waited_seconds: float) -> str | None:
    """A warning when the load generator waited for a core longer than it ran: it then
    sent less, and later, than the scenario asks, and the API's figures measure the
    generator (``python -m bench.api_throughput`` measures the API alone)."""
    if waited_seconds <= ran_seconds or waited_seconds < 1.0:
        return None
    return (
        f"the load generator waited {waited_seconds:.0f} s for a core and ran "
        f"{ran_seconds:.0f} s: it set this pace, not the API"
    )


def generator_overloaded(cores_used: float, core_limit: float) -> str | None:
    """A warning when the load generator used more than ``core_limit`` cores of its own:
    it competed with the deployment for the machine, and a single-threaded generator near
    a whole core also sends late. None when it stayed under the limit."""
    if cores_used <= core_limit:
        return None
    return (
        f"WARNING: the load generator used {cores_used:.2f} cores of its own CPU (limit "
        f"{core_limit:g}): it competed with the API for the machine's cores, so the API's "
        "latency and rate are a bound from below, not the API's own"
    )


def api_total(figures: dict[str, float]) -> float:
    """The sum of a per-process figure over the API's processes (``api``, ``api-2``, …:
    behind nginx the deployment runs the deploy kit's two upstream processes)."""
    return sum(value for name, value in figures.items() if name == "api" or name.startswith("api-"))


def _api_processes(figures: dict[str, float]) -> str:
    count = sum(1 for name in figures if name == "api" or name.startswith("api-"))
    return f"API ({count} processes)" if count > 1 else "API"


def _waits(waits: dict[str, float]) -> str:
    if not waits:
        return ""
    return (
        f"waited for a core: load generator {waits.get(LOAD_GENERATOR, 0):.0f} s, "
        f"{_api_processes(waits)} {api_total(waits):.0f} s; "
    )


def _warmup(warmup: dict[str, Any] | None) -> str:
    """The warm-up's figures, for the load generator's row."""
    if warmup is None:
        return "; no warm-up"
    return (
        f"; before the window, {warmup['seconds']:g} s of warm-up (not in these figures): "
        f"{warmup['requests']} requests, {warmup['errors']} errors, {warmup['shed']} shed, "
        f"p99 {_ms(warmup['p99_ms'])}"
    )


def _priorities(priorities: dict[str, int]) -> str:
    """Each process's priority (nice value), alike processes grouped, for the CPU row."""
    if not priorities:
        return ""
    groups: dict[str, set[int]] = {}
    for name, nice in priorities.items():
        group = "workers" if name.startswith("worker-") else name.split("-", 1)[0]
        groups.setdefault(group, set()).add(nice)
    return (
        "nice: "
        + ", ".join(
            f"{group} {'/'.join(str(n) for n in sorted(values))}"
            for group, values in groups.items()
        )
        + "; "
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _mib(value: float) -> str:
    return f"{value / MIB:.0f} MiB"


def metrics(result: SimulationResult) -> dict[str, Any]:
    """Every measured figure, as plain JSON-ready values."""
    by_class = result.load.by_class()
    samples = result.probes.samples
    rss_max: dict[str, int] = {}
    for sample in samples:
        for name, value in sample.rss_bytes.items():
            rss_max[name] = max(rss_max.get(name, 0), value)
    webhooks = result.webhooks
    cycle = result.cycle
    load = result.load
    answered = sum(1 for o in load.outcomes if o.kind != LOGIN and o.status)
    return {
        "scenario": result.scenario.name,
        "title": result.scenario.title,
        "scale": {
            "sellers": result.scenario.sellers,
            "campaigns_per_seller": result.scenario.campaigns_per_seller,
            "orders_per_day": result.scenario.orders_per_day,
            "history_days": result.scenario.history_days,
        },
        "time_compression": (
            f"{result.scenario.history_days} days of orders generated; live traffic at the "
            f"peak rate for {result.options.duration:g} s"
        ),
        "rates_per_second": result.rates,
        "shed_max_in_flight": (
            result.options.shed_max_in_flight
            if result.options.shed_max_in_flight is not None
            else Settings.model_fields["shed_max_in_flight"].default
        ),
        "logged_in_sellers": result.sessions,
        "data_generation_seconds": round(result.generated.seconds, 1),
        "cycle": {
            "accounts": cycle.accounts,
            "synced": cycle.synced,
            "failed": cycle.failed,
            "dead_letters": cycle.dead_letters,
            "seconds": cycle.seconds,
            "window_seconds": SYNC_WINDOW_SECONDS,
            "fits_window": cycle.fits_window,
            "stats_concurrency_per_worker": result.options.stats_concurrency,
        },
        "api": {
            kind: {**asdict(stats), "error_rate": stats.error_rate, "shed_rate": stats.shed_rate}
            for kind, stats in by_class.items()
        },
        "api_achieved_rate": (
            by_class["all"].requests / result.load.elapsed if result.load.elapsed else 0.0
        ),
        # Per second of the window: the plan's arrivals (Poisson around the scenario's
        # rates), and the answers that were neither a shed nor a failure.
        "api_offered_rate": load.planned / result.options.duration,
        "api_answered_rate": (
            sum(1 for o in load.outcomes if o.kind != LOGIN and o.status and not o.shed)
            / result.options.duration
        ),
        "load_generator": {
            "cpu_seconds": round(load.cpu_seconds, 2),
            "seconds": round(load.elapsed, 2),
            "cores_used": round(load.cores_used, 3),
            # What one answer cost the generator (its arrivals that timed out unsent
            # included): how many cores the scenario's rate would need of it.
            "cpu_ms_per_answer": round(load.cpu_seconds * 1000 / answered, 2) if answered else None,
            "core_limit": result.options.generator_core_limit,
            "warning": generator_overloaded(load.cores_used, result.options.generator_core_limit),
            # TLS connections closed after their request timed out, on which uvloop still
            # had bytes to process (load.TlsCloseRaces): counted, not logged.
            "tls_close_races": load.tls_close_races,
        },
        "edge": {
            "nginx": result.edge_access_log is not None,
            "access_log": str(result.edge_access_log) if result.edge_access_log else None,
            "storefront_cache_status": load.cache_statuses(STOREFRONT),
        },
        "db_connections": {
            "open_max": max((s.connections_open for s in samples), default=0),
            "in_use_max": max((s.connections_in_use for s in samples), default=0),
        },
        "queue_depth": {
            "max_total": max((s.total_queue_depth for s in samples), default=0),
            "final_total": samples[-1].total_queue_depth if samples else 0,
        },
        "redis_memory_bytes": {
            "max": max((s.redis_used_bytes for s in samples), default=0),
        },
        "rss_bytes_max": rss_max,
        "cpu_seconds_in_window": {
            name: round(samples[-1].cpu_seconds.get(name, 0.0) - value, 1)
            for name, value in (samples[0].cpu_seconds.items() if samples else [])
        },
        "cpu_wait_seconds_in_window": {
            name: round(samples[-1].cpu_wait_seconds.get(name, 0.0) - value, 1)
            for name, value in (samples[0].cpu_wait_seconds.items() if samples else [])
        },
        "priorities": result.priorities,
        # The load before the window (RunOptions.warmup): apart, never in "api".
        "warmup": (
            {
                "seconds": result.options.warmup,
                **{
                    key: value
                    for key, value in asdict(result.warmup.by_class()["all"]).items()
                    if key in ("requests", "ok", "errors", "shed", "p50_ms", "p99_ms")
                },
                "storefront_cache_status": result.warmup.cache_statuses(STOREFRONT),
            }
            if result.warmup is not None
            else None
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
        },
        "rows": result.rows,
        "webhooks": {
            **asdict(webhooks),
            "lost": webhooks.lost,
            "unprocessed": webhooks.unprocessed,
        },
        "tracker": asdict(result.tracker) if result.tracker is not None else None,
        "processes_exited": result.exited,
        "elapsed_seconds": round(result.elapsed, 1),
        "samples": len(samples),
    }


def verdict_rows(
    result: SimulationResult, figures: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(metric, measured, audit, verdict) rows of the verdict table."""
    audit = result.scenario.audit
    cycle = result.cycle
    everything: ClassStats = result.load.by_class()["all"]
    rows: list[tuple[str, str, str, str]] = []
    cycle_text = (
        f"{cycle.seconds:.0f} s for {cycle.synced}/{cycle.accounts} accounts "
        f"({result.scenario.campaigns} campaigns, ad network latency "
        f"{result.scenario.ad_network_latency_seconds:g} s)"
        if cycle.seconds is not None
        else f"unfinished: {cycle.synced}/{cycle.accounts} accounts synced"
    )
    rows.append(
        (
            Metric.CYCLE.value,
            cycle_text,
            audit.get(Metric.CYCLE, "-"),
            "PASS" if cycle.fits_window else "FAIL",
        )
    )
    api = figures["api"]
    api_text = (
        f"{figures['api_achieved_rate']:.0f} req/s sent; p50 {_ms(everything.p50_ms)}, "
        f"p99 {_ms(everything.p99_ms)}; errors {everything.error_rate:.2%} "
        f"({everything.server_errors} 5xx, {everything.errors - everything.server_errors} "
        f"timeouts), "
        f"shed {everything.shed_rate:.2%}, 429 {everything.throttled}; storefront p99 "
        f"{_ms(api.get(STOREFRONT, {}).get('p99_ms'))}, dashboard p99 "
        f"{_ms(api.get(DASHBOARD, {}).get('p99_ms'))}"
    )
    starved = generator_starved(
        figures["cpu_seconds_in_window"].get(LOAD_GENERATOR, 0.0),
        figures["cpu_wait_seconds_in_window"].get(LOAD_GENERATOR, 0.0),
    )
    if starved:
        api_text += f"; {starved}"
    rows.append(
        (
            Metric.API.value,
            api_text,
            audit.get(Metric.API, "-"),
            "PASS"
            if everything.requests
            and everything.server_errors == 0
            and everything.error_rate < MAX_ERROR_RATE
            else "FAIL",
        )
    )
    connections = figures["db_connections"]
    rows.append(
        (
            Metric.DB_CONNECTIONS.value,
            f"max {connections['in_use_max']} in use of {connections['open_max']} open "
            "(bounded pools per process)",
            audit.get(Metric.DB_CONNECTIONS, "-"),
            "INFO",
        )
    )
    queue = figures["queue_depth"]
    rows.append(
        (
            Metric.QUEUE_DEPTH.value,
            f"max {queue['max_total']}, at the end {queue['final_total']}",
            audit.get(Metric.QUEUE_DEPTH, "-"),
            "PASS" if queue["final_total"] == 0 else "INFO",
        )
    )
    rows.append(
        (
            Metric.REDIS_MEMORY.value,
            f"max {_mib(figures['redis_memory_bytes']['max'])}",
            audit.get(Metric.REDIS_MEMORY, "-"),
            "INFO",
        )
    )
    rss = figures["rss_bytes_max"]
    api_rss = api_total(rss)
    worker_rss = sum(v for k, v in rss.items() if k.startswith("worker-"))
    rows.append(
        (
            Metric.RSS.value,
            f"{_api_processes(rss)} {_mib(api_rss)}; "
            f"{sum(k.startswith('worker-') for k in rss)} workers "
            f"{_mib(worker_rss)} together; scheduler {_mib(rss.get('scheduler', 0))}",
            audit.get(Metric.RSS, "-"),
            "INFO",
        )
    )
    cpu = figures["cpu_seconds_in_window"]
    generator = figures["load_generator"]
    samples = result.probes.samples
    api_cores = f"{api_total(cpu) / (samples[-1].at - samples[0].at or 1.0):.2f}" if cpu else "-"
    cache = figures["edge"]["storefront_cache_status"]
    cached = (
        "; behind nginx (deploy kit config): storefront answers by cache status "
        + ", ".join(f"{status} {count}" for status, count in sorted(cache.items()))
        if figures["edge"]["nginx"]
        else "; straight to the API (no nginx)"
    )
    rows.append(
        (
            "load generator",
            f"{generator['cores_used']:.2f} cores of its own CPU ({generator['cpu_seconds']:.1f} s "
            f"in {generator['seconds']:.0f} s; limit {generator['core_limit']:g}; "
            f"{generator['cpu_ms_per_answer'] or 0:.1f} ms per answer), API "
            f"{api_cores} cores; offered {figures['api_offered_rate']:.0f} req/s, answered "
            f"{figures['api_answered_rate']:.0f} req/s{cached}"
            + _warmup(figures["warmup"])
            + (f"; {generator['warning']}" if generator["warning"] else ""),
            "-",
            "INFO",
        )
    )
    if cpu:
        window = result.probes.samples[-1].at - result.probes.samples[0].at or 1.0
        machine = figures["machine"]
        rows.append(
            (
                "CPU (cores used)",
                f"{_api_processes(cpu)} {api_total(cpu) / window:.2f}, workers "
                f"{sum(v for k, v in cpu.items() if k.startswith('worker-')) / window:.2f}, "
                f"PostgreSQL {cpu.get('postgresql', 0) / window:.2f}, "
                f"sandboxes {cpu.get('sandboxes', 0) / window:.2f}, load generator "
                f"{cpu.get(LOAD_GENERATOR, 0) / window:.2f}; {machine['cpus']} cores, "
                f"{_waits(figures['cpu_wait_seconds_in_window'])}"
                f"{_priorities(figures['priorities'])}"
                f"load average {machine['load_average_at_end'][0]:.1f} at the end "
                "(other work on the machine included)",
                "CPU 100% sustained; worker and API fight for cycles (scenario B)",
                "INFO",
            )
        )
    counted = result.rows
    rows.append(
        (
            Metric.ROWS.value,
            ", ".join(f"{table} {count:,}" for table, count in counted.items() if count),
            audit.get(Metric.ROWS, "-"),
            "INFO",
        )
    )
    webhooks = result.webhooks
    if result.scenario.webhook_burst or webhooks.paid:
        burst = (
            f" ({webhooks.burst_events} burst events delivered {webhooks.burst_deliveries} "
            f"times, shuffled, in {webhooks.burst_seconds:.1f} s; {webhooks.burst_refused} "
            "refused)"
            if webhooks.burst_events
            else ""
        )
        rows.append(
            (
                Metric.WEBHOOKS.value,
                f"{webhooks.paid} payments paid at the {webhooks.gateway} sandbox{burst}; "
                f"{webhooks.stored_in_inbox} stored in the inbox, "
                f"{webhooks.captured_in_ledger} captured in the ledger after the drain, "
                f"{webhooks.lost} lost; {webhooks.inbox_unprocessed} deliveries not yet "
                "processed"
                + (
                    f" ({webhooks.payment_calls_failed} pay calls unconfirmed by the sandbox, "
                    "not counted)"
                    if webhooks.payment_calls_failed
                    else ""
                ),
                audit.get(Metric.WEBHOOKS, "signed webhooks, stored once, processed async"),
                # a stored delivery is safe (the worker and its sweep process it); what
                # must never happen is a payment with no trace (MONEY-3)
                "PASS" if webhooks.lost == 0 and webhooks.burst_refused == 0 else "FAIL",
            )
        )
    tracker = result.tracker
    if tracker is not None:
        opened = tracker.breaker_opened_after is not None
        rows.append(
            (
                Metric.TRACKER.value,
                f"{tracker.refreshes_queued} refreshes queued against a tracker slower than "
                f"its timeout; {tracker.parcels_registered}/{tracker.parcels} parcels "
                f"known to the tracker; breaker "
                + (
                    f"opened {tracker.breaker_opened_after:.0f} s into the window"
                    if tracker.breaker_opened_after is not None
                    else "never opened"
                )
                + f" ({tracker.breaker_state or 'unknown'} at the end); tracking queue "
                f"max {tracker.tracking_queue_max}; stats cycle "
                f"{'unaffected' if result.cycle.fits_window else 'late'}",
                audit.get(Metric.TRACKER, "-"),
                "PASS" if opened and result.cycle.synced == result.cycle.accounts else "FAIL",
            )
        )
    return rows


def format_table(
    rows: list[tuple[str, str, str, str]], widths: tuple[int, int, int] = (22, 58, 40)
) -> str:
    """The rows as a plain-text table with wrapped cells."""
    header = ("metric", "measured here", "audit (previous version)", "verdict")
    lines = []
    separator = "+".join("-" * (w + 2) for w in (*widths, 7))
    for index, row in enumerate([header, *rows]):
        cells = [
            textwrap.wrap(text, width) or [""] for text, width in zip(row[:3], widths, strict=True)
        ]
        cells.append([row[3]])
        height = max(len(c) for c in cells)
        for line in range(height):
            parts = [
                (cell[line] if line < len(cell) else "").ljust(width)
                for cell, width in zip(cells, (*widths, 7), strict=True)
            ]
            lines.append(" " + " | ".join(parts))
        if index == 0:
            lines.append(separator)
    return "\n".join(lines)


def render(result: SimulationResult, output_dir: Path) -> tuple[str, Path, Path]:
    """Build the verdict table; write ``scenario-<X>.json`` and ``scenario-<X>.png``
    into ``output_dir``; return (table text, JSON path, PNG path)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = metrics(result)
    rows = verdict_rows(result, figures)
    figures["verdict"] = [
        {"metric": m, "measured": v, "audit": a, "verdict": d} for m, v, a, d in rows
    ]
    figures["audit_verdict"] = result.scenario.audit_verdict
    name = result.scenario.name
    json_path = output_dir / f"scenario-{name}.json"
    json_path.write_text(json.dumps(figures, indent=2, default=str))
    png_path = output_dir / f"scenario-{name}.png"
    chart(result, png_path)
    warning = figures["load_generator"]["warning"]
    title = (
        (f"{warning}\n" if warning else "") + f"pixecom simulate {name}: {result.scenario.title}\n"
        f"{figures['time_compression']}; offered per second: "
        + ", ".join(f"{kind} {rate:.1f}" for kind, rate in result.rates.items())
        + f"; shed level {figures['shed_max_in_flight']} in flight per API process\n"
        f"audit verdict for the previous version: {result.scenario.audit_verdict}"
    )
    return f"{title}\n\n{format_table(rows)}", json_path, png_path


def chart(result: SimulationResult, path: Path) -> None:
    """Four panels over the window: API latency p50/p99 and errors per second, accounts
    synced, DB connections in use, queue depth and Redis memory."""
    outcomes = [o for o in result.load.outcomes if o.arrival > 0]
    seconds = int(max((o.arrival for o in outcomes), default=0)) + 1
    p50: list[float] = []
    p99: list[float] = []
    errors: list[int] = []

    buckets: list[list[float]] = [[] for _ in range(seconds)]
    error_buckets = [0] * seconds
    for outcome in outcomes:
        second = int(outcome.arrival)
        if outcome.error:
            error_buckets[second] += 1
        elif outcome.status and not outcome.shed:
            buckets[second].append(outcome.latency * 1000)
    for bucket, count in zip(buckets, error_buckets, strict=True):
        if bucket:
            low, high = percentiles(bucket, (50, 99))
        else:
            low, high = float("nan"), float("nan")
        p50.append(low)
        p99.append(high)
        errors.append(count)
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    figure.suptitle(f"pixecom simulate {result.scenario.name}: {result.scenario.title}")
    ax = axes[0][0]
    ax.plot(range(seconds), p50, label="p50")
    ax.plot(range(seconds), p99, label="p99")
    ax.set_title("API latency (ms) by arrival second")
    ax.set_yscale("log")
    twin = ax.twinx()
    twin.bar(range(seconds), errors, color="red", alpha=0.3, label="errors")
    ax.legend(loc="upper left")
    ax = axes[0][1]
    if result.cycle.progress:
        ax.plot([p[0] for p in result.cycle.progress], [p[1] for p in result.cycle.progress])
    ax.axvline(SYNC_WINDOW_SECONDS, color="red", linestyle="--", label="5-minute window")
    ax.set_title(f"accounts synced (of {result.cycle.accounts})")
    ax.set_xlabel("seconds since the cycle was queued")
    ax.legend()
    samples = result.probes.samples
    at = [s.at for s in samples]
    ax = axes[1][0]
    ax.plot(at, [s.connections_in_use for s in samples], label="in use")
    ax.plot(at, [s.connections_open for s in samples], label="open")
    ax.set_title("PostgreSQL connections")
    ax.set_xlabel("seconds")
    ax.legend()
    ax = axes[1][1]
    ax.plot(at, [s.total_queue_depth for s in samples], label="queue depth")
    ax.set_title("queue depth (messages) and Redis memory (MiB)")
    ax.set_xlabel("seconds")
    twin = ax.twinx()
    twin.plot(at, [s.redis_used_bytes / MIB for s in samples], color="green", label="Redis MiB")
    ax.legend(loc="upper left")
    twin.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)
    plt.close(figure)
