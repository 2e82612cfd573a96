"""Demo activity for ``pixecom dev``: the demo seller's shop and ad accounts, synced once.

Dev mode only. For every installed ad network whose sandbox names demo accounts, those
accounts are connected to the demo seller (token encrypted as for any seller); the demo
seller gets a product with a price and a published sellpage; one sync runs at once, the
campaigns it discovers are linked to the sellpage and the sellpage days re-aggregated,
so the first look at the API shows real numbers. The scheduler keeps them current.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import select, update
from sqlmodel import col

from pixecom_core.accounts.demo import DEMO_EMAIL
from pixecom_core.accounts.service import find_login
from pixecom_core.catalog.services import CatalogService, SellpageChanges
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.models.ads import AdAccount, Campaign
from pixecom_core.models.catalog import Sellpage, SellpageStatus
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError, create_plugin_manager
from pixecom_core.providers import AdAccountCredentials
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Mode, Settings
from pixecom_core.stats.sync import StatsSync
from pixecom_core.tenancy import SellerContext

_log = logging.getLogger(__name__)

DEMO_SLUG = "demo-store"
#: The token sandboxes accept for demo accounts (never valid at a real network).
DEMO_TOKEN = "pixecom-dev-demo-token"


@dataclass(frozen=True)
class DemoActivity:
    """What the seeding did."""

    accounts_connected: int
    campaigns_linked: int


async def seed_demo_activity(settings: Settings) -> DemoActivity:
    """Connect sandbox demo accounts to the demo seller and sync them once (dev only)."""
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
        box = SecretBox(settings.token_encryption_keys)
        connected = 0
        for sandbox in registry.sandboxes():
            try:
                network = registry.ad_network(sandbox.provider)
            except UnknownProviderError:
                continue
            for account_id in sandbox.demo_accounts:
                async with context.scope() as scope:
                    exists = await scope.session.scalar(
                        select(col(AdAccount.id)).where(
                            col(AdAccount.seller_id) == seller_id,
                            col(AdAccount.network) == network.identifier,
                            col(AdAccount.external_id) == account_id,
                        )
                    )
                if exists is not None:
                    continue
                info = await network.describe_account(
                    AdAccountCredentials(
                        seller_id=seller_id,
                        account_id=account_id,
                        access_token=SecretStr(DEMO_TOKEN),
                    )
                )
                async with context.scope() as scope:
                    scope.session.add(
                        AdAccount(
                            seller_id=seller_id,
                            network=network.identifier,
                            external_id=account_id,
                            name=info.name,
                            timezone=info.timezone,
                            currency=info.currency,
                            token_ciphertext=box.encrypt(DEMO_TOKEN),
                            token_key_version=box.primary_version,
                        )
                    )
                connected += 1
        sellpage_id = await _demo_sellpage(context)
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
            accounts_connected=connected,
            campaigns_linked=int(linked.rowcount),  # type: ignore[attr-defined]
        )
    finally:
        await engine.dispose()


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
