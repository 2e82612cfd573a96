"""``pixecom plugins``: list installed plugins, their versions and the hooks they implement.

Mount it on the main CLI by registering the function as a command::

    from reference_app.cli_plugins import plugins_command

    cli = typer.Typer()
    cli.command("plugins")(plugins_command)

``app`` is the same command as a stand-alone Typer app; tests invoke it through
``typer.testing.CliRunner``.
"""

import importlib.util
import json
from dataclasses import asdict
from typing import Annotated

import typer

from pixecom_core.plugins import (
    LOAD_PLUGINS_ENV,
    PluginInfo,
    PluginLoadError,
    PluginValidationError,
    create_plugin_manager,
    describe_plugins,
)

app = typer.Typer(add_completion=False)

# typer-slim installs without rich; the command then prints plain lines.
RICH_INSTALLED = importlib.util.find_spec("rich") is not None


@app.command()
def plugins_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List installed plugins, their versions and the hooks each implements.

    Honours PIXECOM_LOAD_PLUGINS; exits with status 1 naming a plugin that fails to load.
    """
    try:
        plugins = describe_plugins(create_plugin_manager())
    except (PluginLoadError, PluginValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    if as_json:
        typer.echo(json.dumps([asdict(plugin) for plugin in plugins], indent=2))
    elif not plugins:
        typer.echo(f"no plugins installed (or none allowed by {LOAD_PLUGINS_ENV})")
    elif RICH_INSTALLED:
        _print_table(plugins)
    else:
        for plugin in plugins:
            typer.echo(_plain_line(plugin))


def _plain_line(plugin: PluginInfo) -> str:
    origin = f"{plugin.distribution} {plugin.version}" if plugin.distribution else "(direct)"
    return f"{plugin.name}  {origin}  {', '.join(plugin.hooks)}"


def _print_table(plugins: list[PluginInfo]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for header in ("Plugin", "Distribution", "Version"):
        table.add_column(header, overflow="fold")
    # Hook names are what readers search for: keep each whole, let the other columns wrap.
    table.add_column("Hooks", no_wrap=True)
    for plugin in plugins:
        table.add_row(
            plugin.name,
            plugin.distribution or "(direct)",
            plugin.version or "",
            "\n".join(plugin.hooks),
        )
    Console().print(table)
