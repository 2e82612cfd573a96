"""Serve an ASGI app (the sandbox, a webhook receiver) under uvicorn on a free loopback port.

The server runs in a thread with its own event loop, so a test's loop (or a synchronous
caller) can talk to it over real HTTP. With :class:`~pixecom_paypal.sandbox.LoopbackTLS`
files it serves https, which offline webhook verification needs for the certificate URL.
"""

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from pixecom_core.providers import ASGIApp
from pixecom_paypal.sandbox import LoopbackTLS


class LoopbackServer:
    """One uvicorn server on ``127.0.0.1`` and a port the OS picked; a context manager.

    :param app: the ASGI app to serve.
    :param tls: certificate and key files; plain http when omitted.
    """

    def __init__(self, app: ASGIApp, *, tls: LoopbackTLS | None = None) -> None:
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket says TCP; without it every response waits ~40 ms for
        # Nagle's algorithm and delayed ACKs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout_seconds: float = 10.0) -> Self:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the loopback server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask the server to finish its requests and exit; wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
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
