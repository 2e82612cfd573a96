"""Where a shopper came from: the landing URL's attribution, bounded and validated.

Issue 16 item 3. A seller puts URL parameters on an ad's destination, for example::

    ?utm_source=facebook&utm_campaign={{campaign.name}}
     &campaign_id={{campaign.id}}&adset_id={{adset.id}}&ad_id={{ad.id}}

The ad network fills the ``{{…}}`` macros in when it serves the ad. Meta documents the
macros ``{{campaign.id}}``, ``{{adset.id}}``, ``{{ad.id}}``, ``{{campaign.name}}``,
``{{adset.name}}`` and ``{{ad.name}}`` for an ad's ``url_tags`` ("Use URL Tags for
Tracking", https://developers.facebook.com/docs/instagram/ads-api/guides/url-tags-for-tracking);
the ids it fills in are Meta's numeric object ids. ``{{site_source_name}}`` and
``{{placement}}`` appear in third-party guides to Meta's URL parameters, not on that page;
they are not read here (a seller who wants them puts them in ``utm_source``/``utm_content``).
Meta also appends its click id as ``fbclid`` ("ClickID and the fbp and fbc Parameters",
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/fbp-and-fbc/):
to be read from the query string server-side; the value is case sensitive and must not be
modified, so it is stored as given (only surrounding whitespace trimmed). Meta documents
no length or alphabet for it; its examples are URL-safe base64 (``IwAR2F4-dbP0l7…_qa2o…``),
which is the bound here. ``utm_id`` is Google Analytics' campaign-id parameter ("URL
builders: Collect campaign data with custom URLs",
https://support.google.com/analytics/answer/10917952); sellers who follow it write
``utm_id={{campaign.id}}``, so it stands in for ``campaign_id``.

A macro still in braces means the link was not served by the network (a preview, a test
click, a copied template): the value names nothing, so it is stored as absent, never
refused. Anything else that breaks a bound is refused: the order's attribution is a
seller-facing number's key and must not carry unbounded or unprintable text.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import parse_qsl

from pydantic import AfterValidator, Field, ValidationError
from pydantic_core import PydanticCustomError

from pixecom_core.errors import InvalidRequestError
from pixecom_core.providers.values import FrozenValue

#: The longest landing URL checkout reads (browsers and CDNs handle far longer; an ad's
#: URL with every tracking parameter filled in stays well under this).
MAX_LANDING_URL_LENGTH = 2_048
#: The longest UTM value kept, after surrounding whitespace is stripped.
MAX_UTM_LENGTH = 250
#: The longest ``fbclid`` kept.
MAX_CLICK_ID_LENGTH = 500
#: The longest ad-network id kept (Meta's are numeric and far shorter; other networks'
#: ids may carry letters and separators).
MAX_AD_NETWORK_ID_LENGTH = 64

#: Attribution field → the landing URL's query parameter that fills it.
_LANDING_PARAMETERS: Mapping[str, str] = {
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "fbclid": "fbclid",
    "campaign_ref": "campaign_id",
    "adset_ref": "adset_id",
    "ad_ref": "ad_id",
}

_UNFILLED_MACRO = re.compile(r"\{\{[^{}]*\}\}")
_CLICK_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CLICK_ID_LENGTH}}}")
_AD_NETWORK_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_AD_NETWORK_ID_LENGTH}}}")
#: Unicode categories refused in UTM values: control characters (NUL, tab, newline, …),
#: lone surrogates (not storable as UTF-8) and line/paragraph separators. Format
#: characters (the zero-width joiner inside emoji) and other scripts are kept: campaign
#: names carry them.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _present(value: str | None) -> str | None:
    """``value`` stripped; ``None`` when empty or an unfilled macro is left in it."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped or _UNFILLED_MACRO.search(stripped):
        return None
    return stripped


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_attribution", message)


def _utm_value(value: str | None) -> str | None:
    present = _present(value)
    if present is None:
        return None
    if len(present) > MAX_UTM_LENGTH:
        raise _invalid(f"must be at most {MAX_UTM_LENGTH} characters")
    if any(unicodedata.category(char) in _UNPRINTABLE_CATEGORIES for char in present):
        raise _invalid("must not contain control characters")
    return present


def _click_id(value: str | None) -> str | None:
    present = _present(value)
    if present is None:
        return None
    if _CLICK_ID.fullmatch(present) is None:
        raise _invalid(
            f"must be 1 to {MAX_CLICK_ID_LENGTH} letters, digits, '_' or '-'"
            " (the click id the ad network appends)"
        )
    return present


def _ad_network_id(value: str | None) -> str | None:
    present = _present(value)
    if present is None:
        return None
    if _AD_NETWORK_ID.fullmatch(present) is None:
        raise _invalid(
            f"must be 1 to {MAX_AD_NETWORK_ID_LENGTH} letters, digits, '_', '.', ':' or '-'"
            " (the ad network's id)"
        )
    return present


UtmValue = Annotated[
    str | None,
    AfterValidator(_utm_value),
    Field(
        description=f"Up to {MAX_UTM_LENGTH} characters after trimming, no control "
        "characters; empty or an unfilled `{{…}}` macro counts as absent.",
    ),
]
ClickId = Annotated[
    str | None,
    AfterValidator(_click_id),
    Field(
        description=f"The click id the ad network appended, as given: 1 to "
        f"{MAX_CLICK_ID_LENGTH} of `A-Z a-z 0-9 _ -`.",
    ),
]
AdNetworkId = Annotated[
    str | None,
    AfterValidator(_ad_network_id),
    Field(
        description=f"The ad network's own id: 1 to {MAX_AD_NETWORK_ID_LENGTH} of "
        "`A-Z a-z 0-9 _ . : -`; an unfilled macro such as "
        "`{{campaign.id}}` counts as absent.",
    ),
]


class InvalidAttributionError(InvalidRequestError):
    """A landing URL, or one of its attribution parameters, breaks a bound.

    :param parameter: the query parameter at fault (``utm_source``, ``campaign_id``, …),
        or ``None`` when the URL as a whole is refused (too long).
    """

    code = "invalid_attribution"

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class Attribution(FrozenValue):
    """Where the shopper came from: UTM parameters, Meta's click id (``fbclid``) and the ad
    network's own campaign, ad set and ad ids (``campaign_ref``, ``adset_ref``, ``ad_ref``:
    the landing URL's ``campaign_id``, ``adset_id`` and ``ad_id``). Every field is
    optional; an empty value or an unfilled ``{{…}}`` macro counts as absent."""

    # Field names are the ``orders`` columns; the stats roll-up matches the ``*_ref`` ids
    # against the synced campaigns. Construction raises pydantic's ``ValidationError``
    # (its error type ``invalid_attribution``) for a value out of bounds;
    # ``from_landing_url`` raises ``InvalidAttributionError`` naming the query parameter.

    utm_source: UtmValue = None
    utm_medium: UtmValue = None
    utm_campaign: UtmValue = None
    utm_content: UtmValue = None
    utm_term: UtmValue = None
    fbclid: ClickId = None
    campaign_ref: AdNetworkId = None
    adset_ref: AdNetworkId = None
    ad_ref: AdNetworkId = None

    @classmethod
    def from_landing_url(cls, url: str) -> Attribution:
        """The attribution a landing URL's query string carries.

        Reads ``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_content``,
        ``utm_term``, ``fbclid``, ``campaign_id`` (or ``utm_id`` when ``campaign_id`` is
        absent, empty or unfilled), ``adset_id`` and ``ad_id``; other parameters are
        ignored, and of a repeated one the first value counts. ``url`` may be absolute or
        relative; the fragment is not read. Raises :class:`InvalidAttributionError`, naming
        the parameter, for a value out of bounds, or for a URL longer than
        :data:`MAX_LANDING_URL_LENGTH`.
        """
        if len(url) > MAX_LANDING_URL_LENGTH:
            raise InvalidAttributionError(
                f"the landing URL must be at most {MAX_LANDING_URL_LENGTH} characters"
            )
        query = url.partition("#")[0].partition("?")[2]
        first: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            first.setdefault(name, value)
        parameters = dict(_LANDING_PARAMETERS)
        if _present(first.get("campaign_id")) is None and "utm_id" in first:
            parameters["campaign_ref"] = "utm_id"
        raw = {field: first.get(parameter) for field, parameter in parameters.items()}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise _landing_url_error(exc, parameters) from None

    def overridden_by(self, explicit: Attribution | None) -> Attribution:
        """This attribution with every field ``explicit`` gives (is not ``None``) replaced."""
        if explicit is None:
            return self
        return self.model_copy(update=explicit.model_dump(exclude_none=True))


def _landing_url_error(
    exc: ValidationError, parameters: Mapping[str, str]
) -> InvalidAttributionError:
    error = exc.errors(include_url=False)[0]
    field = error["loc"][0] if error["loc"] else None
    parameter = parameters.get(field) if isinstance(field, str) else None
    where = f"the landing URL's {parameter} parameter" if parameter else "the landing URL"
    return InvalidAttributionError(f"{where} {error['msg']}", parameter=parameter)


def _readable_landing_url(url: str) -> str:
    try:
        Attribution.from_landing_url(url)
    except InvalidAttributionError as exc:
        raise _invalid(str(exc)) from None
    return url


LandingUrl = Annotated[
    str,
    Field(
        max_length=MAX_LANDING_URL_LENGTH,
        description=f"The URL the shopper landed on, up to {MAX_LANDING_URL_LENGTH} "
        "characters; its query's `utm_source`, `utm_medium`, `utm_campaign`, "
        "`utm_content`, `utm_term`, `fbclid`, `campaign_id` (or `utm_id`), `adset_id` and "
        "`ad_id` are kept with the order (of a repeated parameter, the first; other "
        "parameters are ignored).",
    ),
    AfterValidator(_readable_landing_url),
]
"""A landing URL whose attribution :meth:`Attribution.from_landing_url` accepts, for
request models: a value out of bounds is a validation error at the URL's field, naming the
query parameter."""


def checkout_attribution(landing_url: str | None, explicit: Attribution | None) -> Attribution:
    """What checkout stores: the landing URL's attribution, then ``explicit``'s fields over
    it, field by field (an explicit ``None`` keeps the URL's value)."""
    landing = (
        Attribution.from_landing_url(landing_url) if landing_url is not None else Attribution()
    )
    return landing.overridden_by(explicit)


# -- the shopper's browser, for conversions APIs (issue 17 item 3) ------------------------

#: A pixel's browser id as Meta documents ``_fbp`` and ``_fbc``: ``fb.<subdomain index>.
#: <creation time, ms>.<random number or click id>``.
_BROWSER_ID = re.compile(r"fb\.[0-2]\.\d{1,16}\.[A-Za-z0-9_.-]{1,500}")
#: The longest user agent kept (real ones are a few hundred characters).
MAX_USER_AGENT_LENGTH = 512


def _browser_id(value: str | None) -> str | None:
    present = _present(value)
    return present if present is not None and _BROWSER_ID.fullmatch(present) else None


class ShopperContext(FrozenValue):
    """What the conversions APIs match a purchase to the ad click with, captured at checkout.

    Nothing here can refuse a sale: a value that is malformed (a cookie another script
    wrote, a proxy's address) is dropped, not an error.

    :param fbp: the pixel's browser id cookie (Meta ``_fbp``).
    :param fbc: the pixel's click id cookie (Meta ``_fbc``), or one built from ``fbclid``
        as Meta documents (``fb.1.<ms>.<fbclid>``).
    :param client_ip: the shopper's address as the API saw it.
    :param user_agent: the shopper's browser.
    """

    fbp: str | None = None
    fbc: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def kept(
        cls,
        *,
        fbp: str | None,
        fbc: str | None,
        client_ip: str | None,
        user_agent: str | None,
    ) -> ShopperContext:
        """The well-formed values of what the request carried; the rest as ``None``."""
        address: str | None = None
        if client_ip:
            try:
                address = str(ipaddress.ip_address(client_ip.strip()))
            except ValueError:
                address = None
        agent = _present(user_agent)
        if agent is not None and (len(agent) > MAX_USER_AGENT_LENGTH or not agent.isprintable()):
            agent = None
        return cls(fbp=_browser_id(fbp), fbc=_browser_id(fbc), client_ip=address, user_agent=agent)
