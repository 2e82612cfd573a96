"""The ad networks this deployment can connect: what the dashboard's "Connect" offers.

Read from the plugins' registrations (:class:`~pixecom_core.plugins.ProviderRegistry`), so
a network appears when its plugin is installed and no name is written here (issue 13
item 6). The seller's own accounts are ``GET /ad-accounts``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pixecom_core.plugins import ProviderKind
from pixecom_core.providers.ad_networks import AdNetworkAuthorization, AuthorizationKind
from reference_app.api.dependencies import access_claims
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(tags=["ad accounts"])


class AdNetworkOut(BaseModel):
    """One installed ad network."""

    identifier: str = Field(description='What "network" names in POST /ad-accounts/connections.')
    display_name: str
    authorization_kind: AuthorizationKind | None = Field(
        description="oauth: connect through the network's consent page; token: paste a token "
        "the network's own UI issued; null: its plugin cannot connect sellers' accounts."
    )


class AdNetworksOut(BaseModel):
    """Every installed ad network, by identifier."""

    networks: list[AdNetworkOut]


@router.get(
    "/ad-networks",
    response_model=AdNetworksOut,
    summary="The ad networks a seller can connect",
    responses=error_responses(401, 429),
    # Only a logged-in seller may ask; the answer is not the seller's own.
    dependencies=[Depends(access_claims)],
)
async def list_ad_networks(resources: ResourcesDep) -> AdNetworksOut:
    """Every ad network an installed plugin provides, sorted by identifier, and how a
    seller connects it. The list is the same for every seller of the deployment."""
    registry = resources.providers
    networks = []
    for identifier in registry.names(ProviderKind.AD_NETWORK):
        network = registry.ad_network(identifier)
        networks.append(
            AdNetworkOut(
                identifier=identifier,
                display_name=network.display_name,
                authorization_kind=network.authorization_kind
                if isinstance(network, AdNetworkAuthorization)
                else None,
            )
        )
    return AdNetworksOut(networks=networks)
