"""Demo activity for ``pixecom dev``: the demo seller's shop and ad accounts, synced once.

Dev mode only. For every installed ad network whose sandbox names demo accounts, the demo
seller connects them the way any seller does (issue 14 item 8): a connection is started,
the sandbox's consent page is approved (:attr:`Sandbox.approve_consent` plays the
seller's browser), the callback's code is exchanged, and the accounts the grant reaches
are connected, their history backfill queued. For every installed payment gateway whose
sellers connect their own account through a consent page (issue 15 item 5), the demo
seller connects a sandbox account the same way, so demo checkouts are paid into it. The
demo seller gets a product with a price
and a published sellpage; one sync runs at once, the campaigns it discovers are linked to
the sellpage and the sellpage days re-aggregated, so the first look at the API shows real
numbers. The scheduler and the backfill worker take it from there.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import select, update
from sqlmodel import col

from pixecom_core.accounts.demo import DEMO_EMAIL
from pixecom_core.accounts.service import find_login
from pixecom_core.ad_accounts.connections import AdConnections
from pixecom_core.catalog.services import CatalogService, SellpageChanges
from pixecom_core.conversions import ConversionDestinations
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.models.ads import AdAccount, Campaign
from pixecom_core.models.catalog import Sellpage, SellpageStatus
from pixecom_core.payments import PaymentConnections
from pixecom_core.payments.connections import PaymentConnectionRepository
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError, create_plugin_manager
from pixecom_core.providers import (
    AdAccountStatus,
    PaymentConnectionKind,
    PaymentGatewayConnections,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Mode, Settings
from pixecom_core.stats.backfill import plan_backfill
from pixecom_core.stats.sync import StatsSync
from pixecom_core.tenancy import SellerContext
from reference_app.worker.broker import Queue, TaskKicker, build_broker

_log = logging.getLogger(__name__)

DEMO_SLUG = "demo-store"


@dataclass(frozen=True)
class DemoActivity:
    """What the seeding did."""

    accounts_connected: int
    campaigns_linked: int
    #: Gateways whose sandbox account the demo seller connected at this start.
    payment_accounts_connected: int = 0


async def seed_demo_activity(
    settings: Settings, *, api_url: str, sandbox_urls: Mapping[str, str] | None = None
) -> DemoActivity:
    """Connect sandbox demo accounts to the demo seller through each network's consent
    flow, plan their backfill, and sync them once (dev only).

    :param api_url: the API's base URL: the consent page redirects to its callback (the
        demo completes the flow itself, since the API is not serving yet).
    :param sandbox_urls: sandbox name → base URL of the sandboxes being served, for those
        that hand out demo credentials (:attr:`Sandbox.demo_credentials`).
    """
    if settings.mode is not Mode.DEV:
        raise RuntimeError("demo activity is for pixecom dev only")
    engine = create_engine(settings, role="app")
    try:
        sessions = create_sessionmaker(engine)
        found = await find_login(sessions, DEMO_EMAIL)
        if found is None:
            return DemoActivity(accounts_connected=0, campaigns_linked=0)
        seller_id = found[0]
        context = SellerContext(seller_id=seller_id, sessions=sessions, settings=settings)
        registry = ProviderRegistry(create_plugin_manager())
        connections = AdConnections.for_settings(sessions, settings, registry)
        callback = f"{api_url.rstrip('/')}/ad-accounts/connections/callback"
        connected: list[uuid.UUID] = []
        for sandbox in registry.sandboxes():
            if not sandbox.demo_accounts or sandbox.approve_consent is None:
                continue
            try:
                network = registry.ad_network(sandbox.provider)
            except UnknownProviderError:
                continue
            async with context.scope() as scope:
                known = await scope.session.scalar(
                    select(col(AdAccount.id)).where(
                        col(AdAccount.seller_id) == seller_id,
                        col(AdAccount.network) == network.identifier,
                    )
                )
            if known is not None:
                continue  # connected at an earlier start
            connected += await _connect_through_consent(
                connections, context, network.identifier, sandbox.approve_consent, callback
            )
        payment_accounts = await _connect_payment_accounts(
            PaymentConnections.for_settings(sessions, settings, registry),
            registry,
            context,
            api_url.rstrip("/"),
            sandbox_urls or {},
        )
        await _set_conversion_destinations(
            ConversionDestinations(context, registry, SecretBox(settings.token_encryption_keys)),
            registry,
            sandbox_urls or {},
        )
        for account_id in connected:
            await plan_backfill(context, account_id, days=settings.backfill_days)
        await _queue_backfills(settings, seller_id, connected)
        sellpage_id = await _demo_sellpage(context)
        box = SecretBox(settings.token_encryption_keys)
        sync = StatsSync(sessions, settings, registry, box, registry.plugin_manager)
        await sync.sync_seller(seller_id, days_back=settings.sync_window_days)
        async with context.scope() as scope:
            linked = await scope.session.execute(
                update(Campaign)
                .where(col(Campaign.seller_id) == seller_id, col(Campaign.sellpage_id).is_(None))
                .values(sellpage_id=sellpage_id)
            )
        if linked.rowcount:  # type: ignore[attr-defined]
            await sync.sync_seller(seller_id, days_back=settings.sync_window_days)
        return DemoActivity(
            accounts_connected=len(connected),
            campaigns_linked=int(linked.rowcount),  # type: ignore[attr-defined]
            payment_accounts_connected=payment_accounts,
        )
    finally:
        await engine.dispose()


async def _connect_through_consent(
    connections: AdConnections,
    context: SellerContext,
    network: str,
    approve_consent: Callable[[str], Awaitable[str]],
    callback: str,
) -> list[uuid.UUID]:
    """The seller's flow: start a connection, approve the sandbox's consent page, complete
    the callback with the code it carries, connect every usable account the grant reaches."""
    started = await connections.start(context, network, redirect_uri=callback)
    if started.authorization_url is None:
        return []
    redirect = await approve_consent(started.authorization_url)
    answer = dict(parse_qsl(urlsplit(redirect).query))
    await connections.complete(
        state=answer.get("state", ""),
        code=answer.get("code"),
        error=answer.get("error"),
        acting_seller_id=context.seller_id,  # the demo acts as its seller, as with a token
    )
    reachable = await connections.reachable_accounts(context, started.id)
    chosen = [
        account.external_id
        for account in reachable
        if not account.connected and account.network_status == AdAccountStatus.ACTIVE.value
    ]
    if not chosen:
        return []
    accounts = await connections.connect_accounts(context, started.id, chosen)
    return [account.id for account in accounts]


async def connect_through_consent(
    connections: PaymentConnections,
    seller: SellerContext,
    gateway: str,
    approve_consent: Callable[[str], Awaitable[str]],
    api_url: str,
) -> bool:
    """Connect the seller's own account at ``gateway`` the way the seller would: start the
    flow, have the sandbox's consent page approved (``approve_consent`` plays the
    seller's browser), and complete the callback with what it redirects back with, acting
    as the seller (as with their token). Return whether it started (a consent URL)."""
    started = await connections.start(
        seller, gateway, redirect_uri=f"{api_url}/payments/connections/callback"
    )
    if started.authorization_url is None:
        return False
    answer = dict(parse_qsl(urlsplit(await approve_consent(started.authorization_url)).query))
    await connections.complete(
        state=answer.get("state", ""),
        code=answer.get("code"),
        error=answer.get("error"),
        acting_seller_id=seller.seller_id,
        webhook_base=api_url,
    )
    return True


async def _connect_payment_accounts(
    connections: PaymentConnections,
    registry: ProviderRegistry,
    context: SellerContext,
    api_url: str,
    sandbox_urls: Mapping[str, str],
) -> int:
    """Connect the demo seller's own account at each payment gateway whose sandbox can play
    the seller — approve its consent page, or hand out credentials — unless one is
    connected already; return how many were connected."""
    connected = 0
    for sandbox in registry.sandboxes():
        try:
            gateway = registry.payment_gateway(sandbox.provider)
        except UnknownProviderError:
            continue
        if not isinstance(gateway, PaymentGatewayConnections):
            continue
        async with context.scope() as scope:
            if await PaymentConnectionRepository(scope).active(gateway.identifier) is not None:
                continue  # connected at an earlier start
        kind = gateway.connection_kind
        if kind is PaymentConnectionKind.OAUTH and sandbox.approve_consent is not None:
            if not await connect_through_consent(
                connections, context, gateway.identifier, sandbox.approve_consent, api_url
            ):
                continue
        elif (
            kind is PaymentConnectionKind.CREDENTIALS
            and sandbox.demo_credentials is not None
            and sandbox.name in sandbox_urls
        ):
            fields = await sandbox.demo_credentials(sandbox_urls[sandbox.name])
            await connections.connect_with_credentials(
                context, gateway.identifier, fields, webhook_base=api_url
            )
        else:
            continue
        connected += 1
    return connected


async def _set_conversion_destinations(
    destinations: ConversionDestinations,
    registry: ProviderRegistry,
    sandbox_urls: Mapping[str, str],
) -> int:
    """Point the demo seller's purchases at each sandbox that keeps a demo pixel (issue
    17), through the same service as ``PUT /conversions/destinations``; once."""
    existing = {view.network for view in await destinations.list()}
    set_now = 0
    for sandbox in registry.sandboxes():
        if (
            sandbox.demo_conversion_destination is None
            or sandbox.name not in sandbox_urls
            or sandbox.provider in existing
        ):
            continue
        destination_id, token = await sandbox.demo_conversion_destination(
            sandbox_urls[sandbox.name]
        )
        await destinations.set(sandbox.provider, destination_id, token)
        set_now += 1
    return set_now


async def _queue_backfills(
    settings: Settings, seller_id: uuid.UUID, account_ids: list[uuid.UUID]
) -> None:
    """Queue each account's history backfill; the backfill worker takes them once it runs."""
    if not account_ids:
        return
    kicker = TaskKicker(build_broker(settings, Queue.BACKFILL))
    try:
        for account_id in account_ids:
            await kicker.backfill_account(settings, seller_id, account_id)
    finally:
        await kicker.close()


async def _demo_sellpage(context: SellerContext) -> uuid.UUID:
    async with context.scope() as scope:
        existing = await scope.session.scalar(
            select(col(Sellpage.id)).where(
                col(Sellpage.seller_id) == context.seller_id, col(Sellpage.slug) == DEMO_SLUG
            )
        )
    if existing is not None:
        return existing
    catalog = CatalogService(context)
    product = await catalog.create_product(sku="DEMO-MUG", name="Demo mug")
    page = await catalog.create_sellpage(
        slug=DEMO_SLUG, title="The demo mug", product_id=product.id
    )
    await catalog.set_price(product.id, None, 1_990, "USD")
    await catalog.update_sellpage(page.id, SellpageChanges(status=SellpageStatus.PUBLISHED))
    return page.id
