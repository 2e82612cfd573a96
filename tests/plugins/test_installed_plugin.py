"""A plugin built and installed with a real installer is discovered through its entry point.

The other tests fake distributions on ``sys.path``; this one goes through the whole path a
plugin author's package takes: build a wheel from a ``pyproject.toml``, install it into the
running virtualenv, find it with ``importlib.metadata``, uninstall it.
"""

import importlib
import importlib.metadata
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixecom_core.plugins import (
    PluginInfo,
    ProviderRegistry,
    create_plugin_manager,
    describe_plugins,
)
from pixecom_core.providers import PaymentGateway

DISTRIBUTION = "pixecom-throwaway-gateway"
MODULE = "pixecom_throwaway_gateway"

PYPROJECT = f"""
    [build-system]
    requires = ["hatchling>=1.25"]
    build-backend = "hatchling.build"

    [project]
    name = "{DISTRIBUTION}"
    version = "0.3.0"

    [project.entry-points.pixecom]
    throwaway = "{MODULE}"
"""

PLUGIN = """
    from pixecom_core import hookimpl


    class ThrowawayGateway:
        identifier = "throwaway"
        display_name = "Throwaway Pay"
        webhook_headers = frozenset({"x-throwaway-signature"})

        async def create_payment(self, request):
            raise NotImplementedError

        async def verify_webhook(self, *, body, headers):
            raise NotImplementedError

        async def parse_events(self, webhook):
            raise NotImplementedError

        async def refund(self, request):
            raise NotImplementedError

        async def fetch_refund(self, *, payment_reference, refund_reference):
            raise NotImplementedError


    @hookimpl
    def pixecom_register_payment_gateways():
        return [ThrowawayGateway()]
"""


def pip(*args: str) -> None:
    # uv is what the project installs with; plain pip keeps the test usable without it.
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is not None:
        command = [uv, "pip", *args, "--python", sys.executable]
    else:
        command = [sys.executable, "-m", "pip", *args, *(["-y"] if args[0] == "uninstall" else [])]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stderr}"


@pytest.fixture(scope="module")
def installed_distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = tmp_path_factory.mktemp(DISTRIBUTION)
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (project / MODULE).mkdir()
    (project / MODULE / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    pip("install", str(project))
    importlib.invalidate_caches()
    try:
        yield DISTRIBUTION
    finally:
        pip("uninstall", DISTRIBUTION)
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()
        assert "throwaway" not in importlib.metadata.entry_points(group="pixecom").names


def test_installed_distribution_declares_the_entry_point(installed_distribution: str) -> None:
    distribution = importlib.metadata.distribution(installed_distribution)

    assert distribution.version == "0.3.0"
    assert [(ep.name, ep.value) for ep in distribution.entry_points] == [("throwaway", MODULE)]


@pytest.mark.usefixtures("installed_distribution")
def test_registry_returns_the_installed_provider() -> None:
    registry = ProviderRegistry(create_plugin_manager())

    gateway = registry.payment_gateway("throwaway")

    assert isinstance(gateway, PaymentGateway)
    assert gateway.display_name == "Throwaway Pay"
    assert type(gateway).__module__ == MODULE
    assert "throwaway" in registry.names("payment_gateway")


def test_installed_plugin_is_described(installed_distribution: str) -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"throwaway"}))

    assert plugins == [
        PluginInfo(
            name="throwaway",
            distribution=installed_distribution,
            version="0.3.0",
            hooks=("pixecom_register_payment_gateways",),
        )
    ]
