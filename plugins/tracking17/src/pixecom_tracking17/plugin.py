"""Hook implementations of the 17TRACK plugin: the ``17track`` tracker and its sandbox."""

from typing import Final

from pixecom_core import hookimpl
from pixecom_core.providers import ASGIApp, Sandbox, SimulatedConditions, Tracker
from pixecom_tracking17.client import PROVIDER
from pixecom_tracking17.settings import ENV_PREFIX, SANDBOX_ENV_PREFIX
from pixecom_tracking17.tracker import Tracker17


@hookimpl
def pixecom_register_trackers() -> list[Tracker]:
    """Offer the ``17track`` tracker, configured from ``PIXECOM_TRACKING17_*``.

    An unset key does not fail here: the first call that needs it raises a
    ``ProviderAuthError`` naming ``PIXECOM_TRACKING17_API_KEY``.
    """
    return [Tracker17()]


def _create_sandbox_app() -> ASGIApp:
    # imported on demand: API and worker processes never serve the sandbox
    from pixecom_tracking17.sandbox import create_sandbox_app

    return create_sandbox_app()


#: Dev-only keys shared by the tracker and its sandbox (never valid at 17TRACK).
DEV_API_KEY: Final = "pixecom-dev-17track-api-key"
DEV_PUSH_KEY: Final = "pixecom-dev-17track-push-key"
#: Seconds between two steps of a dev parcel (InfoReceived → … → Delivered).
DEV_ADVANCE_EVERY_SECONDS: Final = 60


def push_url(api_url: str) -> str:
    """Where the API receives this tracker's pushes: core's tracking push route, keyed by
    the tracker's identifier (``/webhooks/tracking/17track``)."""
    return f"{api_url.rstrip('/')}/webhooks/tracking/{PROVIDER}"


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:
    """Point the tracker at the sandbox and the sandbox's pushes at the API."""
    return {
        f"{ENV_PREFIX}API_BASE": sandbox_url,
        f"{ENV_PREFIX}API_KEY": DEV_API_KEY,
        f"{ENV_PREFIX}PUSH_KEY": DEV_PUSH_KEY,
        f"{SANDBOX_ENV_PREFIX}PUSH_URL": push_url(api_url),
        f"{SANDBOX_ENV_PREFIX}AUTO_PUSH": "true",
        f"{SANDBOX_ENV_PREFIX}ADVANCE_EVERY_SECONDS": str(DEV_ADVANCE_EVERY_SECONDS),
    }


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``17track`` sandbox: a fake 17TRACK v2.2 API with parcels that progress,
    rate limits, injected faults and signed pushes on loopback (see
    :mod:`pixecom_tracking17.sandbox`), configured from ``PIXECOM_TRACKING17_SANDBOX_*``."""
    return [
        Sandbox(
            name=PROVIDER,
            provider=PROVIDER,
            create_app=_create_sandbox_app,
            environment=_dev_environment,
            simulation_environment=_simulation_environment,
        )
    ]


def _simulation_environment(conditions: SimulatedConditions) -> dict[str, str]:
    """The scenario's API latency; parcels still unless it wants them to move."""
    return {
        f"{SANDBOX_ENV_PREFIX}LATENCY_SECONDS": str(conditions.latency_seconds),
        f"{SANDBOX_ENV_PREFIX}ADVANCE_EVERY_SECONDS": str(
            DEV_ADVANCE_EVERY_SECONDS if conditions.parcels_progress else 0
        ),
    }
