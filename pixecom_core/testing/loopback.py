"""Serve an ASGI app (a sandbox, a webhook receiver, the whole API) on a free loopback port.

Tests, the conformance kit and plugin test suites talk to sandboxes over real HTTP. The
server runs under uvicorn in a thread with its own event loop, so it works the same for a
synchronous caller, for an async test (whose loop stays free while the server starts and
stops) and across pytest-asyncio loop scopes::

    with LoopbackServer(app) as server:
        httpx.get(f"{server.url}/healthz")

    async with LoopbackServer(app, lifespan="on") as server:
        ...

    async with serve(app) as url:  # just the URL
        ...

One helper instead of the copies each plugin's tests used to carry.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from os import PathLike
from types import TracebackType
from typing import Literal, Self

import uvicorn

from pixecom_core.providers.sandboxes import ASGIApp

LOOPBACK_HOST = "127.0.0.1"


class LoopbackServerError(RuntimeError):
    """The server did not start (or did not stop) in time; the message says which and why."""


class LoopbackServer:
    """One uvicorn server on ``127.0.0.1`` and a port the OS picked; a sync or async context
    manager whose value is the running server (its base URL is :attr:`url`).

    The port is bound when the object is built, so :attr:`url` is known before the server
    starts: a sandbox whose settings name its own URL can be created in between.

    :param app: the ASGI app to serve.
    :param lifespan: run the app's startup and shutdown (``"on"``) as a real deployment does,
        or not (``"off"``, the default: sandboxes and receivers have none).
    :param ssl_certfile: a certificate file to serve https with (needs ``ssl_keyfile``).
    :param ssl_keyfile: the certificate's key file.
    :param start_timeout_seconds: how long to wait for the server to accept connections.
    :param graceful_shutdown_seconds: how long requests still running at stop may take.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: Literal["auto", "on", "off"] = "off",
        ssl_certfile: str | PathLike[str] | None = None,
        ssl_keyfile: str | PathLike[str] | None = None,
        start_timeout_seconds: float = 30.0,
        graceful_shutdown_seconds: float = 5.0,
    ) -> None:
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise ValueError("https needs both ssl_certfile and ssl_keyfile")
        self._start_timeout_seconds = start_timeout_seconds
        self._graceful_shutdown_seconds = graceful_shutdown_seconds
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket says TCP; without it every response waits ~40 ms for
        # Nagle's algorithm against delayed ACKs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((LOOPBACK_HOST, 0))
        port = self._socket.getsockname()[1]
        scheme = "https" if ssl_certfile is not None else "http"
        self._url = f"{scheme}://{LOOPBACK_HOST}:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan=lifespan,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                timeout_graceful_shutdown=max(1, round(graceful_shutdown_seconds)),
            )
        )
        self._thread = threading.Thread(target=self._run, name="loopback-server", daemon=True)
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43127`` (no trailing slash)."""
        return self._url

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._failure = exc

    def start(self) -> Self:
        """Start serving in a thread; return once the server accepts connections.

        :raises LoopbackServerError: the server stopped or did not start in time (uvicorn's
            log and the chained exception say why: a failing lifespan, a bad certificate).
        """
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_seconds
        while not self._server.started:
            if not self._thread.is_alive():
                raise LoopbackServerError(
                    "the loopback server exited before it started; uvicorn's log says why"
                ) from self._failure
            if time.monotonic() > deadline:
                self._server.should_exit = True
                raise LoopbackServerError(
                    f"the loopback server did not start within {self._start_timeout_seconds} s"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask the server to finish its requests and exit; wait for the thread.

        :raises LoopbackServerError: the thread was still running after the grace period.
        """
        self._server.should_exit = True
        try:
            if self._thread.is_alive():
                self._thread.join(timeout=self._graceful_shutdown_seconds + 10)
                if self._thread.is_alive():
                    raise LoopbackServerError(f"the loopback server at {self._url} did not stop")
        finally:
            self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Waiting happens in a worker thread so the caller's loop keeps running meanwhile.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


@asynccontextmanager
async def serve(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` on loopback for the ``async with`` block; yield its base URL.

    :param app: the ASGI app to serve.
    :param lifespan: ``"on"`` runs the app's startup and shutdown (see :class:`LoopbackServer`).
    """
    async with LoopbackServer(app, lifespan=lifespan) as server:
        yield server.url


@contextmanager
def serving(app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """Serve ``app`` on loopback for the ``with`` block; yield its base URL.

    :param app: the ASGI app to serve.
    :param lifespan: ``"on"`` runs the app's startup and shutdown (see :class:`LoopbackServer`).
    """
    with LoopbackServer(app, lifespan=lifespan) as server:
        yield server.url
