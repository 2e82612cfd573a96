"""Stripe Checkout on loopback: Checkout Sessions in ``mode=payment`` and the hosted page
the buyer pays on.

Each behaviour follows Stripe's documentation:

- ``POST /v1/checkout/sessions`` (``create_checkout_session``,
  https://docs.stripe.com/api/checkout/sessions/create): ``mode=payment``, ``line_items``
  with ``price_data`` (``currency``, ``unit_amount``, ``product_data[name]``) and
  ``quantity``, ``success_url``, ``cancel_url``, ``client_reference_id``, ``metadata``, and
  ``payment_intent_data`` (``metadata``, ``description``, ``application_fee_amount``, which
  needs a ``Stripe-Account`` as on a PaymentIntent: a direct charge,
  https://docs.stripe.com/connect/direct-charges?ui=stripe-hosted). The session answers
  ``status: open``, ``payment_status: unpaid``, ``amount_total``, ``expires_at`` (24 hours, Stripe's
  default) and ``url``, the hosted page; ``payment_intent`` is ``null``: since API version
  2022-08-01 the PaymentIntent is created only when the buyer confirms
  (https://docs.stripe.com/changelog/2022-08-01/deferred-paymentintent-checkout-session).
- ``GET /v1/checkout/sessions/{id}`` (``retrieve_checkout_session``) and
  ``GET /v1/checkout/sessions`` (``list_checkout_sessions``; ``payment_intent``, ``limit``;
  https://docs.stripe.com/api/checkout/sessions/list), scoped by ``Stripe-Account`` like
  every object.
- The hosted page ``GET /c/pay/{id}`` (Stripe's is ``https://checkout.stripe.com/c/pay/
  cs_…``): the amount, a "Pay" and a "Cancel" button (``checkout_page``, logged only: a
  browser page takes no injected faults). Pay does what paying with a working card does
  (https://docs.stripe.com/checkout/fulfillment): the PaymentIntent is created with
  ``payment_intent_data`` and succeeds as ``POST /_sandbox/payment_intents/{id}/succeed``
  makes it (``payment_intent.created``, ``charge.succeeded``,
  ``payment_intent.succeeded``), the session becomes ``complete``/``paid`` naming it
  (``checkout.session.completed``), and the browser is sent (303) to ``success_url``
  with ``{CHECKOUT_SESSION_ID}`` replaced by the session's id
  (https://docs.stripe.com/payments/checkout/custom-success-page). Cancel is the page's
  back link: the browser goes to ``cancel_url`` and the session stays open, as on Stripe.
  A completed session's page sends the browser to ``success_url`` again, paying nothing.
  Not imitated: sessions do not expire (``expires_at`` is only reported), and the page
  takes no card details: Pay is always a card that works (declines are played on bare
  PaymentIntents, ``POST /_sandbox/payment_intents/{id}/fail``).
- Control: ``POST /_sandbox/checkout/sessions/{id}/complete`` pays as the Pay button does,
  without the browser.
"""

import copy
import html
from typing import TYPE_CHECKING, Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response

if TYPE_CHECKING:
    from pixecom_stripe.sandbox import SandboxAccount

#: How long a session can be paid (Stripe's default ``expires_at``).
SESSION_LIFETIME_SECONDS: Final = 24 * 3600
#: The hosted page's path; Stripe serves it on checkout.stripe.com.
PAGE_PATH: Final = "/c/pay/"
SESSION_ID_TEMPLATE: Final = "{CHECKOUT_SESSION_ID}"
#: Currencies without a minor unit (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL: Final = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
_ALLOWED: Final = {
    "mode",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "line_items",
    "metadata",
    "payment_intent_data",
    "expand",
}
_INTENT_DATA: Final = {"metadata", "description", "application_fee_amount"}

StripeObject = dict[str, Any]


def create_session(
    account: "SandboxAccount",
    params: StripeObject,
    *,
    page_base: str,
    on_account: str | None,
) -> StripeObject:
    """A new open Checkout Session (see the module's docstring), its page on ``page_base``."""
    from pixecom_stripe.sandbox import (
        StripeApiError,
        _missing,
        _parse_integer,
        _parse_metadata,
        _refuse_unknown,
    )

    _refuse_unknown(params, _ALLOWED)
    if params.get("mode") is None:
        raise _missing("mode")
    if params["mode"] != "payment":
        raise StripeApiError(
            400, "This sandbox supports mode=payment only.", code="parameter_invalid_string"
        )
    for name in ("success_url", "cancel_url"):
        if not str(params.get(name, "")).startswith(("http://", "https://")):
            raise StripeApiError(400, f"Not a valid URL: {name}", param=name)
    raw_items = params.get("line_items")
    if not isinstance(raw_items, dict) or not raw_items:
        raise _missing("line_items")
    amount, currency = 0, None
    for index, item in sorted(raw_items.items()):
        where = f"line_items[{index}]"
        price = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price, dict):
            raise _missing(f"{where}[price_data]")
        unit = _parse_integer(price, "unit_amount", minimum=0)
        quantity = _parse_integer(item, "quantity", minimum=1)
        if unit is None or quantity is None:
            raise _missing(f"{where}[price_data][unit_amount] or {where}[quantity]")
        product = price.get("product_data")
        if not isinstance(product, dict) or not product.get("name"):
            raise _missing(f"{where}[price_data][product_data][name]")
        item_currency = str(price.get("currency", "")).lower()
        if currency not in (None, item_currency):
            raise StripeApiError(
                400, "All line items must share one currency.", param=f"{where}[price_data]"
            )
        currency = item_currency
        amount += unit * quantity
    intent_data = params.get("payment_intent_data", {})
    if not isinstance(intent_data, dict):
        raise StripeApiError(400, "Invalid hash", param="payment_intent_data")
    _refuse_unknown(intent_data, _INTENT_DATA)
    fee = _parse_integer(intent_data, "application_fee_amount", minimum=0)
    if fee is not None and on_account is None:
        raise StripeApiError(
            400,
            "Can only apply an application_fee_amount when the Checkout Session is attempting "
            "a direct payment (using an OAuth key or Stripe-Account header) or destination "
            "payment (using `payment_intent_data[transfer_data][destination]`).",
            param="payment_intent_data[application_fee_amount]",
        )
    # checked now, as Stripe does, though the PaymentIntent comes later
    _parse_metadata(intent_data)
    session_id = "cs_test_" + account.kit.new_id("", 58)
    created = int(account.clock())
    session: StripeObject = {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "cancel_url": params["cancel_url"],
        "client_reference_id": params.get("client_reference_id"),
        "created": created,
        "currency": currency,
        "customer_email": params.get("customer_email"),
        "expires_at": created + SESSION_LIFETIME_SECONDS,
        "livemode": False,
        "metadata": _parse_metadata(params),
        "mode": "payment",
        "payment_intent": None,
        "payment_status": "unpaid",
        "status": "open",
        "success_url": params["success_url"],
        "url": f"{page_base.rstrip('/')}{PAGE_PATH}{session_id}",
    }
    account.checkout_sessions[session_id] = session
    account.checkout_intent_data[session_id] = copy.deepcopy(intent_data)
    account.owner.mark(session_id, on_account)
    return session


def complete_session(account: "SandboxAccount", session_id: str) -> StripeObject:
    """The buyer pays with a working card: the PaymentIntent is created and succeeds, then
    ``checkout.session.completed``. A completed session is answered as it is."""
    session = found_session(account, session_id)
    if session["status"] == "complete":
        return session
    intent_data = account.checkout_intent_data[session_id]
    params: StripeObject = {
        "amount": str(session["amount_total"]),
        "currency": session["currency"],
        "metadata": intent_data.get("metadata", {}),
    }
    for name in ("description", "application_fee_amount"):
        if name in intent_data:
            params[name] = intent_data[name]
    intent = account.create_payment_intent(
        params, request=(None, None), on_account=account.owner.get(session_id)
    )
    account.succeed(intent["id"])
    before = copy.deepcopy(session)
    session.update(payment_intent=intent["id"], payment_status="paid", status="complete")
    account.emit("checkout.session.completed", session, before=before)
    return session


def found_session(account: "SandboxAccount", session_id: str) -> StripeObject:
    from pixecom_stripe.sandbox import _no_such

    session = account.checkout_sessions.get(session_id)
    if session is None:
        raise _no_such("checkout.session", session_id, "session")
    return session


def checkout_routes(
    app: FastAPI, account: "SandboxAccount", api_key: Any, on_account: Any, idempotent: Any
) -> None:
    """Add Checkout's routes to the sandbox ``app`` (``api_key``, ``on_account``: its API-call
    dependencies; ``idempotent``: its ``Idempotency-Key`` runner)."""
    from pixecom_stripe.sandbox import _form_pairs

    @app.post("/v1/checkout/sessions")
    async def create_checkout_session(
        request: Request, key: api_key, connected: on_account
    ) -> JSONResponse:
        result: JSONResponse = await idempotent(
            request,
            key,
            lambda params: create_session(
                account,
                params,
                page_base=str(request.base_url),
                on_account=connected,
            ),
            connected,
        )
        return result

    @app.get("/v1/checkout/sessions")
    async def list_checkout_sessions(request: Request, connected: on_account) -> StripeObject:
        from pixecom_stripe.sandbox import _refuse_unknown

        params = dict(request.query_params)
        _refuse_unknown(params, {"payment_intent", "limit"})
        return account.page(
            "checkout.session",
            account.checkout_sessions,
            params,
            "/v1/checkout/sessions",
            connected,
            ("payment_intent",),
        )

    @app.get("/v1/checkout/sessions/{session_id}")
    async def retrieve_checkout_session(session_id: str, connected: on_account) -> StripeObject:
        return account.owned("checkout.session", found_session(account, session_id), connected)

    @app.get(PAGE_PATH + "{session_id}")
    async def checkout_page(session_id: str, request: Request) -> Response:
        account.kit.requests.record(request, operation="checkout_page")
        session = account.checkout_sessions.get(session_id)
        if session is None:
            return HTMLResponse("<h1>Something went wrong</h1>", status_code=404)
        if session["status"] == "complete":
            return _to_success(session)
        escaped = html.escape(session_id)
        return HTMLResponse(
            "<!doctype html><html lang=en><title>Stripe Checkout (sandbox)</title>"
            f"<h1>Pay {html.escape(_shown_amount(session))}</h1>"
            f'<form method="post" action="{PAGE_PATH}{escaped}">'
            '<button id="pay" name="action" value="pay">Pay</button> '
            '<button id="cancel" name="action" value="cancel">Cancel</button></form></html>'
        )

    @app.post(PAGE_PATH + "{session_id}")
    async def checkout_decision(session_id: str, request: Request) -> Response:
        account.kit.requests.record(request, operation="checkout_page")
        session = account.checkout_sessions.get(session_id)
        if session is None:
            return HTMLResponse("<h1>Something went wrong</h1>", status_code=404)
        action = dict(await _form_pairs(request)).get("action", "pay")
        if action == "cancel" and session["status"] == "open":
            return RedirectResponse(session["cancel_url"], status_code=303)
        complete_session(account, session_id)
        return _to_success(session)

    @app.post("/_sandbox/checkout/sessions/{session_id}/complete")
    async def control_complete(session_id: str) -> StripeObject:
        """Pay the session as its page's Pay button does."""
        return complete_session(account, session_id)


def _to_success(session: StripeObject) -> RedirectResponse:
    target = str(session["success_url"]).replace(SESSION_ID_TEMPLATE, session["id"])
    return RedirectResponse(target, status_code=303)


def _shown_amount(session: StripeObject) -> str:
    currency = str(session["currency"])
    amount = int(session["amount_total"])
    if currency in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"
