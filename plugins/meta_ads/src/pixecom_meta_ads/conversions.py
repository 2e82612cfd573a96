"""Meta's Conversions API wire format: core's ``ConversionEvent`` as a server event.

:class:`~pixecom_meta_ads.ad_network.MetaAdNetwork` sends what :func:`server_event` builds
to ``POST /{version}/{pixel_id}/events`` (form fields ``data``, a JSON array of at most
1,000 events, ``access_token`` and optionally ``test_event_code``; Meta answers
``{"events_received", "messages", "fbtrace_id"}``). Where each field comes from
(developers.facebook.com/docs/marketing-api/conversions-api/…, "Using the API",
"Parameters", "Server Event Parameters", "Customer Information Parameters", "fbp and fbc
Parameters"; ``facebook_business/adobjects/serverside/normalize.py`` of Meta's own
facebook-python-business-sdk for the normalisation it applies):

=======================  ==================================================================
server event field       from ``ConversionEvent``
=======================  ==================================================================
``event_name``           ``event_name`` (``Purchase``, a standard event)
``event_time``           ``event_time`` as whole Unix seconds (UTC); Meta refuses the whole
                         request when one is more than 7 days old
``event_id``             ``event_id`` (the order id): with ``event_name`` it de-duplicates
                         the browser pixel's event of the same ``eventID`` (48 hours)
``action_source``        always ``website``, which makes ``event_source_url`` and
                         ``user_data.client_user_agent`` required
``event_source_url``     ``event_source_url`` (must start with ``http://`` or ``https://``)
``user_data.em``         ``[sha256(email.strip().lower())]`` — hashing required
``user_data.ph``         ``[sha256(digits, leading zeros removed)]`` — hashing required; the
                         country code must already be part of the number
``user_data.client_ip_address``, ``client_user_agent``   as given, never hashed
``user_data.fbp``        ``browser_ids["fbp"]`` (``fb.1.<ms>.<random>``), never hashed
``user_data.fbc``        ``browser_ids["fbc"]`` (``fb.1.<ms>.<fbclid>``), never hashed; when
                         absent and ``click_id`` (``fbclid``) is known,
                         ``fb.1.<event time in ms>.<fbclid>``, the click id unchanged
                         (it is case sensitive)
``custom_data.value``    ``value_minor`` in major units, a JSON number (JPY 1500 → 1500,
                         USD 1999 → 19.99, KWD 1234 → 1.234); required for ``Purchase``
``custom_data.currency`` ``currency`` in lower case, as Meta's SDK normalises it; required
                         for ``Purchase``
``custom_data.order_id`` ``order_id``
=======================  ==================================================================

Nothing here logs or returns the customer's raw e-mail or phone; only their hashes leave.
"""

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from pixecom_core.providers import ConversionEvent
from pixecom_core.stats.currency import exponent

#: ``action_source`` of every event PixEcom sends: a purchase on the seller's sellpage.
ACTION_SOURCE: Final = "website"
#: What one request's ``data`` may hold ("Using the API", "Batch Requests").
MAX_EVENTS_PER_REQUEST: Final = 1_000
#: ``fb.<subdomainIndex>.<creationTime ms>.<fbclid or random>`` ("fbp and fbc Parameters":
#: subdomainIndex is 0, 1 or 2; a server that builds the value uses 1).
BROWSER_ID_FORMAT: Final = re.compile(r"^fb\.[012]\.\d{1,16}\.\S+$")
#: The subdomain index a server uses when it builds ``fbc`` itself ("fbp and fbc
#: Parameters").
SERVER_SUBDOMAIN_INDEX: Final = 1
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def sha256_hex(normalised: str) -> str:
    """The lower-case hex SHA-256 of ``normalised`` (UTF-8), as Meta matches it."""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def normalised_email(email: str) -> str | None:
    """``email`` trimmed and lower-cased ("Customer Information Parameters": "Trim any
    leading and trailing spaces. Convert all characters to lowercase."); ``None`` when what
    is left is not an e-mail address (Meta's SDK refuses those too), so no hash of a typo
    is sent."""
    normalised = email.strip().lower()
    return normalised if _EMAIL.match(normalised) else None


def normalised_phone(phone: str) -> str | None:
    """``phone`` as digits without leading zeros ("Remove symbols, letters, and any leading
    zeros"; ``+44 20 7946 0000`` and ``0044 20 7946 0000`` both become ``442079460000``);
    ``None`` when no digit is left. The country code must be in the number already: Meta
    cannot match a national number, and guessing the country is not this plugin's call."""
    digits = re.sub(r"\D", "", phone).lstrip("0")
    return digits or None


def click_id_fbc(click_id: str, *, observed_at_ms: int) -> str:
    """``fbc`` built from an ``fbclid`` as "fbp and fbc Parameters" describes when there is
    no ``_fbc`` cookie: ``fb.1.<creationTime>.<fbclid>``, creationTime in milliseconds, the
    click id as received (it is case sensitive)."""
    return f"fb.{SERVER_SUBDOMAIN_INDEX}.{observed_at_ms}.{click_id}"


def major_units(value_minor: int, currency: str) -> int | float:
    """``value_minor`` in the currency's major unit, as the JSON number Meta's ``value``
    is: the currency's ISO 4217 exponent decides (0 for JPY, 2 for USD, 3 for KWD)."""
    digits = exponent(currency)
    if digits == 0:
        return value_minor
    # exact in Decimal; a float of at most 15 significant digits prints back unchanged
    return float(Decimal(value_minor).scaleb(-digits))


def user_data(event: ConversionEvent) -> dict[str, Any]:
    """The event's ``user_data``: hashed e-mail and phone, then what is never hashed."""
    data: dict[str, Any] = {}
    email = normalised_email(event.email) if event.email else None
    if email is not None:
        data["em"] = [sha256_hex(email)]
    phone = normalised_phone(event.phone) if event.phone else None
    if phone is not None:
        data["ph"] = [sha256_hex(phone)]
    if event.client_ip:
        data["client_ip_address"] = event.client_ip
    if event.user_agent:
        data["client_user_agent"] = event.user_agent
    data.update(_browser_ids(event))
    return data


def _browser_ids(event: ConversionEvent) -> dict[str, str]:
    ids: dict[str, str] = {}
    browser: Mapping[str, str] = event.browser_ids
    # a cookie value that is not in Meta's format would be flagged as a modified click id;
    # dropped, it costs one match key instead of the purchase
    for name in ("fbp", "fbc"):
        value = browser.get(name, "").strip()
        if BROWSER_ID_FORMAT.match(value):
            ids[name] = value
    click_id = (event.click_id or "").strip()
    if "fbc" not in ids and click_id and not re.search(r"\s", click_id):
        ids["fbc"] = click_id_fbc(click_id, observed_at_ms=int(event.event_time.timestamp() * 1000))
    return ids


def missing_for_website(event: ConversionEvent) -> list[str]:
    """What a ``website`` event lacks that Meta requires ("Server Event Parameters":
    ``event_source_url`` and ``client_user_agent`` for website events)."""
    missing = []
    if not (event.event_source_url or "").startswith(("http://", "https://")):
        missing.append("event_source_url (an http or https address)")
    if not event.user_agent:
        missing.append("client_user_agent")
    return missing


def server_event(event: ConversionEvent) -> dict[str, Any]:
    """One element of the request's ``data`` array (see the module docstring)."""
    return {
        "event_name": event.event_name,
        "event_time": int(event.event_time.timestamp()),
        "event_id": event.event_id,
        "action_source": ACTION_SOURCE,
        "event_source_url": event.event_source_url,
        "user_data": user_data(event),
        "custom_data": {
            "value": major_units(event.value_minor, event.currency),
            "currency": event.currency.lower(),
            "order_id": str(event.order_id),
        },
    }
