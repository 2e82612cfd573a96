"""Hook implementations of the Cloudflare R2 plugin."""

from pixecom_core import hookimpl
from pixecom_core.providers import Storage
from pixecom_r2_storage.storage import R2Storage


@hookimpl
def pixecom_register_storage() -> list[Storage]:
    """Offer the ``r2`` storage."""
    return [R2Storage()]
