"""Child processes of a simulation: the plugin sandboxes, and the API.

Each runs in a process of its own (``python -m reference_app.simulate.processes …``) so
that the load generator, the sandboxes and the API do not share one interpreter lock —
on two cores a sandbox answering thousands of Graph calls in the generator's process
would slow the generator, not the system under test.

- ``sandboxes NAME=PORT …``: serve the named installed sandboxes on loopback until
  SIGTERM (each reads its settings from the environment, as in ``pixecom dev``);
- ``api --port PORT``: serve ``create_app(Settings())`` with uvicorn, as production does.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import uvicorn


def _serve_sandboxes(assignments: list[str]) -> None:
    from pixecom_core.plugins import ProviderRegistry, create_plugin_manager

    wanted = dict(item.split("=", 1) for item in assignments)
    servers: list[uvicorn.Server] = []
    for sandbox in ProviderRegistry(create_plugin_manager()).sandboxes():
        if sandbox.name not in wanted:
            continue
        app: Any = sandbox.create_app()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=int(wanted[sandbox.name]), log_level="warning"
        )
        servers.append(uvicorn.Server(config))
    # One thread per server (uvicorn installs no signal handlers outside the main thread);
    # the main thread waits for SIGTERM / SIGINT and stops them all.
    threads = [threading.Thread(target=server.run, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    stop.wait()
    for server in servers:
        server.should_exit = True
    for thread in threads:
        thread.join(timeout=10)


def _serve_api(port: int) -> None:
    from pixecom_core.settings import Settings
    from reference_app.api import create_app

    uvicorn.run(
        create_app(Settings()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        # Each request is logged by the app already; uvicorn's access log would cost CPU
        # the load test measures.
        access_log=False,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m reference_app.simulate.processes``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sandboxes = sub.add_parser("sandboxes")
    sandboxes.add_argument("assignments", nargs="+", metavar="NAME=PORT")
    api = sub.add_parser("api")
    api.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "sandboxes":
        _serve_sandboxes(args.assignments)
    else:
        _serve_api(args.port)


if __name__ == "__main__":
    main()
