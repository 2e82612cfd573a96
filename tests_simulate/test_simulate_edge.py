"""`pixecom simulate` behind the deploy kit's nginx, and the load generator's own CPU
(issue 18 item 2): the load reaches nginx over HTTPS, storefront reads are answered from
its micro-cache, and the report puts the generator's CPU beside the API's, warning when the
generator used more than its limit (driven here with a tiny limit, not by loading the
machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_app.simulate.load import (
    CHECKOUT,
    DASHBOARD,
    STOREFRONT,
    Edge,
    LoadResult,
    Outcome,
    edge_client_addresses,
    split_addresses,
)
from reference_app.simulate.report import generator_overloaded
from reference_app.simulate.runner import RunOptions, uses_edge
from reference_app.simulate.scenarios import scenario
from tests_simulate.test_simulate_smoke import check_outputs, simulate


def test_a_run_behind_nginx_is_micro_cached_and_warns_of_a_busy_generator(
    tmp_path: Path,
) -> None:
    completed, figures = simulate(
        tmp_path,
        "A",
        "--scale",
        "0.01",
        "--duration",
        "10",
        "--edge",
        "--generator-core-limit",
        "0.0001",
    )
    check_outputs(tmp_path, "A", completed, figures)

    edge = figures["edge"]
    assert edge["nginx"] is True
    statuses = edge["storefront_cache_status"]
    storefront = figures["api"][STOREFRONT]
    # Every storefront answer came through the micro-cache; the first view of each page is
    # a miss, the views after it hits.
    assert sum(statuses.values()) == storefront["ok"] == storefront["requests"] > 0
    assert statuses.get("HIT", 0) >= 1, statuses
    # nginx's own access log (the deploy kit's format) saw those hits.
    log = Path(edge["access_log"]).read_text()
    hits = [
        line
        for line in log.splitlines()
        if "GET /public/sellpages/" in line and "cache=HIT" in line
    ]
    # The warm-up's views went through nginx too, reported apart from the window's.
    warmup = figures["warmup"]
    assert warmup["seconds"] == 5 and warmup["requests"] > 0
    assert len(hits) == statuses["HIT"] + warmup["storefront_cache_status"].get("HIT", 0)

    generator = figures["load_generator"]
    assert generator["cpu_seconds"] > 0 and generator["cores_used"] > 0.0001
    assert generator["core_limit"] == 0.0001
    answered = sum(figures["api"][kind]["requests"] for kind in ("storefront", "dashboard"))
    assert generator["cpu_ms_per_answer"] > 0 and answered > 0
    assert generator["warning"].startswith("WARNING: the load generator used")
    # Above the table (whole), and in the generator's row beside the API's CPU (wrapped).
    assert f"{generator['warning']}\npixecom simulate A:" in completed.stdout
    row = next(r for r in figures["verdict"] if r["metric"] == "load generator")
    assert "cores of its own CPU" in row["measured"] and "API" in row["measured"]
    assert "WARNING" in row["measured"]


def test_the_generator_warning_is_given_only_past_the_limit() -> None:
    assert generator_overloaded(0.99, 1.0) is None
    assert generator_overloaded(1.0, 1.0) is None
    warning = generator_overloaded(1.37, 1.0)
    assert warning is not None and "1.37 cores" in warning and "limit 1" in warning


def test_the_generators_cores_are_its_cpu_over_the_window() -> None:
    result = LoadResult(elapsed=20.0, cpu_seconds=13.0)
    assert result.cores_used == 0.65
    assert LoadResult().cores_used == 0.0


def test_cache_statuses_count_storefront_answers_that_came_through_nginx() -> None:
    result = LoadResult(
        outcomes=[
            Outcome(STOREFRONT, 0.1, 0.01, 200, cache="MISS"),
            Outcome(STOREFRONT, 0.2, 0.001, 200, cache="HIT"),
            Outcome(STOREFRONT, 0.3, 0.001, 200, cache="HIT"),
            Outcome(STOREFRONT, 0.4, 0.002, 429),
            Outcome("dashboard", 0.5, 0.02, 200),
        ]
    )
    assert result.cache_statuses() == {"MISS": 1, "HIT": 2}
    assert result.cache_statuses("dashboard") == {}


def test_scenario_c_runs_behind_nginx_unless_told_otherwise(tmp_path: Path) -> None:
    options = RunOptions(output_dir=tmp_path)
    assert uses_edge(scenario("C", 0.01), options)
    assert not uses_edge(scenario("A", 0.01), options)
    assert not uses_edge(scenario("B", 0.01), options)
    assert uses_edge(scenario("B", 0.01), RunOptions(output_dir=tmp_path, edge=True))
    assert not uses_edge(scenario("C", 0.01), RunOptions(output_dir=tmp_path, edge=False))


def test_each_request_class_connects_from_addresses_of_its_own() -> None:
    addresses = edge_client_addresses()
    split = split_addresses(addresses)
    assert {kind: len(mine) for kind, mine in split.items()} == {
        STOREFRONT: 64,
        DASHBOARD: 48,
        CHECKOUT: 16,
    }
    assert sorted(a for mine in split.values() for a in mine) == sorted(addresses)
    assert len(set(addresses)) == 128 and "127.0.0.1" not in addresses
    assert [len(mine) for mine in split_addresses(["a", "b", "c"]).values()] == [1, 1, 1]
    with pytest.raises(ValueError, match="one per request class"):
        Edge(url="https://127.0.0.1:1", certificate=Path("cert.pem"), source_addresses=("a",))
