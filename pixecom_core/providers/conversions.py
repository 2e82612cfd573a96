"""Server-side conversion events: telling an ad network which clicks bought (issue 17).

A network's delivery optimisation learns from the purchases its ads lead to. The browser
reports them through the network's pixel, which ad blockers and browsers lose; the server
reports them again through the network's conversions API, and the network de-duplicates
the two by the event id they share. PixEcom sends one ``Purchase`` per order, with the
order id as event id, once the ledger has the order's money — after the transaction that
made it PAID committed, from a durable outbox, retried with backoff and dead-lettered when
it keeps failing, never twice for one order (a refund or a replayed webhook sends
nothing).

An ad-network plugin that can receive such events implements
:class:`ConversionsDestination` on the object it returns from
``pixecom_register_ad_networks``; core finds it by the network's identifier, for each
seller who configured a destination (a pixel or dataset id and an access token, stored
encrypted). The plugin turns :class:`ConversionEvent` into its network's wire format,
normalising and hashing the customer's data as the network specifies — core hands it the
raw values and never logs them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, Field, SecretStr

from pixecom_core.providers.values import CurrencyCode, FrozenValue, MinorUnits


class ConversionDestination(FrozenValue):
    """Where a seller's events go at one network.

    :param seller_id: the seller.
    :param destination_id: the network's id of the receiving object (Meta: the pixel or
        dataset id).
    :param access_token: the token the seller gave for sending events; never logged.
    :param test_event_code: the network's code that routes events to its test view, if
        the seller set one.
    """

    seller_id: uuid.UUID
    destination_id: str = Field(min_length=1, max_length=64)
    access_token: SecretStr
    test_event_code: str | None = None


class ConversionEvent(FrozenValue):
    """One conversion, as core knows it.

    :param event_id: de-duplication key shared with the browser's pixel event: the order id.
    :param event_name: the network-neutral name; ``"Purchase"``.
    :param event_time: when it happened (the capture's time), timezone-aware.
    :param event_source_url: the page the shopper bought on (the sellpage's address).
    :param value_minor: the order's value in minor units of ``currency``.
    :param currency: ISO 4217 code.
    :param order_id: core's order id.
    :param email: the customer's e-mail as entered; the plugin normalises and hashes it.
    :param phone: the customer's phone as entered, if any; normalised and hashed likewise.
    :param client_ip: the shopper's address as the API saw it at checkout.
    :param user_agent: the shopper's browser at checkout.
    :param browser_ids: identifiers the network's pixel keeps in the shopper's browser,
        by the network's own names, as captured at checkout (Meta: ``fbp``, ``fbc``).
    :param click_id: the network's click id from the landing URL, if any (Meta:
        ``fbclid``).
    """

    event_id: str = Field(min_length=1, max_length=64)
    event_name: str = "Purchase"
    event_time: AwareDatetime
    event_source_url: str | None = None
    value_minor: MinorUnits
    currency: CurrencyCode
    order_id: uuid.UUID
    email: str | None = None
    phone: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    browser_ids: Mapping[str, str] = Field(default_factory=dict)
    click_id: str | None = None


class BrowserTag(FrozenValue):
    """The network's pixel on the shopper's page (issue 17 item 4), as its plugin writes it.

    The sellpage runs ``init_js`` when the page opens — as networks publish their base
    code, it defines the tag's command queue and loads ``script_url`` itself (Meta's
    library throws when loaded before its queue exists) — and allows ``script_url``'s
    origin in its Content-Security-Policy. After an order is placed it runs
    ``purchase_js`` with ``orderId``, ``value`` (major units, a number) and ``currency``
    in scope, so the browser's event carries the same event id as the server's and the
    network counts the purchase once.

    :param script_url: the network's tag library (an ``https://`` URL; the plugin may
        point it elsewhere by its settings, e.g. at its sandbox): what the page's policy
        must allow.
    :param init_js: JavaScript run when the page opens: the queue, the library's loading,
        init and page view.
    :param purchase_js: JavaScript reporting the purchase in the browser.
    :param event_origins: the origins the library sends its events to (Meta's pixel:
        ``https://www.facebook.com``): the page's policy allows its images and requests
        to go there.
    """

    script_url: str = Field(min_length=1)
    init_js: str
    purchase_js: str
    event_origins: tuple[str, ...] = ()


class ConversionsReceipt(FrozenValue):
    """What the network said about a batch.

    :param received: how many events it accepted.
    :param trace_id: the network's id for the request, for support (Meta: ``fbtrace_id``).
    """

    received: int = Field(ge=0)
    trace_id: str | None = None


@runtime_checkable
class ConversionsDestination(Protocol):
    """An ad network that receives server-side conversion events (issue 17 item 4).

    Implemented by the same object as :class:`pixecom_core.providers.AdNetwork`.
    """

    #: The network's identifier (the same as its ``AdNetwork.identifier``).
    identifier: str

    async def send_conversions(
        self, destination: ConversionDestination, events: Sequence[ConversionEvent]
    ) -> ConversionsReceipt:
        """Send ``events`` (at most 100, one seller's) to ``destination``.

        Sending the same event again (same ``event_id``) must be harmless: the network
        de-duplicates by it, and core may retry a batch whose answer was lost.

        :raises ProviderAuthError: the token is refused (the seller must give a new one).
        :raises ProviderRefused: the network refused the payload itself (an invalid
            event); retrying the same batch will not help.
        :raises ProviderThrottled: slow down; retry after ``retry_after_seconds``.
        :raises ProviderTransientError: a timeout or 5xx; retry.
        :raises ProviderUnavailable: the network is unreachable; retry later.
        """
        ...


@runtime_checkable
class BrowserTags(Protocol):
    """An ad network whose pixel the sellpages load (optional, beside
    :class:`ConversionsDestination`): the browser's event and the server's share the order
    id, and the network counts the purchase once."""

    def browser_tag(self, destination_id: str) -> BrowserTag | None:
        """The network's pixel for the seller's sellpages, for ``destination_id``; ``None``
        when it cannot be shown for that id. Pure: no I/O, called while rendering pages."""
        ...
