"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts."""

from fastapi import APIRouter

from reference_app.api.routes import (
    auth,
    campaigns,
    catalog,
    creatives,
    orders,
    public,
    stats,
    tracking,
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
    stats.router,
    tracking.router,
    uploads.router,
    public.router,
    webhooks.router,
]
