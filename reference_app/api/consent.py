"""What the two consent-page flows' routes share: ad accounts and payment accounts.

Both start a flow that the seller's browser finishes at a callback without a bearer token
(:class:`~pixecom_core.ad_accounts.connections.ConnectionStateSigner` checks the state and
the browser binding); these helpers set and read the binding cookie and send a browser
whose flow was refused back to the dashboard page that says why.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import Request, Response, status
from fastapi.responses import RedirectResponse

from pixecom_core.ad_accounts.connections import (
    BINDING_COOKIE_PREFIX,
    STATE_LIFETIME,
    binding_cookie_name,
)


def set_binding_cookie(
    response: Response, request: Request, connection_id: uuid.UUID, value: str, *, path: str
) -> None:
    """Bind a started flow to this browser: HttpOnly, sent only to the callback at
    ``path``, gone with the state."""
    response.set_cookie(
        binding_cookie_name(connection_id),
        value,
        max_age=int(STATE_LIFETIME.total_seconds()),
        path=path,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def binding_cookies(request: Request) -> dict[str, str]:
    """The request's flow-binding cookies (the callback's ``browser_bindings``)."""
    return {
        name: value
        for name, value in request.cookies.items()
        if name.startswith(BINDING_COOKIE_PREFIX)
    }


def browser_refusal(request: Request, page: str, code: str) -> RedirectResponse | None:
    """For a browser (``Accept: text/html``), a redirect to ``page?error=<code>``, where the
    dashboard says what happened; ``None`` for an API client, which reads the error as
    documented. ``code`` is one of ours, never the provider's text."""
    if "text/html" not in request.headers.get("accept", ""):
        return None
    return RedirectResponse(
        f"{page}?{urlencode({'error': code})}", status_code=status.HTTP_303_SEE_OTHER
    )
