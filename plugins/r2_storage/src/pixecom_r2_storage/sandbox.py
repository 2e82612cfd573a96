"""The R2 sandbox: moto's S3 emulator as an ASGI app, with the plugin's bucket created.

moto's server mode is a Flask (WSGI) app per AWS service; :func:`create_sandbox_app` builds
the S3 one (``moto.server.create_backend_app("s3")``) and serves it as ASGI through
``a2wsgi``, so the reference app runs it on loopback like every other sandbox. It speaks the
S3 wire format the plugin uses against R2: presigned ``PUT``, ``HEAD``, ranged ``GET``,
``DELETE``, conditional ``If-None-Match: *`` writes, XML error bodies, and allows CORS
from any origin so a browser can upload in dev mode.

What it does not imitate (moto checks none of it): signatures, expiry and the signed
``Content-Length``/``Content-Type`` of presigned URLs. An upload of another size or type
succeeds here where R2 would refuse it, which is exactly what the post-upload check
(:mod:`pixecom_r2_storage.verification`) must then catch.

moto keeps its objects in process-wide backends, not in the app: two sandbox apps in one
process share buckets and objects, and a new app does not forget earlier objects. Tests
therefore use fresh keys (or buckets) rather than a fresh app.
"""

from typing import Final, cast

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi_typing import WSGIApp
from moto.backends import get_backend
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import create_backend_app

from pixecom_core.providers import ASGIApp
from pixecom_core.providers.sandboxes import Receive, Scope, Send
from pixecom_r2_storage.settings import R2Settings

#: The bucket the sandbox creates when ``PIXECOM_R2_BUCKET`` is unset.
SANDBOX_DEFAULT_BUCKET: Final = "pixecom-dev"
#: moto files S3 buckets under the partition, not a region.
_PARTITION: Final = "aws"


def ensure_bucket(bucket: str) -> None:
    """Create ``bucket`` in moto's S3 backend unless it exists (requests signed with any
    access key land in moto's default account, where it is created)."""
    backend = get_backend("s3")[DEFAULT_ACCOUNT_ID][_PARTITION]
    if bucket not in backend.buckets:
        backend.create_bucket(bucket, "us-east-1")


def create_sandbox_app(*, buckets: tuple[str, ...] | None = None) -> ASGIApp:
    """Build the S3 emulator as an ASGI app, with its buckets created.

    :param buckets: buckets to create; by default ``PIXECOM_R2_BUCKET`` (which the dev
        environment sets before the app is built) or :data:`SANDBOX_DEFAULT_BUCKET`.
    """
    if buckets is None:
        buckets = (R2Settings().bucket or SANDBOX_DEFAULT_BUCKET,)
    for bucket in buckets:
        ensure_bucket(bucket)
    # Flask types its environ as a plain dict, a2wsgi as a TypedDict: the same object
    wsgi = WSGIMiddleware(cast(WSGIApp, create_backend_app("s3")))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # a2wsgi answers HTTP and the lifespan protocol; its types are its own
        await wsgi(scope, receive, send)  # type: ignore[arg-type]

    return app
