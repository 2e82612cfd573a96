"""Sandboxes: small ASGI apps that speak a provider's real wire format on loopback.

Tests, the dev deployment and the scale simulation run plugins against their sandboxes
over real HTTP. Sandboxes are found through the ``pixecom_register_sandboxes`` hook, so the
reference app can start them in dev mode without importing any plugin.
"""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
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
        make the sandbox deliver the resulting webhooks now (unless a
        :class:`SimulatedPayments` holds them).

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


class SimulatedPayments(DemoPayments, Protocol):
    """:class:`DemoPayments` that can also hold and replay webhooks, for ``pixecom
    simulate``.

    The simulation pays its checkouts through :meth:`DemoPayments.pay`, and replays a
    webhook burst (MONEY-2, "duplicate payment events"): it holds the sandbox's
    deliveries, pays a few hundred payments, then sends every held event several times,
    shuffled, from many senders at once, and checks each payment reached the ledger.
    One object serves the whole run, so it knows while deliveries are held (``pay`` then
    leaves them held).
    """

    @property
    def paid_event_type(self) -> str:
        """The gateway's notification type that announces a completed payment, as the
        webhook inbox stores it (``webhook_inbox.event_type``): its stored delivery
        proves a payment's success reached the API."""
        ...

    async def hold_webhooks(self) -> None:
        """Stop delivering webhooks: from now on the sandbox keeps every new event
        undelivered (also those :meth:`pay` raises) until :meth:`deliver_webhooks` or
        :meth:`release_webhooks` sends it."""
        ...

    async def held_webhooks(self) -> list[str]:
        """The ids of the events the sandbox holds undelivered, oldest first."""
        ...

    async def deliver_webhooks(
        self, event_ids: Sequence[str], *, copies: int, shuffle: bool
    ) -> list[int | None]:
        """Deliver these events to the API now, signed as the provider signs them, each
        ``copies`` times (providers deliver at least once), in random order if
        ``shuffle`` (providers promise no order).

        Returns the HTTP status the API answered to each delivery (``None``: no answer);
        raises when the sandbox refuses the request itself.
        """
        ...

    async def release_webhooks(self) -> None:
        """Undo :meth:`hold_webhooks`: deliver as before it, and deliver every event
        still held now (nothing else would send them)."""
        ...


@dataclass(frozen=True, slots=True)
class SimulatedConditions:
    """How ``pixecom simulate``'s scenario wants a sandbox to behave.

    A sandbox applies what concerns its role and ignores the rest.

    :param latency_seconds: added before every provider API answer (not the sandbox's
        own control endpoints); ``0``: as fast as it can.
    :param campaigns_per_account: for an ad network's sandbox, the campaigns every
        account has (each with its ad sets and ads); ``None``: the sandbox's default.
    :param parcels_progress: for a tracker's sandbox, whether parcels move on by
        themselves during the run (the simulation wants them still).
    """

    latency_seconds: float = 0.0
    campaigns_per_account: int | None = None
    parcels_progress: bool = False

    def __post_init__(self) -> None:
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be >= 0: a sandbox cannot answer early")
        if self.campaigns_per_account is not None and self.campaigns_per_account < 1:
            raise ValueError("campaigns_per_account must be >= 1: a synced account has ads")


@dataclass(frozen=True, slots=True)
class SimulatedAdAccount:
    """An ad account an ad network's sandbox serves data for, to connect to a simulated
    seller.

    :param account_id: the network's account id, as the ad network plugin expects it.
    :param currency: ISO 4217 currency the account reports in.
    :param timezone: IANA time zone of the account's reporting day.
    """

    account_id: str
    currency: str
    timezone: str


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
    :param simulation_payments: for a payment gateway's sandbox, optional: given the
        sandbox's base URL, a :class:`SimulatedPayments` (often the ``demo_payments``
        object itself); ``pixecom simulate`` pays its checkouts and replays its webhook
        burst with it. ``None``: the sandbox cannot serve a simulation.
    :param simulation_environment: for ``pixecom simulate``: given the scenario's
        :class:`SimulatedConditions`, the environment variables (on top of
        ``environment``'s) that make the sandbox behave so; ``None``: nothing to tune.
    :param simulation_accounts: for an ad network's sandbox, ``pixecom simulate``'s source
        of ad accounts: given a count and an ISO 4217 currency, that many distinct
        accounts the sandbox serves data for, reporting in that currency (so no exchange
        rates are needed); ``None``: the sandbox cannot serve a simulation.
    :param approve_consent: for a provider whose sellers connect through a consent page
        (an ad network's, or a payment gateway's such as Stripe Connect): plays the
        seller's browser on the sandbox's page — given the authorization URL core built,
        it approves every permission asked (for an ad network, as the seller who reaches
        ``demo_accounts``; for a gateway, connecting a new account) and returns the URL
        the page redirects to (core's callback with ``code`` and ``state``). ``pixecom
        dev`` connects the demo seller's accounts through it, and ``pixecom simulate``
        each simulated seller's payment account, by the same flow a seller follows;
        ``None``: they cannot be connected that way.
    :param demo_credentials: for a payment gateway whose sellers connect with credentials
        (a PayPal REST app): given the sandbox's base URL, create a seller's own account
        there and return the credential fields to connect it with (the names of the
        gateway's ``credential_fields``). ``pixecom dev`` connects the demo seller's
        account with them, through the same route a seller uses; ``None``: it cannot.
    :param demo_conversion_destination: for an ad network that receives conversion events
        (:class:`~pixecom_core.providers.ConversionsDestination`): given the sandbox's base
        URL, the destination id and access token the demo seller's events go to (a pixel
        the sandbox keeps); ``pixecom dev`` sets it for the demo seller; ``None``: none.
    """

    name: str
    provider: str
    create_app: Callable[[], ASGIApp]
    environment: Callable[[str, str], Mapping[str, str]] | None = None
    demo_accounts: tuple[str, ...] = ()
    demo_payments: Callable[[str], DemoPayments] | None = None
    simulation_payments: Callable[[str], SimulatedPayments] | None = None
    simulation_environment: Callable[[SimulatedConditions], Mapping[str, str]] | None = None
    simulation_accounts: Callable[[int, str], Sequence[SimulatedAdAccount]] | None = None
    approve_consent: Callable[[str], Awaitable[str]] | None = None
    demo_credentials: Callable[[str], Awaitable[Mapping[str, str]]] | None = None
    demo_conversion_destination: Callable[[str], Awaitable[tuple[str, str]]] | None = None
