"""Hook implementations of the ECB plugin: the ``ecb`` currency-rate source and its sandbox."""

from pixecom_core import hookimpl
from pixecom_core.providers import ASGIApp, CurrencyRateSource, Sandbox
from pixecom_ecb_rates.client import PROVIDER
from pixecom_ecb_rates.sandbox import FILES_PATH
from pixecom_ecb_rates.settings import ENV_PREFIX
from pixecom_ecb_rates.source import EcbRateSource


@hookimpl
def pixecom_register_currency_rates() -> list[CurrencyRateSource]:
    """Offer the ``ecb`` source (EUR against about 30 currencies), configured from
    ``PIXECOM_ECB_*``; nothing needs to be set."""
    return [EcbRateSource()]


def _create_sandbox_app() -> ASGIApp:
    # imported on demand: API and worker processes never serve the sandbox
    from pixecom_ecb_rates.sandbox import create_sandbox_app

    return create_sandbox_app()


def base_url(sandbox_url: str) -> str:
    """Where the sandbox serves the files, as the source's ``PIXECOM_ECB_BASE_URL``."""
    return f"{sandbox_url.rstrip('/')}{FILES_PATH}"


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:  # noqa: ARG001
    """Point the source at the sandbox (which sends nothing to the API)."""
    return {f"{ENV_PREFIX}BASE_URL": base_url(sandbox_url)}


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``ecb`` sandbox: the ECB's three reference-rate files with deterministic
    rates, a movable clock, withheld days and injected faults on loopback (see
    :mod:`pixecom_ecb_rates.sandbox`), configured from ``PIXECOM_ECB_SANDBOX_*``."""
    return [
        Sandbox(
            name=PROVIDER,
            provider=PROVIDER,
            create_app=_create_sandbox_app,
            environment=_dev_environment,
        )
    ]
