"""Sandboxes: small ASGI apps that speak a provider's real wire format on loopback.

Tests, the dev deployment and the scale simulation run plugins against their sandboxes
over real HTTP. Sandboxes are found through the ``pixecom_register_sandboxes`` hook, so the
reference app can start them in dev mode without importing any plugin.
"""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

# The ASGI 3 callable shape, spelled out so the contract does not depend on one framework's
# type aliases: a FastAPI or Starlette application satisfies it as it is.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A fake of one external service, served by the reference app in dev mode.

    :param name: unique sandbox name, used in settings and URLs (e.g. ``"stripe"``).
    :param provider: the ``identifier`` of the provider it stands in for.
    :param create_app: builds a fresh ASGI app; called once per server start so state such
        as injected latency or errors never leaks between tests.
    :param environment: for the dev deployment: given the sandbox's base URL and the API's
        base URL, the environment variables that point the plugin at the sandbox (and the
        sandbox's webhooks at the API). They are set before the sandbox app, the API and
        the workers are built, so both sides read them. ``None``: nothing to configure.
    :param demo_accounts: for an ad network's sandbox, account ids it serves data for; the
        dev deployment connects them to the demo seller so numbers flow at first start.
    """

    name: str
    provider: str
    create_app: Callable[[], ASGIApp]
    environment: Callable[[str, str], Mapping[str, str]] | None = None
    demo_accounts: tuple[str, ...] = ()
