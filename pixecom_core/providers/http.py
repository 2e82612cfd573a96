"""What every plugin that speaks HTTP to its provider over httpx needs (issue 13 item 8).

Import from here instead of writing these again in each plugin's ``client.py``:

- :func:`shared_ssl_context`: one verifying TLS context per process, for ``verify=``.
- :class:`LoopLocalClient`: one ``httpx.AsyncClient`` per event loop, built on first use.
- :func:`parse_retry_after`: a ``Retry-After`` header as seconds to wait (RFC 9110 §10.2.3).
- :func:`transport_errors_as_transient` / :func:`transient_error_for`: a timeout or a
  connection failure as a ``ProviderTransientError`` that names the provider and what to do.
- :func:`json_object`: a response's body when it is a JSON object, else ``None``.

A client built this way looks like::

    self._http = LoopLocalClient(
        settings.api_base, timeout_seconds=settings.timeout_seconds, user_agent="pixecom-acme"
    )
    ...
    with transport_errors_as_transient(
        provider=PROVIDER, service="Acme", call=f"{method} {path}",
        base_url=settings.api_base, timeout_seconds=settings.timeout_seconds,
        timeout_setting="PIXECOM_ACME_TIMEOUT_SECONDS",
    ):
        response = await self._http.get().request(method, path)
"""

import asyncio
import math
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, NotRequired, TypedDict, Unpack

import httpx

from pixecom_core.providers.errors import ProviderTransientError

__all__ = [
    "FailedCall",
    "LoopLocalClient",
    "json_object",
    "parse_retry_after",
    "shared_ssl_context",
    "transient_error_for",
    "transport_errors_as_transient",
]


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process, to pass as ``verify=`` to every client.

    Building one (loading the CA bundle) costs tens of milliseconds, which every new
    ``httpx.AsyncClient`` would otherwise pay. Do not change the context you get: it is
    shared by every plugin in the process.
    """
    return httpx.create_ssl_context()


class LoopLocalClient:
    """One ``httpx.AsyncClient`` per event loop for one provider API, built on first use.

    An ``AsyncClient``'s connections belong to the loop that opened them, and one process
    may run several loops (a worker's, one per test): :meth:`get` builds a fresh client
    when called from a loop other than the last one, or after the client was closed. The
    old client is left to be collected, because a client bound to another (possibly
    closed) loop can be neither reused nor closed from this one. Redirects are not followed.

    :param base_url: the provider's API root; requests name paths below it.
    :param timeout_seconds: httpx's limit on each phase of a request (connect, read, write).
    :param user_agent: sent as ``User-Agent`` (``pixecom-<plugin>``).
    :param headers: more headers sent with every request.
    :param transport: an httpx transport to use instead of the network (tests).
    :param verify: the TLS context; default :func:`shared_ssl_context`.
    :param client: a client the caller built and closes itself (tests): :meth:`get` always
        returns it and :meth:`aclose` leaves it open; nothing is built then.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url
        self._timeout = httpx.Timeout(timeout_seconds)
        self._headers = {**({"User-Agent": user_agent} if user_agent else {}), **(headers or {})}
        self._transport = transport
        self._verify = verify
        self._given = client
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        """The client for the running loop; call it from inside that loop."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport,
                verify=self._verify if self._verify is not None else shared_ssl_context(),
                follow_redirects=False,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client this holder built (idempotent; a caller's client stays open)."""
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.aclose()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or ``None`` if it says nothing.

    RFC 9110 §10.2.3 allows delay-seconds (``120``) or an HTTP-date
    (``Wed, 21 Oct 2015 07:28:00 GMT``, and the obsolete RFC 850 and asctime forms). A
    date in the past means "now" (``0.0``). Decimal seconds (``1.5``), which some providers
    send, are accepted; negative, non-finite or unreadable values give ``None``, so the
    caller falls back to its own backoff.

    :param value: the header's value (``response.headers.get("retry-after")``).
    :param now: the time an HTTP-date is measured from; default: the current UTC time.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = _http_date(text)
        if when is None:
            return None
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# RFC 850 and asctime, the obsolete HTTP-date forms; IMF-fixdate goes through email.utils
_OBSOLETE_HTTP_DATES = ("%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y")


def _http_date(text: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        for layout in _OBSOLETE_HTTP_DATES:
            try:
                parsed = datetime.strptime(" ".join(text.split()), layout)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    # HTTP-dates are always UTC ("GMT"); a naive result comes from a form without a zone
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class FailedCall(TypedDict):
    """What :func:`transient_error_for` and :func:`transport_errors_as_transient` say about
    the call that failed, given as keywords.

    :param provider: the provider's ``identifier``, carried by the error.
    :param service: the provider's name in messages (``"Stripe"``, ``"17TRACK"``).
    :param call: what was being done (``"POST /v1/refunds"``).
    :param base_url: where the provider was expected (from the plugin's settings).
    :param timeout_seconds: the limit the call had.
    :param timeout_setting: the variable that sets that limit (``PIXECOM_…_TIMEOUT_SECONDS``).
    :param scrub: removes secrets from the exception's text before it is quoted; default:
        nothing is removed.
    """

    provider: str
    service: str
    call: str
    base_url: str
    timeout_seconds: float
    timeout_setting: str
    scrub: NotRequired[Callable[[str], str]]


def transient_error_for(exc: BaseException, **call: Unpack[FailedCall]) -> ProviderTransientError:
    """The ``ProviderTransientError`` for a call that timed out or could not connect.

    Use it where the error is kept rather than raised (a retry loop); otherwise use
    :func:`transport_errors_as_transient`. Set ``__cause__`` (or ``raise … from exc``).

    :param exc: an ``httpx.TimeoutException`` or builtin ``TimeoutError`` (the call took too
        long), or another ``httpx.TransportError`` (connecting, sending or reading failed).
    :param call: the keywords of :class:`FailedCall`.
    """
    kind = type(exc).__name__
    service, where, base_url = call["service"], call["call"], call["base_url"]
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        message = (
            f"{service} did not answer {where} within {call['timeout_seconds']:g} s ({kind}); "
            f"the call is retried later; raise {call['timeout_setting']} if {service} is "
            "only slow"
        )
    else:
        scrub = call.get("scrub", str)
        message = (
            f"could not reach {service} at {base_url} for {where}: {kind}: {scrub(str(exc))}; "
            f"the call is retried later; check that {base_url} is the right address and "
            "reachable from this host"
        )
    return ProviderTransientError(message, provider=call["provider"])


@contextmanager
def transport_errors_as_transient(**call: Unpack[FailedCall]) -> Iterator[None]:
    """Raise a timeout or connection failure in the block as ``ProviderTransientError``.

    Catches ``httpx.TransportError`` (timeouts included) and builtin ``TimeoutError`` (an
    ``asyncio.timeout`` around the call); other errors pass through. The keywords are
    :class:`FailedCall`'s; the original exception is the new one's ``__cause__``.
    """
    try:
        yield
    except (TimeoutError, httpx.TransportError) as exc:
        raise transient_error_for(exc, **call) from exc


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response's body if it is a JSON object; ``None`` for anything else (an HTML
    error page, a JSON list, no body)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
