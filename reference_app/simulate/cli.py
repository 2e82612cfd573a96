"""``pixecom simulate {A,B,C}``: the audit's scale scenarios, reproduced on this machine."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer

from reference_app.simulate.scenarios import SCENARIOS

#: Where results go unless ``--output-dir`` says otherwise (git-ignored with ``.pixecom/``).
DEFAULT_OUTPUT_DIR = Path(".pixecom") / "simulate"


def simulate_command(
    scenario: Annotated[str, typer.Argument(help=f"The audit's scenario: {', '.join(SCENARIOS)}.")],
    duration: Annotated[
        float, typer.Option(min=5, help="Seconds of live traffic at the scenario's peak rate.")
    ] = 90.0,
    scale: Annotated[
        float,
        typer.Option(min=0.0001, max=1.0, help="Fraction of the scenario's volumes (tests)."),
    ] = 1.0,
    output_dir: Annotated[
        Path, typer.Option(help="Where the JSON, the PNG chart and process logs go.")
    ] = DEFAULT_OUTPUT_DIR,
    api_rate: Annotated[
        float | None,
        typer.Option(
            min=1, help="Override the scenario's peak API rate (requests/s, besides checkouts)."
        ),
    ] = None,
    keep_data: Annotated[
        bool, typer.Option(help="Keep the simulation's database (and embedded servers' data).")
    ] = False,
    stats_concurrency: Annotated[
        int, typer.Option(min=1, help="Sync jobs a stats worker runs at once.")
    ] = 100,
    cycle_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the sync cycle to finish.")
    ] = 900.0,
    shed_max_in_flight: Annotated[
        int | None,
        typer.Option(
            min=0, help="The API's shed level [default: PIXECOM_SHED_MAX_IN_FLIGHT or 64]."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="PostgreSQL server (superuser) [default: DATABASE_URL, else embedded]."),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis [default: REDIS_URL, else embedded Valkey].")
    ] = None,
    edge: Annotated[
        bool | None,
        typer.Option(
            "--edge/--no-edge",
            help="Send the load through the deploy kit's nginx (TLS, rate limits, "
            "micro-cached sellpages) [default: on for C, off for A and B].",
        ),
    ] = None,
    generator_core_limit: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Cores the load generator may use before the report warns that it, not "
            "the API, may have set the pace.",
        ),
    ] = 1.0,
    api_processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="API processes [default: 2 behind nginx, as the deploy kit's upstream; "
            "1 without it].",
        ),
    ] = None,
    warmup: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds of load at the window's rates before it (connections opened, "
            "each route served once); reported apart from the window.",
        ),
    ] = 5.0,
) -> None:
    """Reproduce one of the audit's scenarios (A, B or C) against the reference deployment.

    Starts the deployment (API, one worker per queue, scheduler, and the installed plugins'
    ad network, payment gateway and tracker sandboxes on loopback), generates the
    scenario's sellers, catalog and order history, drives open-loop API load at the
    scenario's peak rates while a full sync cycle runs (and, for C, a webhook burst and a
    slow tracker), then prints a verdict table next to the audit's figures and writes
    scenario-<X>.json and scenario-<X>.png. With --edge (C's default) the load goes
    through the deploy kit's nginx config, as a deployment's does; the load generator's
    own CPU is reported beside the API's, with a warning above the table past
    --generator-core-limit. The database it creates is dropped afterwards
    unless --keep-data. Exit status 1 when a verdict
    fails.
    """
    from reference_app.simulate.deployment import PluginMissingError
    from reference_app.simulate.edge import EdgeUnavailableError
    from reference_app.simulate.report import render
    from reference_app.simulate.runner import RunOptions, run_simulation
    from reference_app.simulate.scenarios import scenario as find_scenario

    try:
        chosen = find_scenario(scenario, scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if api_rate is not None:
        chosen = dataclasses.replace(chosen, api_rate=api_rate)
    options = RunOptions(
        output_dir=output_dir,
        duration=duration,
        keep_data=keep_data,
        stats_concurrency=stats_concurrency,
        cycle_timeout=cycle_timeout,
        shed_max_in_flight=shed_max_in_flight,
        database_url=database_url or os.environ.get("DATABASE_URL"),
        redis_url=redis_url or os.environ.get("REDIS_URL"),
        edge=edge,
        generator_core_limit=generator_core_limit,
        api_processes=api_processes,
        warmup=warmup,
    )
    try:
        result = run_simulation(chosen, options, typer.echo)
    except (PluginMissingError, EdgeUnavailableError) as exc:
        typer.echo(f"pixecom simulate: {exc}", err=True)
        raise typer.Exit(code=2) from None
    table, json_path, png_path = render(result, output_dir)
    typer.echo("")
    typer.echo(table)
    typer.echo("")
    typer.echo(f"results: {json_path}  chart: {png_path}")
    if any("| FAIL" in line for line in table.splitlines()):
        raise typer.Exit(code=1)
