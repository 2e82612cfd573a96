"""Sandboxes: small ASGI apps that speak a provider's real wire format on loopback.

Tests, the dev deployment and the scale simulation run plugins against their sandboxes
over real HTTP. Sandboxes are found through the ``pixecom_register_sandboxes`` hook, so the
reference app can start them in dev mode without importing any plugin.
"""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

# The ASGI 3 callable shape, spelled out so the contract does not depend on one framework's
# type aliases: a FastAPI or Starlette application satisfies it as it is.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DemoPayment:
    """A payment the dev deployment's demo shopper started at checkout.

    :param gateway_reference: the gateway's payment id, as checkout returned it.
    :param amount_minor: the amount to pay, in minor units of ``currency``.
    :param currency: ISO 4217.
    """

    gateway_reference: str
    amount_minor: int
    currency: str


class DemoPayments(Protocol):
    """Plays the shopper (and the merchant's dashboard) at a payment gateway's sandbox.

    Optional, for ``pixecom dev``'s demo traffic: the reference app places orders through
    its public API and asks this object to pay or refund them *at the sandbox*; the sandbox
    then delivers its signed webhooks to the API, exactly as the real provider would, so the
    payments worker turns them into ledger facts. Nothing here writes to PixEcom.
    """

    async def pay(self, payment: DemoPayment) -> None:
        """Complete the payment as the shopper would (card accepted, capture done), and
        make the sandbox deliver the resulting webhooks now.

        Raises any exception when the sandbox refuses; the caller logs it and moves on.
        """
        ...

    async def refund(self, payment: DemoPayment, amount_minor: int) -> None:
        """Refund ``amount_minor`` of a paid payment, as the merchant would from the
        provider's dashboard, and make the sandbox deliver the refund's webhooks now."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client (called once, when the demo traffic stops)."""
        ...


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
    :param demo_payments: for a payment gateway's sandbox, optional: given the sandbox's
        base URL, a :class:`DemoPayments` that pays and refunds checkout payments there
        (the sandbox delivers the signed webhooks). ``pixecom dev``'s demo traffic uses the
        first installed gateway whose sandbox offers it; ``None``: no demo payments.
    """

    name: str
    provider: str
    create_app: Callable[[], ASGIApp]
    environment: Callable[[str, str], Mapping[str, str]] | None = None
    demo_accounts: tuple[str, ...] = ()
    demo_payments: Callable[[str], DemoPayments] | None = None
