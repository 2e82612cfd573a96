"""Hook implementations of the Cloudflare R2 plugin: the ``r2`` storage and its sandbox."""

from typing import Final

from pixecom_core import hookimpl
from pixecom_core.providers import ASGIApp, Sandbox, Storage
from pixecom_r2_storage.settings import R2Settings
from pixecom_r2_storage.storage import R2Storage

#: Dev-only bucket and credentials shared by the storage and its sandbox (moto accepts any
#: key; these are never valid at Cloudflare).
DEV_BUCKET: Final = "pixecom-dev"
DEV_ACCESS_KEY_ID: Final = "pixecom-dev-access-key"
DEV_SECRET_ACCESS_KEY: Final = "pixecom-dev-secret-key-not-a-secret"


@hookimpl
def pixecom_register_storage() -> list[Storage]:
    """Offer the ``r2`` storage, configured from ``PIXECOM_R2_*``.

    Unset variables do not fail here: the first call that needs the endpoint, bucket or keys
    raises ``R2NotConfigured`` naming what to set.
    """
    return [R2Storage(R2Settings())]


def _create_sandbox_app() -> ASGIApp:
    # imported on demand: API and worker processes never serve the sandbox (nor load moto)
    from pixecom_r2_storage.sandbox import create_sandbox_app

    return create_sandbox_app()


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:  # noqa: ARG001
    """Point the storage at the sandbox, with a bucket the sandbox creates (R2 sends no
    webhooks to the API)."""
    return {
        "PIXECOM_R2_ENDPOINT_URL": sandbox_url,
        "PIXECOM_R2_BUCKET": DEV_BUCKET,
        "PIXECOM_R2_ACCESS_KEY_ID": DEV_ACCESS_KEY_ID,
        "PIXECOM_R2_SECRET_ACCESS_KEY": DEV_SECRET_ACCESS_KEY,
    }


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``r2`` sandbox: moto's S3 emulator on loopback with the dev bucket (see
    :mod:`pixecom_r2_storage.sandbox`)."""
    return [
        Sandbox(
            name="r2",
            provider="r2",
            create_app=_create_sandbox_app,
            environment=_dev_environment,
        )
    ]
