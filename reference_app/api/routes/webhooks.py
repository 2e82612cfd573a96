"""Payment webhooks: verify, store once, answer 2xx fast (MONEY-3, webhook bursts).

The gateway plugin checks the signature; the raw delivery goes to the inbox, unique on
the gateway's event id, so a redelivery is acknowledged and changes nothing; a worker task
turns it into ledger facts. A delivery whose task cannot be queued right now is still
stored and is picked up by the worker's inbox sweep: nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from pixecom_core.errors import NotFoundError
from pixecom_core.ledger import Receipt
from reference_app.api.errors import error_responses
from reference_app.api.resources import AppResources, ResourcesDep

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class WebhookAck(BaseModel):
    """The delivery is stored; processing happens asynchronously."""

    received: bool = True
    duplicate: bool = Field(description="True when this event id had been stored before.")


@router.post(
    "/{gateway}",
    response_model=WebhookAck,
    summary="Receive a payment gateway's webhook",
    responses=error_responses(400, 404, 413, 422),
)
async def receive_webhook(
    gateway: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)],
    request: Request,
    resources: ResourcesDep,
) -> WebhookAck:
    """400 for a signature the gateway plugin refuses (nothing is stored), 404 for a gateway
    that is not installed, 200 otherwise — also for a replay."""
    body = await request.body()
    receipt = await resources.inbox.receive(gateway, body=body, headers=dict(request.headers))
    return await _queued(resources, receipt)


@router.post(
    "/{gateway}/accounts/{account_id}",
    response_model=WebhookAck,
    summary="Receive a webhook from a seller's own gateway app",
    responses=error_responses(400, 404, 413, 422),
)
async def receive_account_webhook(
    gateway: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)],
    account_id: Annotated[str, Path(min_length=1, max_length=255)],
    request: Request,
    resources: ResourcesDep,
) -> WebhookAck:
    """Where a seller's own app at the gateway (a PayPal REST app) sends its notifications,
    set up when the seller connected it: verified as that account's, recorded only for the
    seller who connected it. 404 ``unknown_account`` when no seller has the account
    connected now; otherwise as ``POST /webhooks/{gateway}``."""
    found = await resources.payment_connections.account_by_id(gateway, account_id)
    if found is None:
        raise NotFoundError("no seller has this account connected", code="unknown_account")
    body = await request.body()
    receipt = await resources.inbox.receive(
        gateway, body=body, headers=dict(request.headers), account=found[1]
    )
    return await _queued(resources, receipt)


async def _queued(resources: AppResources, receipt: Receipt) -> WebhookAck:
    """Queue a new delivery's processing; a delivery whose task cannot be queued now is
    picked up by the worker's inbox sweep."""
    if not receipt.duplicate:
        try:
            await resources.tasks.process_webhook(receipt.inbox_id)
        except Exception:
            _log.warning("could not queue webhook %s; the inbox sweep will", receipt.inbox_id)
    return WebhookAck(duplicate=receipt.duplicate)
