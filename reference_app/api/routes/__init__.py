"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts."""

from fastapi import APIRouter

from reference_app.api.routes import (
    ad_accounts,
    ad_networks,
    auth,
    campaign_stats,
    campaigns,
    catalog,
    conversions,
    creatives,
    fx,
    orders,
    payment_connections,
    problems,
    public,
    sellpage_pages,
    stats,
    tracking,
    tracking_records,
    uploads,
    webhooks,
)

#: Every router the app includes, in OpenAPI order.
ROUTERS: list[APIRouter] = [
    auth.router,
    catalog.router,
    campaigns.router,
    creatives.router,
    orders.router,
    payment_connections.router,
    stats.router,
    conversions.router,
    fx.router,
    campaign_stats.router,
    ad_accounts.router,
    ad_networks.router,
    problems.router,
    tracking.router,
    tracking_records.router,
    uploads.router,
    public.router,
    sellpage_pages.router,
    webhooks.router,
]
