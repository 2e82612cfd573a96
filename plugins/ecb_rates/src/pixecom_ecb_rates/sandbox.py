"""A fake of the ECB's reference-rate files on loopback, for tests, the dev deployment and
core's currency tests. Faults, latency, the request log, configuration, reset and the clock
are the sandbox kit's (:mod:`pixecom_core.testing.sandbox_kit`); this module speaks the
ECB's ``eurofxref`` format (:mod:`pixecom_ecb_rates.eurofxref`).

Files, under the real site's layout (``https://www.ecb.europa.eu/stats/eurofxref/…``), so the
source's base URL is ``<sandbox>/stats/eurofxref``; each is logged as its operation:

- ``GET /stats/eurofxref/eurofxref-daily.xml`` (``daily``): the latest publication day;
- ``GET /stats/eurofxref/eurofxref-hist-90d.xml`` (``hist-90d``): the publication days of the
  last 90 calendar days, newest first;
- ``GET /stats/eurofxref/eurofxref-hist.xml`` (``hist``): every publication day from
  ``history_starts_on``, newest first.

Where each behaviour comes from:

- The envelope, namespaces and ``<Cube><Cube time><Cube currency rate/>`` nesting, the
  single-quoted attributes and the currencies with their number of decimals are those of
  ``eurofxref-daily.xml`` as the ECB serves it (copies of the file kept in public
  repositories, e.g. one of 28 June 2024). That the history files list the newest day
  first is what clients that read them rely on (pricehist's ECB source reverses them).
- Publication on TARGET business days only, around 16:00 CET: the ECB's page "Euro foreign
  exchange reference rates" ("usually updated at around 16:00 CET every working day, except
  on TARGET closing days"); the closing days (weekends, 1 January, Good Friday, Easter
  Monday, 1 May, 25 and 26 December) are the long-term TARGET calendar of the ECB's press
  release of 14 December 2000 (:mod:`pixecom_ecb_rates.target_calendar`).
- The Bulgarian lev is quoted at its central rate 1.9558 through 31 December 2025 and not
  after: Bulgaria adopted the euro on 1 January 2026 and the ECB took the lev off its list.

The rates themselves are made up, deterministic: a function of ``seed``, the currency and
the day (a slow wave plus a little daily noise around a plausible level, integer arithmetic
only), printed with the ECB's decimals for that currency. So every run serves the same
file for the same clock, and a test can fetch a file and compute its expected conversions
from it (:func:`~pixecom_ecb_rates.eurofxref.parse_reference_rates`).

Control endpoints (JSON): the kit's ``/_sandbox/config``
(:class:`~pixecom_ecb_rates.settings.EcbSandboxSettings`: ``today``, ``today_published``,
``publication_time``, ``history_starts_on``, ``seed``, ``latency_seconds``,
``retry_after_seconds``), ``/_sandbox/clock``, ``/_sandbox/reset``, ``/_sandbox/faults``,
``/_sandbox/requests`` — and the ECB's own:

- ``GET /_sandbox/days/{day}``: what the sandbox publishes for ``day``: ``published``
  (bool), ``business_day``, ``withheld``, ``rates`` (text as printed).
- ``POST /_sandbox/days/{day}/withhold``: the day's publication is left out of every file
  (as if the ECB had not published it yet); ``POST /_sandbox/days/{day}/publish`` puts it
  back.
- ``PUT /_sandbox/days/{day}/rates/{currency}`` ``{"rate": "1.2345"}``: that day's rate of
  one currency (a business day, an ECB currency; a positive decimal as text), so a test
  knows an exact rate; ``DELETE`` the same path restores the generated one.
- Faults (:class:`EcbFault`, ``operation`` one of :data:`OPERATIONS`): ``throttled`` (HTTP
  429 HTML page, ``Retry-After`` when the fault or the settings name one), ``transient``
  (HTTP 503 HTML page), ``auth`` (HTTP 403 HTML page: the site needs no credentials, but
  a CDN can refuse a client), ``truncated`` (200, the file cut off halfway), ``doctype``
  (200, a daily file with a DOCTYPE declaring an entity), and the kit's ``server_error``,
  ``malformed``, ``hang``.
"""

from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import Body, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from pixecom_core.providers import ASGIApp
from pixecom_core.testing.sandbox_kit import Fault, KitFaultKind, SandboxClock, SandboxKit
from pixecom_ecb_rates.eurofxref import ReferenceRatesFile, render_reference_rates
from pixecom_ecb_rates.settings import EcbSandboxSettings
from pixecom_ecb_rates.target_calendar import is_business_day, previous_business_day

#: Where the files are on the ECB's site, kept by the sandbox.
FILES_PATH: Final = "/stats/eurofxref"
#: The operation each file is logged and targeted by.
OPERATIONS: Final = {
    ReferenceRatesFile.DAILY: "daily",
    ReferenceRatesFile.NINETY_DAYS: "hist-90d",
    ReferenceRatesFile.HISTORY: "hist",
}
#: The ECB publishes and keeps its times in Frankfurt.
FRANKFURT: Final = ZoneInfo("Europe/Berlin")
#: The 90-day file's reach, in calendar days back from today.
NINETY_DAYS: Final = timedelta(days=90)

#: The currencies the ECB quotes (in its order), each with a plausible level, in units of
#: its last decimal (1.0705 USD = 10705 at 4 decimals), and the decimals it prints.
CURRENCIES: Final[Mapping[str, tuple[int, int]]] = {
    "USD": (10705, 4),
    "JPY": (17194, 2),
    "BGN": (19558, 4),
    "CZK": (25025, 3),
    "DKK": (74575, 4),
    "GBP": (84638, 5),
    "HUF": (39510, 2),
    "PLN": (43090, 4),
    "RON": (49773, 4),
    "SEK": (113595, 4),
    "CHF": (9634, 4),
    "ISK": (14890, 2),
    "NOK": (113965, 4),
    "TRY": (351868, 4),
    "AUD": (16079, 4),
    "BRL": (58915, 4),
    "CAD": (14670, 4),
    "CNY": (77748, 4),
    "HKD": (83594, 4),
    "IDR": (1748721, 2),
    "ILS": (40200, 4),
    "INR": (892495, 4),
    "KRW": (147486, 2),
    "MXN": (195654, 4),
    "MYR": (50501, 4),
    "NZD": (17601, 4),
    "PHP": (62560, 3),
    "SGD": (14513, 4),
    "THB": (39319, 3),
    "ZAR": (194970, 4),
}
#: Currencies at a fixed rate (the lev's central rate), and the last day each is quoted.
FIXED_RATES: Final = {"BGN": "1.9558"}
LAST_QUOTED: Final = {"BGN": date(2025, 12, 31)}
#: Wave amplitude in ten-thousandths of the level (ERM II keeps the krone within a band).
AMPLITUDE: Final = {"DKK": 10}
DEFAULT_AMPLITUDE: Final = 500
#: Rendered history files kept (each a function of the clock and the sandbox's state).
CACHED_FILES: Final = 8

_MASK64: Final = 2**64 - 1


def _mix(value: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of ``value``."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def generated_rate(seed: int, currency: str, day: date) -> str:
    """The rate the sandbox publishes for ``currency`` on ``day`` (before overrides), as
    printed: a wave of about 500 days around the currency's level, plus up to 0.5 % noise."""
    fixed = FIXED_RATES.get(currency)
    if fixed is not None:
        return fixed
    level, decimals = CURRENCIES[currency]
    index = list(CURRENCIES).index(currency)
    amplitude = AMPLITUDE.get(currency, DEFAULT_AMPLITUDE)
    phase = (day.toordinal() + _mix(seed * 64 + index) % 500) % 500
    wave = (abs(phase - 250) - 125) * amplitude // 125
    noise = _mix((seed << 40) ^ (index << 32) ^ day.toordinal()) % (amplitude // 5 + 1)
    units = level * (10_000 + wave + noise - amplitude // 10) // 10_000
    whole, fraction = divmod(max(units, 1), 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


class EcbFault(Fault):
    """A failure the next matching file requests answer with (see the module docstring)."""

    kind: Literal[KitFaultKind, "truncated", "doctype"]


class RateOverride(BaseModel):
    """``PUT /_sandbox/days/{day}/rates/{currency}``: the rate to print, as text."""

    model_config = ConfigDict(extra="forbid")

    rate: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+(\.[0-9]+)?$")


#: The HTML pages the site's front end answers failures with: (status, title).
FAULT_PAGES: Final = {
    "throttled": (429, "429 Too Many Requests"),
    "transient": (503, "503 Service Unavailable"),
    "auth": (403, "403 Access Denied"),
}

#: A daily file declaring an entity: what the ``doctype`` fault serves.
DOCTYPE_BODY: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE gesmes:Envelope [<!ENTITY usd "1.0705">]>\n'
    b'<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    b'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">\n'
    b"\t<Cube>\n\t\t<Cube time='2024-06-28'>\n\t\t\t<Cube currency='USD' rate='&usd;'/>\n"
    b"\t\t</Cube>\n\t</Cube>\n</gesmes:Envelope>\n"
)


class EcbSandbox:
    """The sandbox's state: its settings and clock, withheld days and overridden rates."""

    def __init__(self, config: EcbSandboxSettings, clock: SandboxClock) -> None:
        self.withheld: set[date] = set()
        self.overrides: dict[date, dict[str, str]] = {}
        self._files: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.kit: SandboxKit[EcbSandboxSettings, EcbFault] = SandboxKit(
            config=config,
            fault_model=EcbFault,
            on_reset=self.clear,
            clock=clock,
        )
        self.clock = clock

    @property
    def config(self) -> EcbSandboxSettings:
        return self.kit.config

    def clear(self) -> None:
        """Forget withheld days and overrides (after the kit's reset)."""
        self.withheld.clear()
        self.overrides.clear()
        self._files.clear()

    # -- what is published

    def now(self) -> datetime:
        """The sandbox's time in Frankfurt."""
        return datetime.fromtimestamp(self.clock(), FRANKFURT)

    def today(self) -> date:
        """The sandbox's day (``today`` or the clock's day in Frankfurt)."""
        return self.config.today if self.config.today is not None else self.now().date()

    def today_published(self) -> bool:
        """Whether today's rates are out (``today_published``, else by the clock)."""
        if self.config.today_published is not None:
            return self.config.today_published
        return self.now().time() >= self.config.publication_time

    def last_publishable(self) -> date:
        """The newest business day whose rates are out, withheld or not."""
        today = self.today()
        if is_business_day(today) and self.today_published():
            return today
        return previous_business_day(today)

    def is_published(self, day: date) -> bool:
        return (
            self.config.history_starts_on <= day <= self.last_publishable()
            and is_business_day(day)
            and day not in self.withheld
        )

    def rates(self, day: date) -> dict[str, str]:
        """The rates printed for ``day``, in the ECB's order (whether published or not)."""
        seed = self.config.seed
        overrides = self.overrides.get(day, {})
        return {
            currency: overrides.get(currency) or generated_rate(seed, currency, day)
            for currency in CURRENCIES
            if day <= LAST_QUOTED.get(currency, date.max)
        }

    def published_days(self, since: date) -> list[date]:
        """The published days from ``since`` on, newest first."""
        days = []
        day = self.last_publishable()
        first = max(since, self.config.history_starts_on)
        while day >= first:
            if self.is_published(day):
                days.append(day)
            day -= timedelta(days=1)
        return days

    def file_body(self, file: ReferenceRatesFile) -> bytes:
        """The file as the sandbox serves it now."""
        if file is ReferenceRatesFile.DAILY:
            days = self.published_days(self.config.history_starts_on)[:1]
        elif file is ReferenceRatesFile.NINETY_DAYS:
            days = self.published_days(self.today() - NINETY_DAYS + timedelta(days=1))
        else:
            days = self.published_days(self.config.history_starts_on)
        overrides = sorted(
            (day, tuple(sorted(rates.items()))) for day, rates in self.overrides.items()
        )
        key = (file, tuple(days), self.config.seed, tuple(overrides))
        cached = self._files.get(key)
        if cached is None:
            cached = render_reference_rates((day, self.rates(day)) for day in days)
            self._files[key] = cached
            while len(self._files) > CACHED_FILES:
                self._files.popitem(last=False)
        return cached

    def describe(self, day: date) -> dict[str, Any]:
        """The control endpoints' view of one day."""
        return {
            "day": day.isoformat(),
            "business_day": is_business_day(day),
            "withheld": day in self.withheld,
            "published": self.is_published(day),
            "rates": self.rates(day) if is_business_day(day) else {},
        }

    # -- answering a file request

    async def answer(self, request: Request, file: ReferenceRatesFile) -> Response:
        """Log the request, then serve the file (or the fault queued for it)."""
        refused, logged = await self.kit.intercept(
            request, OPERATIONS[file], render=lambda fault: self._refusal(fault, file)
        )
        answer = refused or Response(self.file_body(file), media_type="text/xml")
        logged["status"] = answer.status_code
        return answer

    def _refusal(self, fault: EcbFault, file: ReferenceRatesFile) -> Response:
        if fault.kind == "truncated":
            body = self.file_body(file)
            return Response(body[: len(body) // 2], media_type="text/xml")
        if fault.kind == "doctype":
            return Response(DOCTYPE_BODY, media_type="text/xml")
        status, title = FAULT_PAGES[fault.kind]
        headers = {}
        if fault.kind == "throttled":
            wait = fault.retry_after_seconds
            wait = self.config.retry_after_seconds if wait is None else wait
            if wait is not None:
                headers["Retry-After"] = f"{wait:g}"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return Response(
            page, status_code=fault.status or status, media_type="text/html", headers=headers
        )


def _business_day(day: date) -> date:
    if not is_business_day(day):
        raise HTTPException(409, f"{day} is not a TARGET business day: the ECB never publishes")
    return day


def create_sandbox_app(
    config: EcbSandboxSettings | None = None, *, clock: Callable[[], float] | None = None
) -> ASGIApp:
    """A fresh ECB sandbox; configured from ``PIXECOM_ECB_SANDBOX_*`` when ``config`` is
    omitted. Point the source at it with ``PIXECOM_ECB_BASE_URL=<its URL>/stats/eurofxref``.

    :param config: starting configuration (``POST /_sandbox/config`` changes it later).
    :param clock: wall-clock seconds under the kit's movable clock (tests pass a fake one).
    """
    sandbox_clock = SandboxClock() if clock is None else SandboxClock(clock)
    sandbox = EcbSandbox(config if config is not None else EcbSandboxSettings(), sandbox_clock)
    app = sandbox.kit.app("PixEcom ECB reference rates sandbox")

    @app.get("/_sandbox/days/{day}")
    async def read_day(day: date) -> dict[str, Any]:
        return sandbox.describe(day)

    @app.post("/_sandbox/days/{day}/withhold")
    async def withhold_day(day: date) -> dict[str, Any]:
        sandbox.withheld.add(_business_day(day))
        return sandbox.describe(day)

    @app.post("/_sandbox/days/{day}/publish")
    async def publish_day(day: date) -> dict[str, Any]:
        sandbox.withheld.discard(_business_day(day))
        return sandbox.describe(day)

    @app.put("/_sandbox/days/{day}/rates/{currency}")
    async def override_rate(
        day: date, currency: str, override: Annotated[RateOverride, Body()]
    ) -> dict[str, Any]:
        if currency not in sandbox.rates(_business_day(day)):
            raise HTTPException(404, f"the ECB does not quote {currency[:10]!r} on {day}")
        try:
            positive = Decimal(override.rate) > 0
        except InvalidOperation:
            positive = False
        if not positive:
            raise HTTPException(422, "a rate must be a positive decimal number")
        sandbox.overrides.setdefault(day, {})[currency] = override.rate
        return sandbox.describe(day)

    @app.delete("/_sandbox/days/{day}/rates/{currency}")
    async def restore_rate(day: date, currency: str) -> dict[str, Any]:
        sandbox.overrides.get(day, {}).pop(currency, None)
        return sandbox.describe(day)

    for file in ReferenceRatesFile:

        def serve(file: ReferenceRatesFile = file) -> Callable[[Request], Any]:
            async def serve_file(request: Request) -> Response:
                return await sandbox.answer(request, file)

            return serve_file

        app.add_api_route(f"{FILES_PATH}/{file.value}", serve(), methods=["GET"])

    return app
