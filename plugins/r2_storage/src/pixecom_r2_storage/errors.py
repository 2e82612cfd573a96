"""Errors of the R2 plugin beyond :mod:`pixecom_core.providers.errors`.

Each one subclasses the core class whose reaction fits, so core handles it without knowing
R2; the extra classes only add what an operator or a caller needs to tell cases apart.
"""

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)


class R2NotConfigured(ProviderAuthError):
    """The endpoint, bucket or keys are not set; retrying cannot help until an operator sets
    the ``PIXECOM_R2_*`` variables the message names."""


class R2Throttled(ProviderThrottled, ProviderTransientError):
    """R2 answered 429 or ``SlowDown`` after botocore's own retries.

    Both a throttle (wait ``retry_after_seconds`` when R2 named it) and a transient failure
    (retry with backoff), so a caller handling either class retries it.
    """


class R2RequestRefused(ProviderError, ValueError):
    """The plugin refuses to sign or touch what was asked: a key outside
    ``sellers/{seller_id}/`` or with ``.``/``..``/empty segments, a size above
    ``max_upload_bytes``, a content type that is not allowed, an expiry that is not positive.

    Nothing was sent to R2. It is a caller bug or a hostile request, so retrying cannot
    help; it is also a ``ValueError`` for callers that validate input that way.
    """


class R2ObjectMissing(ProviderError, LookupError):
    """The object to read does not exist (``NoSuchKey``).

    Also a ``LookupError``, so code written against the Storage protocol alone can tell
    "gone" from "failed" without importing this plugin.
    """
