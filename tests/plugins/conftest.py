"""Fixtures for plugin-manager tests: distributions that exist for one test only."""

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixecom_core.plugins import LOAD_PLUGINS_ENV, PLUGIN_MODULES_ENV, PROJECT_NAME


@pytest.fixture(autouse=True)
def _no_allow_list_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell (or the suite-wide test gateway setting) may restrict or add
    # plugins; every test here states the plugins it needs.
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    monkeypatch.delenv(PLUGIN_MODULES_ENV, raising=False)


class DistributionFactory:
    """Writes a distribution's metadata and plugin module into a directory on ``sys.path``.

    ``importlib.metadata`` finds distributions on ``sys.path``, so the entry point is
    discovered exactly like an installed one, without touching the shared virtualenv (a
    broken plugin installed there would break everyone else's test run).
    """

    def __init__(self, site: Path) -> None:
        self.site = site
        self.modules: list[str] = []

    def __call__(
        self, distribution: str, *, entry_point: str, source: str, version: str = "1.0.0"
    ) -> str:
        """Create ``distribution`` declaring ``entry_point``; return the plugin module's name."""
        module = f"pixecom_test_plugin_{entry_point}"
        (self.site / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = self.site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
        (dist_info / "entry_points.txt").write_text(f"[{PROJECT_NAME}]\n{entry_point} = {module}\n")
        importlib.invalidate_caches()
        self.modules.append(module)
        return module


@pytest.fixture
def make_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DistributionFactory]:
    """A factory of throwaway distributions visible to ``importlib.metadata``."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    factory = DistributionFactory(site)
    yield factory
    for module in factory.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


FAKE_GATEWAY_PLUGIN = """
    from pixecom_core import hookimpl


    class FakeGateway:
        identifier = "fake"
        display_name = "Fake"
        webhook_headers = frozenset({"x-fake-signature"})

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
        return [FakeGateway()]
"""


@pytest.fixture
def fake_gateway_distribution(make_distribution: DistributionFactory) -> str:
    """Distribution ``pixecom-fake-gateway`` 1.0.0 whose ``fake_gateway`` entry point offers
    the payment gateway ``fake``; returns the entry-point name."""
    make_distribution(
        "pixecom-fake-gateway", entry_point="fake_gateway", source=FAKE_GATEWAY_PLUGIN
    )
    return "fake_gateway"
