"""The shopper-facing sellpage page: a published sellpage as HTML (issue 17 item 1).

The page is rendered on the server with Jinja2 (autoescaping on) from the same cached
storefront document the JSON route serves (:class:`pixecom_core.catalog.Storefront`), so a
warm page costs the storefront's Redis round trips and no SQL. There is no build step and
nothing is loaded from another site: the page's CSS and its one small script are inlined,
and the Content Security Policy allows exactly those two by their SHA-256 hashes.

The HTML is the same for every query string. The checkout form's ``landing_url`` (the
address with the ad's UTM parameters, ``fbclid`` and campaign, ad set and ad ids) is
filled in by the inline script from ``location`` in the shopper's browser, not by the
server, so a cache in front of the API (nginx, a CDN; issue 17 item 5) can keep one copy
per slug with a key that leaves the tracking parameters out. The script also keeps Meta's
click id as the ``_fbc`` cookie when the address carries ``fbclid`` (issue 17 item 3), and
sends ``_fbp``/``_fbc`` with the order.

The shopper comes back from the gateway's payment page to one of two result pages
(issue 17 item 2), :func:`render_order_result`: ``/s/{slug}/thanks``, whose own small
script shows the order's status and reads it again until the payment is confirmed, and
``/s/{slug}/cancelled``. They name an order, so they are never cached; their HTML is still
the same for every order (the order id is read in the browser), so it is rendered once per
storefront document.

What a sellpage's ``content`` may carry for this page (anything else is ignored):

- ``hero``: a line of text under the title;
- ``images``: up to :data:`MAX_IMAGES` images, each an ``https://`` URL or a path on this
  site (``/media/…``), or ``{"url": …, "alt": …}`` to give the alternative text. Each
  image's origin is added to the page's ``img-src``; any other URL is left out.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pixecom_core.catalog import PublicSellpage
from pixecom_core.catalog.storefront import RenderedSellpage
from pixecom_core.orders.attribution import MAX_LANDING_URL_LENGTH
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers import BrowserTags
from pixecom_core.providers.values import MAX_QUANTITY
from pixecom_core.stats.currency import exponent

TEMPLATES_DIRECTORY = Path(__file__).parent / "templates"

#: The most images a page shows: the content is the seller's, the page must stay light.
MAX_IMAGES = 12
#: The longest image URL used; a longer one is left out.
MAX_IMAGE_URL_LENGTH = 2_048
#: The longest alternative text kept for an image.
MAX_ALT_LENGTH = 300
#: Rendered pages kept per process, by storefront document and gateways: under an ad
#: burst every request for a page after the first is a dictionary lookup.
RENDERED_PAGES_KEPT = 256

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIRECTORY),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

#: The inline style and script, exactly as they appear between their tags: the Content
#: Security Policy names their hashes, so not a byte of them may come from a template.
STYLE = (TEMPLATES_DIRECTORY / "sellpage.css").read_text(encoding="utf-8")
SCRIPT = (TEMPLATES_DIRECTORY / "sellpage.js").read_text(encoding="utf-8")
#: The result pages' script (thanks and cancelled).
RESULT_SCRIPT = (TEMPLATES_DIRECTORY / "order_result.js").read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


STYLE_HASH = _csp_hash(STYLE)
SCRIPT_HASH = _csp_hash(SCRIPT)
RESULT_SCRIPT_HASH = _csp_hash(RESULT_SCRIPT)

#: Where the shopper comes back to from the gateway's payment page (issue 17 item 2).
#: Two path segments under ``/s/``: the deploy kit's micro-cache takes exactly one, so
#: nginx never stores a page that names an order.
THANKS_PATH = "/s/{slug}/thanks"
CANCELLED_PATH = "/s/{slug}/cancelled"
#: The thanks page's status read: ``{"status": …}`` of an order of this sellpage.
ORDER_STATUS_PATH = "/s/{slug}/orders/{order_id}/status"


def content_security_policy(
    image_origins: Iterable[str] = (), tags: tuple[PageTag, ...] = ()
) -> str:
    """The sellpage page's policy: its own inline style and script (by hash), images from
    this site and ``image_origins``, requests to this site only, no framing — and for each
    ad network's pixel (``tags``), its inline code by hash, its library's origin and the
    origins it sends events to."""
    images = " ".join(["'self'", *sorted(set(image_origins) | _tag_event_origins(tags))])
    connect = " ".join(["'self'", *sorted(_tag_event_origins(tags))])
    return (
        f"default-src 'none'; script-src {SCRIPT_HASH}{_tag_sources(tags)}; "
        f"style-src {STYLE_HASH}; img-src {images}; connect-src {connect}; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class PageTag:
    """An ad network's pixel as the pages write it: its inline code, hashed for the policy.

    ``init`` runs when a page opens (the network's base code loads its library); ``purchase``
    registers, in ``window.pixecomPurchases``, a function the thanks page calls with the
    order id, value and currency once the order is paid — the same event id the server
    sends, so the network counts the purchase once (issue 17 item 4).
    """

    init: str
    purchase: str
    script_origin: str
    event_origins: tuple[str, ...]

    @property
    def hashes(self) -> tuple[str, str]:
        return _csp_hash(self.init), _csp_hash(self.purchase)


def page_tags(registry: ProviderRegistry, destinations: Mapping[str, str]) -> tuple[PageTag, ...]:
    """The pixels of the seller's conversion destinations whose network's plugin writes
    one (:class:`~pixecom_core.providers.BrowserTags`), by network."""
    tags: list[PageTag] = []
    for network, destination_id in sorted(destinations.items()):
        try:
            provider = registry.ad_network(network)
        except UnknownProviderError:
            continue
        if not isinstance(provider, BrowserTags):
            continue
        tag = provider.browser_tag(destination_id)
        if tag is None:
            continue
        parts = urlsplit(tag.script_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            continue
        purchase = (
            "(window.pixecomPurchases = window.pixecomPurchases || []).push("
            "function (orderId, value, currency) {\n" + tag.purchase_js + "\n});"
        )
        tags.append(
            PageTag(
                init=tag.init_js,
                purchase=purchase,
                script_origin=f"{parts.scheme}://{parts.netloc}",
                event_origins=tag.event_origins,
            )
        )
    return tuple(tags)


def _tag_sources(tags: tuple[PageTag, ...]) -> str:
    sources = sorted({h for tag in tags for h in tag.hashes} | {t.script_origin for t in tags})
    return "".join(f" {source}" for source in sources)


def _tag_event_origins(tags: tuple[PageTag, ...]) -> set[str]:
    return {origin for tag in tags for origin in tag.event_origins}


def result_content_security_policy(tags: tuple[PageTag, ...] = ()) -> str:
    """The result pages' policy: their style and script, requests to this site (the
    status read), no forms or framing — and the pixels' code, library and event origins."""
    events = sorted(_tag_event_origins(tags))
    images = f"img-src {' '.join(events)}; " if events else ""
    connect = " ".join(["'self'", *events])
    return (
        f"default-src 'none'; script-src {RESULT_SCRIPT_HASH}{_tag_sources(tags)}; "
        f"style-src {STYLE_HASH}; {images}connect-src {connect}; form-action 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


#: The result pages without a pixel.
RESULT_CONTENT_SECURITY_POLICY = result_content_security_policy()

#: The 404 page has the style and no script.
NOT_FOUND_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {STYLE_HASH}; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def security_headers(policy: str) -> dict[str, str]:
    """Headers every answer of the page carries (the dashboard's, with this policy)."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def format_money(amount_minor: int, currency: str) -> str:
    """``amount_minor`` of ``currency`` for shoppers, with the currency's own number of
    decimals (ISO 4217): ``2500 USD`` → ``25.00 USD``, ``1500 JPY`` → ``1,500 JPY``."""
    digits = exponent(currency)
    major = Decimal(amount_minor).scaleb(-digits)
    return f"{major:,.{digits}f} {currency}"


@dataclass(frozen=True)
class GatewayChoice:
    """A payment gateway the checkout form offers: its identifier and its name."""

    identifier: str
    display_name: str


def gateway_choices(registry: ProviderRegistry) -> tuple[GatewayChoice, ...]:
    """The installed payment gateways, sorted by identifier."""
    return tuple(
        GatewayChoice(identifier=gateway.identifier, display_name=gateway.display_name)
        for gateway in registry.payment_gateways()
    )


@dataclass(frozen=True)
class Image:
    """An image the page shows and the origin it is loaded from (``None``: this site)."""

    src: str
    alt: str
    origin: str | None


@dataclass(frozen=True)
class SellpageHtml:
    """A rendered page: its bytes, its strong entity tag (a hash of the bytes) and the
    Content Security Policy that lets it load its images."""

    body: bytes
    etag: str
    content_security_policy: str


def _image_source(url: str) -> tuple[str, str | None] | None:
    """``(src, origin)`` for a URL the page may load an image from, else ``None``."""
    if len(url) > MAX_IMAGE_URL_LENGTH or any(ch.isspace() or ch == "\\" for ch in url):
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    hostname = parts.hostname or ""
    # The origin goes into a response header: only a plain host name or address may.
    if parts.scheme != "https" or parts.username or parts.password:
        return None
    if not _HOSTNAME.fullmatch(hostname):
        return None
    origin = f"https://{hostname}" + (f":{port}" if port is not None else "")
    return url, origin


def _images(content: Mapping[str, Any], default_alt: str) -> tuple[Image, ...]:
    found: list[Image] = []
    entries = content.get("images")
    if not isinstance(entries, list):
        return ()
    for entry in entries:
        if len(found) == MAX_IMAGES:
            break
        url, alt = entry, default_alt
        if isinstance(entry, dict):
            url = entry.get("url")
            given = entry.get("alt")
            alt = given[:MAX_ALT_LENGTH] if isinstance(given, str) else default_alt
        if not isinstance(url, str) or (source := _image_source(url)) is None:
            continue
        found.append(Image(src=source[0], alt=alt, origin=source[1]))
    return tuple(found)


def _render(
    document: PublicSellpage, gateways: tuple[GatewayChoice, ...], tags: tuple[PageTag, ...]
) -> SellpageHtml:
    product = document.product
    hero = document.content.get("hero")
    images = _images(document.content, product.name if product is not None else document.title)
    price = product.price if product is not None else None
    html = _environment.get_template("sellpage.html").render(
        # Markup: the files shipped with this module, hashed above, never escaped.
        style=Markup(STYLE),
        script=Markup(SCRIPT),
        title=document.title,
        hero=hero if isinstance(hero, str) else None,
        images=images,
        product=product,
        price_text=format_money(price.price_minor, price.currency) if price else None,
        gateways=gateways,
        order_path=f"/public/sellpages/{document.slug}/orders",
        thanks_path=THANKS_PATH.format(slug=document.slug),
        cancel_path=CANCELLED_PATH.format(slug=document.slug),
        order_key=order_storage_key(document.slug),
        max_quantity=MAX_QUANTITY,
        max_landing_url_length=MAX_LANDING_URL_LENGTH,
        # Markup: the network plugin's code, allowed by its hash in the policy.
        tag_scripts=[Markup(tag.init) for tag in tags],
    )
    body = html.encode("utf-8")
    return SellpageHtml(
        body=body,
        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        content_security_policy=content_security_policy(
            (image.origin for image in images if image.origin is not None), tags
        ),
    )


@lru_cache(maxsize=RENDERED_PAGES_KEPT)
def render_sellpage(
    page: RenderedSellpage, gateways: tuple[GatewayChoice, ...], registry: ProviderRegistry
) -> SellpageHtml:
    """The HTML page of a storefront document, rendered once per document and gateways.

    :param page: what :meth:`pixecom_core.catalog.Storefront.sellpage` answered.
    :param gateways: what the checkout form offers (:func:`gateway_choices`).
    :param registry: the installed plugins, whose networks write the pixels of the
        seller's conversion destinations (the document names them).
    """
    document = PublicSellpage.model_validate_json(page.body)
    return _render(document, gateways, page_tags(registry, document.conversion_destinations))


def order_storage_key(slug: str) -> str:
    """The ``sessionStorage`` key under which the page's checkout keeps the order it placed,
    for the result page the gateway sends the shopper back to: PayPal's return address
    carries PayPal's token, not PixEcom's order id (the order did not exist yet when the
    address was given)."""
    return f"pixecom-order:{slug}"


#: Which result page: the payment went through (``thanks``) or the shopper left it.
OrderResult = Literal["thanks", "cancelled"]


@dataclass(frozen=True)
class ResultHtml:
    """A result page and the policy it is served with."""

    body: bytes
    content_security_policy: str


@lru_cache(maxsize=RENDERED_PAGES_KEPT)
def render_order_result(
    page: RenderedSellpage, result: OrderResult, registry: ProviderRegistry
) -> ResultHtml:
    """The thanks or cancelled page of a storefront document, rendered once per document.

    The same bytes for every order: the inline script reads the order id from the address
    (``?order=…``) or from this tab's session storage, and the thanks page's script reads
    the order's status from :data:`ORDER_STATUS_PATH`; once it is paid, it reports the
    purchase to the seller's pixels (the thanks page only).
    """
    document = PublicSellpage.model_validate_json(page.body)
    tags = page_tags(registry, document.conversion_destinations) if result == "thanks" else ()
    html = _environment.get_template("order_result.html").render(
        style=Markup(STYLE),
        script=Markup(RESULT_SCRIPT),
        result=result,
        title=document.title,
        sellpage_path=f"/s/{document.slug}",
        orders_path=f"/s/{document.slug}/orders/",
        order_key=order_storage_key(document.slug),
        tag_scripts=[Markup(script) for tag in tags for script in (tag.init, tag.purchase)],
    )
    return ResultHtml(html.encode("utf-8"), result_content_security_policy(tags))


@lru_cache(maxsize=1)
def not_found_page() -> bytes:
    """The small page an unknown or unpublished slug answers with."""
    html = _environment.get_template("not_found.html").render(style=Markup(STYLE))
    return html.encode("utf-8")
