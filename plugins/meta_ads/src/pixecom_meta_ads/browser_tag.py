"""The Meta pixel on a sellpage: the browser half of issue 17 item 4.

The server reports each purchase through the Conversions API (:mod:`.conversions`); the
shopper's browser reports it too, through the Meta pixel, and Meta counts it once because
both carry the same event name (``Purchase``) and event id (the order id).
:func:`meta_pixel_tag` writes core's :class:`~pixecom_core.providers.BrowserTag` for a pixel,
from Meta's documentation:

- ``init_js`` is the pixel base code ("Meta Pixel: Get Started", "Base Code",
  developers.facebook.com/docs/meta-pixel/get-started): the ``!function(f,b,e,v,n,t,s){…}``
  snippet that defines ``window.fbq`` as a queue of calls, loads ``fbevents.js``
  asynchronously and is a no-op when ``fbq`` already exists, then
  ``fbq('init', '<pixel id>'); fbq('track', 'PageView');``. The snippet is kept whole, its
  script tag included, because Meta's library needs the queue stub to exist when it runs:
  its first statement is ``var f=a.fbq;f.execStart=…``, which throws without the stub (the
  check after it means to log "Pixel code is not installed correctly on this page"). So
  run ``init_js`` before loading ``script_url``, or instead of it: the snippet loads the
  library. A page that loads ``script_url`` first still ends up with a working pixel (the
  snippet loads the library again, after the stub), but with an error in the console.
- ``purchase_js`` is ``fbq('track', 'Purchase', {value: …, currency: …}, {eventID: …})``:
  "the eventID parameter for the Pixel is the 4th argument in the fbq track call", and it
  must equal the Conversions API's ``event_id`` ("Handling Duplicate Pixel and Conversions
  API Events", developers.facebook.com/docs/marketing-api/conversions-api/
  deduplicate-pixel-and-server-events). The server sends the order id as ``event_id``
  (:func:`.conversions.server_event`), so the browser sends ``orderId``.

Nothing but the pixel id and the script's URL is written into the JavaScript: the pixel id
only when it is digits, the URL as a JSON string with ``<``, ``>`` and ``&`` escaped, so
neither can close the page's ``<script>`` element. The purchase's values are the page's own
variables (``orderId``, ``value``, ``currency``), never text pasted into the code.
"""

import json
import re
from typing import Final
from urllib.parse import urlsplit

from pixecom_core.providers import BrowserTag

#: A pixel (dataset) id as :func:`meta_pixel_tag` accepts it; anything else gets no tag.
PIXEL_ID: Final = re.compile(r"[0-9]{1,32}")

#: The base code's queue stub and loader, as Meta publishes it; ``%(script_url)s`` is the
#: library's URL (a JSON string literal).
_BASE_CODE: Final = """\
!function(f,b,e,v,n,t,s)
{if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};
if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;n.version='2.0';
n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];
s.parentNode.insertBefore(t,s)}(window, document,'script',
%(script_url)s);
fbq('init', '%(pixel_id)s');
fbq('track', 'PageView');
"""

#: The purchase, with the page's ``orderId``, ``value`` (major units) and ``currency``;
#: guarded so a page whose pixel failed to start still finishes its own work.
PURCHASE_JS: Final = """\
if (typeof window.fbq === 'function') {
  window.fbq('track', 'Purchase', {value: Number(value), currency: String(currency)},
    {eventID: String(orderId)});
}
"""


def meta_pixel_tag(pixel_id: str, *, script_url: str) -> BrowserTag | None:
    """The Meta pixel ``pixel_id`` for a sellpage, loading the library from ``script_url``;
    ``None`` when ``pixel_id`` is not 1 to 32 digits (it is written into JavaScript, so
    nothing else is accepted — not even surrounding spaces)."""
    if not PIXEL_ID.fullmatch(pixel_id):
        return None
    init_js = _BASE_CODE % {"script_url": _script_string(script_url), "pixel_id": pixel_id}
    return BrowserTag(
        script_url=script_url,
        init_js=init_js,
        purchase_js=PURCHASE_JS,
        event_origins=(_event_origin(script_url),),
    )


def _event_origin(script_url: str) -> str:
    """Where the library sends its events: Meta's library (on ``connect.facebook.net``)
    to ``https://www.facebook.com/tr`` ("Meta Pixel: Advanced", "Install the Pixel using
    an IMG Tag"); any other copy of it (the sandbox's stand-in) to its own origin."""
    parts = urlsplit(script_url)
    if parts.hostname is not None and parts.hostname.endswith(".facebook.net"):
        return "https://www.facebook.com"
    return f"{parts.scheme}://{parts.netloc}"


def _script_string(text: str) -> str:
    """``text`` as a JavaScript string literal that is safe inside an HTML ``<script>``."""
    literal = json.dumps(text)  # ASCII only: U+2028 and U+2029 are escaped too
    return literal.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
