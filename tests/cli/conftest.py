"""Fixtures for CLI tests: the installed ``pixecom`` console script, run as a subprocess.

Running the real console script (not typer's CliRunner) is what proves the user-facing
promises: exit codes, one-line errors without tracebacks, clean shutdown on signals.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

#: Variables the CLI reads; removed from the inherited environment so a developer's
#: shell (or CI's DATABASE_URL) cannot change what a test means.
_CONFIG_PREFIXES = ("PIXECOM_", "DATABASE_URL", "REDIS_URL", "CREDENTIALS_DIRECTORY")

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]
CleanEnvironment = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def pixecom_executable() -> Path:
    """The ``pixecom`` console script installed next to this interpreter."""
    found = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert found, "the pixecom console script is not installed: pip install -e reference_app"
    return Path(found)


def clean_environment(**overrides: str) -> dict[str, str]:
    """The current environment without PixEcom configuration, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(overrides)
    return env


@pytest.fixture(name="clean_environment")
def clean_environment_fixture() -> CleanEnvironment:
    """:func:`clean_environment`, for tests that start processes themselves."""
    return clean_environment


@pytest.fixture
def run_pixecom(pixecom_executable: Path) -> RunPixecom:
    """Run ``pixecom *args`` with exactly the given configuration; capture its output."""

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pixecom_executable), *args],
            env=clean_environment(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
