"""Demo traffic for ``pixecom dev``: a shopper on the demo sellpage every few seconds.

Dev mode only (``pixecom dev`` starts it; ``--no-demo-traffic`` turns it off), so a first
look at the API shows orders, payments and refunds arriving and revenue changing. It acts
only through public surfaces, exactly as production traffic would reach PixEcom:

- it places a checkout over HTTP (``POST /public/sellpages/{slug}/orders``);
- it pays it at the installed payment gateway's sandbox, which delivers the gateway's
  signed webhooks to the API; the payments worker turns them into ledger facts, the ledger
  marks the order's sellpage-day for re-aggregation and the next sync re-aggregates it;
- now and then it refunds part of an earlier payment there (as a merchant would in the
  gateway's dashboard), and ships some paid orders with a tracking number
  (``POST /orders/{id}/tracking``, logged in as the demo seller).

It never writes to the database and knows no plugin: the gateway is whichever installed
one's sandbox offers :class:`pixecom_core.providers.DemoPayments` (see
:func:`find_payment_sandbox`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from pixecom_core.plugins import ProviderKind, ProviderRegistry
from pixecom_core.providers import DemoPayment, DemoPayments

_log = logging.getLogger(__name__)

#: Seconds a request to the API may take.
REQUEST_TIMEOUT_SECONDS = 20.0
#: Seconds between two readiness polls while the API starts.
READY_POLL_SECONDS = 0.5
#: Paid orders remembered for later refunds and shipping (the oldest are forgotten).
REMEMBERED_PAYMENTS = 200


@dataclass(frozen=True)
class DemoTrafficConfig:
    """How the demo shopper behaves.

    :param api_url: the API's base URL.
    :param slug: the demo seller's published sellpage.
    :param login: the demo seller's (email, password), to add tracking numbers; ``None``:
        no tracking numbers.
    :param interval_seconds: mean wait between two visits.
    :param jitter: each wait is ``interval_seconds`` × a uniform factor in
        [1 − jitter, 1 + jitter], so orders do not arrive like a metronome.
    :param refund_share: chance, per visit, of a partial refund of an earlier payment.
    :param tracking_share: chance, per visit, that the order just paid is shipped.
    :param max_quantity: most items one order asks for.
    :param seed: makes the shopper's choices reproducible.
    """

    api_url: str
    slug: str
    login: tuple[str, str] | None = None
    interval_seconds: float = 5.0
    jitter: float = 0.5
    refund_share: float = 0.15
    tracking_share: float = 0.5
    max_quantity: int = 3
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        for name in ("refund_share", "tracking_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.max_quantity < 1:
            raise ValueError("max_quantity must be at least 1")


@dataclass(frozen=True)
class PaymentSandbox:
    """The gateway demo orders are paid with, and how to pay at its sandbox."""

    gateway: str
    payments: DemoPayments


def find_payment_sandbox(
    registry: ProviderRegistry, sandbox_urls: Mapping[str, str]
) -> PaymentSandbox | None:
    """The first served sandbox (by name) of an installed payment gateway that offers
    demo payments; ``None`` when there is none (no demo traffic then).

    :param sandbox_urls: sandbox name → base URL of the sandboxes being served.
    """
    gateways = set(registry.names(ProviderKind.PAYMENT_GATEWAY))
    for sandbox in registry.sandboxes():
        url = sandbox_urls.get(sandbox.name)
        if sandbox.demo_payments is None or url is None or sandbox.provider not in gateways:
            continue
        return PaymentSandbox(gateway=sandbox.provider, payments=sandbox.demo_payments(url))
    return None


@dataclass
class DemoTrafficTally:
    """What the shopper did so far."""

    orders_placed: int = 0
    payments: int = 0
    refunds: int = 0
    tracking_numbers: int = 0
    failures: int = 0


@dataclass
class _Paid:
    order_id: str
    payment: DemoPayment
    refunded: bool = False


class DemoShopper:
    """One shopper's visits to the demo sellpage, through the API and the sandbox only.

    :param client: an HTTP client whose base URL is the API.
    """

    def __init__(
        self, config: DemoTrafficConfig, client: httpx.AsyncClient, sandbox: PaymentSandbox
    ) -> None:
        self.config = config
        self.client = client
        self.sandbox = sandbox
        self.tally = DemoTrafficTally()
        self._random = random.Random(config.seed)
        self._paid: list[_Paid] = []
        self._access_token: str | None = None
        self._tracking_refused = False

    def next_wait(self) -> float:
        """Seconds until the next visit: the interval with its jitter."""
        spread = self.config.jitter
        return self.config.interval_seconds * self._random.uniform(1 - spread, 1 + spread)

    async def visit(self) -> None:
        """One visit: order and pay; sometimes refund part of an earlier payment; sometimes
        ship the order just paid. Raises when the API or the sandbox refuses a step."""
        paid = await self._order_and_pay()
        if self._random.random() < self.config.refund_share:
            await self._refund_one()
        if self.config.login is not None and not self._tracking_refused:
            if self._random.random() < self.config.tracking_share:
                await self._ship(paid)

    async def _order_and_pay(self) -> _Paid:
        answer = await self.client.post(
            f"/public/sellpages/{self.config.slug}/orders",
            json={
                "gateway": self.sandbox.gateway,
                "customer_email": f"shopper-{uuid.uuid4().hex[:12]}@example.com",
                "quantity": self._random.randint(1, self.config.max_quantity),
                "return_url": f"{self.config.api_url}/demo/thanks",
                "cancel_url": f"{self.config.api_url}/demo/cart",
            },
        )
        if answer.status_code != 201:
            raise RuntimeError(f"checkout answered {answer.status_code}: {answer.text[:300]}")
        placed = answer.json()
        self.tally.orders_placed += 1
        paid = _Paid(
            order_id=placed["order_id"],
            payment=DemoPayment(
                gateway_reference=placed["gateway_reference"],
                amount_minor=placed["amount_minor"],
                currency=placed["currency"],
            ),
        )
        await self.sandbox.payments.pay(paid.payment)
        self.tally.payments += 1
        self._paid.append(paid)
        del self._paid[:-REMEMBERED_PAYMENTS]
        return paid

    async def _refund_one(self) -> None:
        candidates = [paid for paid in self._paid if not paid.refunded]
        if not candidates:
            return
        paid = self._random.choice(candidates)
        # A partial refund (10–50 %): the order stays, its net revenue drops.
        amount = max(1, paid.payment.amount_minor * self._random.randint(10, 50) // 100)
        await self.sandbox.payments.refund(paid.payment, amount)
        paid.refunded = True
        self.tally.refunds += 1

    async def _ship(self, paid: _Paid) -> None:
        # 22 digits: the shape of a USPS tracking number (trackers detect the carrier).
        number = "9400" + "".join(str(self._random.randint(0, 9)) for _ in range(18))
        body = {"carrier": "usps", "tracking_number": number}
        answer = await self._as_seller("POST", f"/orders/{paid.order_id}/tracking", body)
        if answer.status_code == 201:
            self.tally.tracking_numbers += 1
            return
        if answer.status_code in (404, 405, 501):
            # This API has no tracking route (or no tracker): stop trying, keep selling.
            self._tracking_refused = True
            _log.info("demo traffic: tracking numbers not supported (%s)", answer.status_code)
            return
        raise RuntimeError(f"adding tracking answered {answer.status_code}: {answer.text[:300]}")

    async def _as_seller(self, method: str, path: str, body: object) -> httpx.Response:
        """A request as the demo seller, logging in (again) when the token is missing or
        expired."""
        for attempt in range(2):
            if self._access_token is None or attempt:
                await self._login()
            answer = await self.client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {self._access_token}"}
            )
            if answer.status_code != 401:
                return answer
        return answer

    async def _login(self) -> None:
        if self.config.login is None:
            raise RuntimeError("no demo login configured: pass login=(email, password)")
        email, password = self.config.login
        answer = await self.client.post("/auth/login", json={"email": email, "password": password})
        if answer.status_code != 200:
            raise RuntimeError(f"demo login answered {answer.status_code}: {answer.text[:300]}")
        self._access_token = answer.json()["access_token"]


async def wait_until_ready(client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
    """Poll ``/readyz`` until it answers 200; ``False`` when ``stop`` is set first."""
    while not stop.is_set():
        try:
            if (await client.get("/readyz")).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), timeout=READY_POLL_SECONDS)
        except TimeoutError:
            pass
    return False


async def run_demo_traffic(
    config: DemoTrafficConfig,
    sandbox: PaymentSandbox,
    stop: asyncio.Event,
    *,
    max_visits: int | None = None,
) -> DemoTrafficTally:
    """Visit the demo sellpage every ``interval_seconds`` (with jitter) until ``stop`` is
    set (or ``max_visits`` visits were made), once the API is ready. A failed visit is
    logged and counted, never fatal: the API may be restarting or a sandbox injecting
    faults. Closes the sandbox's :class:`DemoPayments` at the end."""
    async with httpx.AsyncClient(
        base_url=config.api_url, timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        shopper = DemoShopper(config=config, client=client, sandbox=sandbox)
        try:
            if not await wait_until_ready(client, stop):
                return shopper.tally
            visits = 0
            while not stop.is_set() and (max_visits is None or visits < max_visits):
                visits += 1
                try:
                    await shopper.visit()
                except Exception as exc:  # one failed visit must not end the demo
                    shopper.tally.failures += 1
                    _log.warning("demo traffic: a visit failed: %r", exc)
                if max_visits is not None and visits >= max_visits:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), timeout=shopper.next_wait())
                except TimeoutError:
                    pass
        finally:
            await sandbox.payments.aclose()
        return shopper.tally
