"""A seller's own gateway accounts: connect Stripe (consent page) or PayPal (credentials),
see how each connection stands, disconnect (issue 15 item 1).

Thin over :class:`pixecom_core.payments.connections.PaymentConnections`, and shaped like
the ad-account flow (:mod:`reference_app.api.routes.ad_accounts`): the callback is reached
by the seller's browser coming back from the gateway without a bearer token, so the
signed, single-use ``state`` names the seller and a cookie set when the flow started binds
it to that browser. Credentials and the stored account are never part of a response.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pixecom_core.ad_accounts.connections import (
    ConnectionRefused,
)
from pixecom_core.errors import PermissionDeniedError
from pixecom_core.models.payments import PaymentConnectionStatus
from pixecom_core.payments.connections import (
    AccountTakenError,
    ConnectionView,
    GatewayConnectOption,
    StartedPaymentConnection,
)
from pixecom_core.providers import PaymentConnectionKind
from reference_app.api.consent import binding_cookies, browser_refusal, set_binding_cookie
from reference_app.api.dependencies import CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.routes.ad_accounts import acting_seller_id

router = APIRouter(tags=["payments"])

#: Where the callback sends the seller's browser: the dashboard's Payments page.
PAYMENTS_PAGE = "/dashboard/payments"
#: The callback's path: the browser-binding cookie is sent there only.
CALLBACK_PATH = "/payments/connections/callback"


class CredentialFieldOut(BaseModel):
    """A field of a credentials gateway's connect form."""

    name: str
    label: str
    secret: bool = Field(description="Mask the input; the value is never shown again.")


class GatewayOptionOut(BaseModel):
    """A gateway the seller can connect an account of, and how."""

    gateway: str
    display_name: str
    kind: PaymentConnectionKind = Field(
        description="oauth: open the consent page; credentials: send credential_fields."
    )
    credential_fields: list[CredentialFieldOut]

    @classmethod
    def of(cls, option: GatewayConnectOption) -> GatewayOptionOut:
        return cls(
            gateway=option.gateway,
            display_name=option.display_name,
            kind=option.kind,
            credential_fields=[
                CredentialFieldOut(name=f.name, label=f.label, secret=f.secret)
                for f in option.credential_fields
            ],
        )


class PaymentConnectionIn(BaseModel):
    """Connect a gateway account: without ``credentials`` for a consent-page gateway (open
    the answer's ``authorization_url``), with them for a credentials gateway."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"gateway": "example_pay"}]}
    )

    gateway: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    credentials: dict[str, SecretStr] | None = Field(
        default=None,
        max_length=8,
        description="One value per credential field the gateway lists; checked with the "
        "gateway before anything is stored, then stored encrypted.",
    )


class PaymentConnectionOut(BaseModel):
    """A connection of the seller's own gateway account (never its credentials).

    ``status``: PENDING (consent not finished), ACTIVE (payments go to this account),
    REFUSED (see ``refusal``), REVOKED (access taken away at the gateway: checkout on this
    gateway is stopped until you connect again), DISCONNECTED."""

    id: uuid.UUID
    gateway: str
    status: PaymentConnectionStatus
    account_id: str | None = Field(description="The gateway's id of your account.")
    display_name: str | None
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    refusal: str | None
    authorization_url: str | None = Field(
        default=None, description="The gateway's consent page (valid 10 minutes, once)."
    )

    @classmethod
    def of(cls, view: ConnectionView, authorization_url: str | None = None) -> PaymentConnectionOut:
        return cls(
            id=view.id,
            gateway=view.gateway,
            status=view.status,
            account_id=view.account_id,
            display_name=view.display_name,
            created_at=view.created_at,
            connected_at=view.connected_at,
            ended_at=view.ended_at,
            refusal=view.refusal,
            authorization_url=authorization_url,
        )

    @classmethod
    def started(cls, started: StartedPaymentConnection) -> PaymentConnectionOut:
        return cls.of(started.connection, started.authorization_url)


@router.get(
    "/payments/gateways",
    response_model=list[GatewayOptionOut],
    summary="Gateways the seller can connect an own account of",
    responses=error_responses(401, 429),
)
async def list_gateway_options(
    seller: CurrentSeller,  # noqa: ARG001 (authenticated and counted like every seller route)
    resources: ResourcesDep,
) -> list[GatewayOptionOut]:
    """The installed gateways that take payments into sellers' own accounts, and how each
    connects (consent page or credentials, with the fields to fill in)."""
    return [GatewayOptionOut.of(option) for option in resources.payment_connections.options()]


@router.get(
    "/payments/connections",
    response_model=list[PaymentConnectionOut],
    summary="The seller's payment connections, newest first",
    responses=error_responses(401, 429),
)
async def list_payment_connections(
    seller: CurrentSeller, resources: ResourcesDep
) -> list[PaymentConnectionOut]:
    """Every connection of the seller, newest first, ended ones included."""
    views = await resources.payment_connections.list(seller)
    return [PaymentConnectionOut.of(view) for view in views]


@router.post(
    "/payments/connections",
    response_model=PaymentConnectionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Connect an own gateway account",
    responses=error_responses(400, 401, 409, 422, 429, 502, 503),
)
async def start_payment_connection(
    body: PaymentConnectionIn,
    seller: CurrentSeller,
    resources: ResourcesDep,
    request: Request,
    response: Response,
) -> PaymentConnectionOut:
    """A consent-page gateway: a PENDING connection and its ``authorization_url`` (signed
    state, single use, 10 minutes). A credentials gateway: the gateway checks them, then
    the connection is ACTIVE at once. 400 ``unknown_gateway``, ``gateway_cannot_connect``,
    ``credentials_required``, ``consent_required``, ``missing_fields``,
    ``credentials_refused``; 409 ``payment_account_taken`` when another seller connected
    that account."""
    service = resources.payment_connections
    if body.credentials is not None:
        fields = {name: value.get_secret_value() for name, value in body.credentials.items()}
        view = await service.connect_with_credentials(
            seller, body.gateway, fields, webhook_base=str(request.base_url)
        )
        return PaymentConnectionOut.of(view)
    redirect_uri = str(request.url_for("complete_payment_connection"))
    started = await service.start(seller, body.gateway, redirect_uri=redirect_uri)
    connection_id = started.connection.id
    set_binding_cookie(
        response, request, connection_id, service.browser_binding(connection_id), path=CALLBACK_PATH
    )
    return PaymentConnectionOut.started(started)


@router.get(
    "/payments/connections/callback",
    name="complete_payment_connection",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Where the gateway sends the seller back after consent",
    responses={
        303: {"description": "Connected: on to the dashboard's Payments page."},
        **error_responses(400, 401, 403, 409, 422, 429, 502, 503),
    },
)
async def complete_payment_connection(
    resources: ResourcesDep,
    request: Request,
    acting_seller: Annotated[uuid.UUID | None, Depends(acting_seller_id)],
    state: Annotated[str, Query(min_length=1, max_length=2048)],
    code: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    """Verifies the state (signature, expiry, single use, same seller or browser),
    exchanges the code, stores the account encrypted and redirects (303) to the Payments
    page. A refusal answers 400 (403 for another seller's state; 409 for an account
    another seller connected); a browser (``Accept: text/html``) is sent to the Payments
    page with ``?error=<code>`` instead."""
    try:
        view = await resources.payment_connections.complete(
            state=state,
            code=code,
            error=error,
            acting_seller_id=acting_seller,
            browser_bindings=binding_cookies(request),
            webhook_base=str(request.base_url),
        )
    except (ConnectionRefused, PermissionDeniedError, AccountTakenError) as refused:
        redirect = browser_refusal(request, PAYMENTS_PAGE, refused.code)
        if redirect is None:
            raise
        return redirect
    return RedirectResponse(
        f"{PAYMENTS_PAGE}?connection={view.id}", status_code=status.HTTP_303_SEE_OTHER
    )


@router.get(
    "/payments/connections/{payment_connection_id:uuid}",
    response_model=PaymentConnectionOut,
    summary="One payment connection",
    responses=error_responses(401, 404, 422, 429),
)
async def get_payment_connection(
    payment_connection_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> PaymentConnectionOut:
    """One of the seller's connections; 404 for any other id."""
    view = await resources.payment_connections.get(seller, payment_connection_id)
    return PaymentConnectionOut.of(view)


@router.delete(
    "/payments/connections/{payment_connection_id:uuid}",
    response_model=PaymentConnectionOut,
    summary="Disconnect an own gateway account",
    responses=error_responses(401, 404, 422, 429),
)
async def disconnect_payment_connection(
    payment_connection_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> PaymentConnectionOut:
    """Stops using the account (checkout on that gateway stops until another is
    connected), asks the gateway to drop PixEcom's access where it can, and erases the
    stored account. Refunds of its payments need it connected again."""
    view = await resources.payment_connections.disconnect(seller, payment_connection_id)
    return PaymentConnectionOut.of(view)
