"""Scenario data (the audit's numbers), scaling, the verdict table's layout, and the CLI's
refusals that need no running deployment."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pixecom_core.settings import Settings
from reference_app.cli import app
from reference_app.simulate.deployment import missing_plugins
from reference_app.simulate.probes import Probes, runqueue_wait_seconds
from reference_app.simulate.report import api_total, format_table, generator_starved
from reference_app.simulate.runner import RunOptions, api_processes
from reference_app.simulate.scenarios import SCENARIOS, Metric, scenario


def test_scenarios_carry_the_audit_numbers() -> None:
    a, b, c = SCENARIOS["A"], SCENARIOS["B"], SCENARIOS["C"]
    assert (a.sellers, a.campaigns, a.orders_per_day) == (100, 500, 10_000)
    assert (b.sellers, b.campaigns, b.orders_per_day) == (1_000, 10_000, 100_000)
    # C: "5× normal traffic" on scenario A's sellers, a webhook burst and a slow 17TRACK
    assert c.sellers == a.sellers and c.api_rate == 5 * a.api_rate
    assert c.orders_per_day == 5 * a.orders_per_day
    assert c.webhook_burst > 0 and c.slow_tracker and c.parcels_per_seller > 0
    for each in SCENARIOS.values():
        assert each.ad_network_latency_seconds == 1.5  # the audit's "realistic" latency
        for metric in (Metric.CYCLE, Metric.API, Metric.DB_CONNECTIONS, Metric.ROWS):
            assert each.audit[metric]
        assert each.audit_verdict


@given(
    name=st.sampled_from(sorted(SCENARIOS)),
    fraction=st.floats(min_value=0.0001, max_value=1.0),
)
def test_scaling_keeps_a_runnable_scenario(name: str, fraction: float) -> None:
    full = SCENARIOS[name]
    scaled = full.scaled(fraction)
    assert 1 <= scaled.sellers <= full.sellers
    assert 1 <= scaled.orders_per_day <= full.orders_per_day
    assert 1.0 <= scaled.api_rate <= full.api_rate
    assert scaled.campaigns_per_seller == full.campaigns_per_seller
    assert (scaled.webhook_burst > 0) == (full.webhook_burst > 0)
    assert scaled.audit == full.audit


def test_scale_one_is_the_scenario_itself_and_bad_scales_are_refused() -> None:
    assert scenario("a") is SCENARIOS["A"]
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError):
            SCENARIOS["A"].scaled(bad)
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("D")


def test_the_table_wraps_cells_and_keeps_every_verdict() -> None:
    rows = [
        ("sync cycle", "71 s for 1000/1000 accounts " * 4, "3,000 s " * 8, "PASS"),
        ("API latency / errors", "p50 3 ms", "pool exhaustion", "FAIL"),
    ]
    table = format_table(rows)
    lines = table.splitlines()
    assert "measured here" in lines[0] and "audit (previous version)" in lines[0]
    assert max(len(line) for line in lines) <= 22 + 58 + 40 + 7 + 12
    assert sum("| PASS" in line for line in lines) == 1
    assert sum("| FAIL" in line for line in lines) == 1
    assert table.count("accounts") == 4  # wrapped, nothing cut off


def test_without_the_plugins_the_simulation_says_what_to_install() -> None:
    # Core tests load no plugin (PIXECOM_LOAD_PLUGINS=""), as a machine without them.
    assert missing_plugins() == [
        "an ad network's sandbox that offers simulation_accounts",
        "a payment gateway's sandbox that offers simulation_payments",
        "a tracker's sandbox",
    ]
    result = CliRunner().invoke(app, ["simulate", "A", "--duration", "5"])
    assert result.exit_code == 2
    assert "a tracker's sandbox" in result.output and "pip install" in result.output


def test_an_unknown_scenario_is_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(app, ["simulate", "D"])
    assert result.exit_code == 2
    assert "unknown scenario" in result.output


def test_a_generator_starved_of_cpu_is_named_in_the_api_row() -> None:
    assert generator_starved(ran_seconds=25.0, waited_seconds=60.0) == (
        "the load generator waited 60 s for a core and ran 25 s: it set this pace, not the API"
    )
    assert generator_starved(ran_seconds=25.0, waited_seconds=10.0) is None
    assert generator_starved(ran_seconds=0.2, waited_seconds=0.5) is None  # too little to say


def test_the_wait_for_a_core_is_read_from_the_kernel() -> None:
    """This process's own run-queue wait: a number that never goes down."""
    first = runqueue_wait_seconds(os.getpid())
    if first is None:  # not Linux, or no schedstats: the probe reports nothing
        assert not Path("/proc/self/schedstat").exists()
        return
    sum(range(2_000_000))  # run a little
    second = runqueue_wait_seconds(os.getpid())
    assert second is not None and 0.0 <= first <= second
    assert runqueue_wait_seconds(2**22 + 12345) is None  # no such process


def test_the_deploy_kits_two_api_processes_run_behind_nginx_only(tmp_path: Path) -> None:
    c, a = scenario("C", 0.01), scenario("A", 0.01)
    assert api_processes(c, RunOptions(output_dir=tmp_path)) == 2  # C is behind nginx
    assert api_processes(a, RunOptions(output_dir=tmp_path)) == 1
    assert api_processes(a, RunOptions(output_dir=tmp_path, edge=True)) == 2
    assert api_processes(c, RunOptions(output_dir=tmp_path, api_processes=1)) == 1


def test_api_figures_add_up_over_its_processes_and_nothing_else() -> None:
    figures = {"api": 2.0, "api-2": 1.5, "worker-payments": 7.0, "apiary": 9.0}
    assert api_total(figures) == 3.5
    assert api_total({}) == 0


async def test_probes_stop_even_if_a_sample_swallows_the_cancellation() -> None:
    """A scenario B run hung after its window: the probe kept sampling after stop()."""
    probes = Probes("postgresql://unused", cast(Settings, object()), {})  # never sampled
    samples = 0

    async def stubborn() -> None:
        nonlocal samples
        while not probes._stopping:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass  # what a client library did inside a sample
            samples += 1

    probes._task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(probes.stop(), 5)
    assert samples > 0 and probes._task is None
