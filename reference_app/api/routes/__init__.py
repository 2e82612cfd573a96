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

#: Every router the app includes, in OpenAPI order (the document lists paths so).
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

#: The routers most requests are for: the storefront, then the seller's dashboard reads.
_BUSIEST: list[APIRouter] = [
    public.router,
    sellpage_pages.router,
    orders.router,
    stats.router,
    campaign_stats.router,
]
#: The order the app includes (and so matches) the routers in: FastAPI tries the routes
#: of one included router after another, each at a cost, and a storefront read spent
#: 0.8 ms finding its route behind the seller API's (py-spy, issue 18). No two routers
#: share a path (``tests/app/test_route_order.py``), so the order changes no answer.
MATCH_ORDER: list[APIRouter] = [*_BUSIEST, *(r for r in ROUTERS if r not in _BUSIEST)]
