"""Checkout: a shopper orders from a published sellpage and is handed to a gateway.

The price is read from the database at the moment of the order (never from the request),
the order is written ``PENDING`` with a ``CREATED`` event, then the chosen gateway plugin
creates its payment object with the order id as idempotency key, and the payment id is
registered in ``order_payments`` — whose trigger claims it in the payment directory, so
the gateway's webhooks find this seller and order. Money state is never written here: it
comes from the ledger once the gateway reports a capture. The order keeps where the
shopper came from (issue 16 item 3): the landing URL's UTM parameters, ``fbclid`` and
ad-network ids, validated by :mod:`pixecom_core.orders.attribution` before anything is
written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.catalog.repositories import (
    PricingRuleRepository,
    ProductRepository,
    PublicSlugDirectory,
    SellpageRepository,
)
from pixecom_core.catalog.storefront import is_valid_slug
from pixecom_core.dashboard_cache import DashboardPart, dashboard_changed_on_commit
from pixecom_core.errors import ConflictError, InvalidRequestError, NotFoundError
from pixecom_core.models.catalog import ProductStatus, SellpageStatus
from pixecom_core.models.orders import OrderEventType, OrderStatus
from pixecom_core.orders.attribution import Attribution, ShopperContext, checkout_attribution
from pixecom_core.orders.status import record_order_event
from pixecom_core.payments.connections import PaymentConnections
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import MerchantAccount, PaymentRequest, PaymentSession
from pixecom_core.providers.values import MAX_AMOUNT_MINOR, MAX_QUANTITY
from pixecom_core.settings import Settings
from pixecom_core.tenancy import open_seller_scope

_INSERT_ORDER = text(
    """
    INSERT INTO orders (seller_id, id, created_at, status, sellpage_id, attributed_at, currency,
                        subtotal_minor, total_minor, customer_email, payment_gateway,
                        utm_source, utm_medium, utm_campaign, utm_content, utm_term, fbclid,
                        campaign_ref, adset_ref, ad_ref, landing_url, fbp, fbc, client_ip,
                        user_agent)
    VALUES (:seller_id, :id, :created_at, 'PENDING', :sellpage_id, :created_at, :currency,
            :total_minor, :total_minor, :customer_email, :gateway,
            :utm_source, :utm_medium, :utm_campaign, :utm_content, :utm_term, :fbclid,
            :campaign_ref, :adset_ref, :ad_ref, :landing_url, :fbp, :fbc, :client_ip,
            :user_agent)
    """
)
_REGISTER_PAYMENT = text(
    """
    INSERT INTO order_payments
        (seller_id, gateway, payment_id, order_id, order_created_at, account_id)
    VALUES (:seller_id, :gateway, :payment_id, :order_id, :created_at, :account_id)
    """
)
_SET_PAYMENT_ID = text(
    "UPDATE orders SET payment_id = :payment_id, updated_at = now()"
    " WHERE seller_id = :seller_id AND id = :order_id AND created_at = :created_at"
)


@dataclass(frozen=True)
class CheckoutRequest:
    """What a shopper submits.

    :param landing_url: the URL the shopper landed on (the ad's destination with its
        parameters); its attribution is read with :meth:`Attribution.from_landing_url`.
    :param attribution: attribution the storefront read itself; each field it gives wins
        over the landing URL's.
    :param shopper: the pixel's browser ids and the shopper's address and browser, for
        the conversions APIs (issue 17); malformed values were dropped already.
    """

    slug: str
    gateway: str
    customer_email: str
    quantity: int
    return_url: str
    cancel_url: str
    landing_url: str | None = None
    attribution: Attribution | None = None
    shopper: ShopperContext | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """A pending order and what the shopper needs to pay for it."""

    order_id: uuid.UUID
    amount_minor: int
    currency: str
    session: PaymentSession


class Checkout:
    """Places orders from the public storefront.

    :param sessions: app-role session factory.
    :param registry: finds the gateway the shopper chose.
    :param connections: the sellers' own gateway accounts: a gateway that implements
        connections charges the sellpage owner's account, and only that (issue 15 item 2).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        connections: PaymentConnections,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._connections = connections

    async def place_order(self, request: CheckoutRequest) -> PlacedOrder:
        """Create the order and its gateway payment.

        Raises :class:`NotFoundError` for a slug that is not a published sellpage with a
        product on sale, :class:`InvalidRequestError` for a quantity out of range, a
        product without a price or a total above ``MAX_AMOUNT_MINOR``,
        :class:`~pixecom_core.orders.attribution.InvalidAttributionError` (an
        ``InvalidRequestError``) for a landing URL or attribution value out of bounds,
        :class:`pixecom_core.plugins.UnknownProviderError` for a gateway that is not
        installed, :class:`~pixecom_core.payments.PaymentConnectionRequired` when the
        gateway needs the seller's own account and the seller has none connected (nothing
        is written then), and the gateway's
        :class:`pixecom_core.providers.ProviderError` when it refuses — the order then
        stays PENDING without a payment, and nothing was charged.
        """
        if not 1 <= request.quantity <= MAX_QUANTITY:
            raise InvalidRequestError(
                f"quantity must be between 1 and {MAX_QUANTITY}", code="invalid_quantity"
            )
        attribution = checkout_attribution(request.landing_url, request.attribution)
        gateway = self._registry.payment_gateway(request.gateway)
        if not is_valid_slug(request.slug):
            raise NotFoundError("no published sellpage at this address")
        async with self._sessions() as session:
            claim = await PublicSlugDirectory(session).resolve(request.slug)
        if claim is None:
            raise NotFoundError("no published sellpage at this address")
        seller_id = claim.seller_id
        order_id = uuid.uuid4()
        created_at = datetime.now(UTC)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            sellpage = await SellpageRepository(scope).get(claim.sellpage_id)
            if sellpage is None or sellpage.status is not SellpageStatus.PUBLISHED:
                raise NotFoundError("no published sellpage at this address")
            product = (
                await ProductRepository(scope).get(sellpage.product_id)
                if sellpage.product_id is not None
                else None
            )
            if product is None or product.status is not ProductStatus.ACTIVE:
                raise NotFoundError("this sellpage has nothing on sale")
            rule = await PricingRuleRepository(scope).rule_in_effect(
                product.id, sellpage.id, created_at
            )
            if rule is None:
                raise InvalidRequestError("this product has no price yet", code="no_price")
            total = rule.price_minor * request.quantity
            account: MerchantAccount | None = None
            if self._connections.needs_connection(gateway):
                # Issue 15 item 2: the sellpage owner's account, never the platform's.
                account = await self._connections.account_for(scope, gateway.identifier)
            if total > MAX_AMOUNT_MINOR:
                # Issue 12 item 5: the total is an amount like any other; a larger one
                # would reach the gateway (which caps far lower) and the seller's stats.
                raise InvalidRequestError(
                    f"the order total exceeds {MAX_AMOUNT_MINOR} minor units; order fewer",
                    code="amount_too_large",
                )
            keys = {"seller_id": seller_id, "order_id": order_id, "created_at": created_at}
            await scope.session.execute(
                _INSERT_ORDER,
                {
                    "seller_id": seller_id,
                    "id": order_id,
                    "created_at": created_at,
                    "sellpage_id": sellpage.id,
                    "currency": rule.currency,
                    "total_minor": total,
                    "customer_email": request.customer_email,
                    "gateway": gateway.identifier,
                    **attribution.model_dump(),
                    # Kept whole: the conversions API's event_source_url (issue 17).
                    "landing_url": request.landing_url,
                    **(request.shopper or ShopperContext()).model_dump(),
                },
            )
            await record_order_event(
                scope,
                order_id=order_id,
                event_type=OrderEventType.CREATED,
                to_status=OrderStatus.PENDING,
                payload={
                    "quantity": request.quantity,
                    "unit_price_minor": rule.price_minor,
                    "pricing_rule_id": str(rule.id),
                },
            )
        # The gateway call happens outside any transaction: no lock or connection is held
        # while a remote service answers.
        payment = await gateway.create_payment(
            PaymentRequest(
                idempotency_key=f"order:{order_id}",
                seller_id=seller_id,
                order_id=order_id,
                amount_minor=total,
                currency=rule.currency,
                return_url=request.return_url,
                cancel_url=request.cancel_url,
                description=sellpage.title[:22] or None,
                metadata={"order_id": str(order_id), "seller_id": str(seller_id)},
                account=account,
                application_fee_minor=(
                    total * self._settings.platform_fee_basis_points // 10_000
                    if account is not None and self._settings.platform_fee_basis_points
                    else None
                ),
            )
        )
        try:
            async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
                await scope.session.execute(
                    _REGISTER_PAYMENT,
                    {
                        **keys,
                        "gateway": gateway.identifier,
                        "payment_id": payment.gateway_reference,
                        "account_id": account.account_id if account is not None else None,
                    },
                )
                await scope.session.execute(
                    _SET_PAYMENT_ID, {**keys, "payment_id": payment.gateway_reference}
                )
                # The orders list shows the payment id (the order's creation marked too).
                dashboard_changed_on_commit(scope, {DashboardPart.ORDERS})
        except IntegrityError as exc:
            # The gateway handed out a payment id another order holds (MONEY-2).
            raise ConflictError(
                "the gateway returned a payment that belongs to another order",
                code="payment_conflict",
            ) from exc
        return PlacedOrder(
            order_id=order_id, amount_minor=total, currency=rule.currency, session=payment
        )
