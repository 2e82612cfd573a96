"""The ``ecb`` currency-rate source: core's ``CurrencyRateSource`` over the ECB's files.

How a range ``since`` … ``until`` is answered, reading as little as it allows:

1. ``eurofxref-daily.xml`` (about 1.5 kB) is always read first: it names the latest
   publication day *L*. A range starting on or after *L* is answered from it alone: the
   daily load, which asks for the days since its last final day, reads nothing else.
2. A range starting within :data:`NINETY_DAY_REACH` days before *L* is answered from
   ``eurofxref-hist-90d.xml``; when that file does not reach back to the range's first
   business day (a holiday at its edge), from the full history instead.
3. Older ranges are answered from ``eurofxref-hist.xml`` (every day since 1999, several
   megabytes). A range older than 1999 answers what there is.

Choosing by *L* rather than by the machine's clock keeps the choice right whatever the
clock or time zone of the host, and the answer a pure function of what the ECB served.

``complete_through`` is :func:`~pixecom_ecb_rates.target_calendar.final_through` of the
newest day of the file that answered: the day before the next TARGET business day. After
Friday's publication Saturday and Sunday are final (the ECB never publishes on them) and
Monday is not (its rates come on Monday around 16:00); on Monday before 16:00 the daily
file still shows Friday, so the answer is the same. A day the ECB skipped although TARGET
was open is pending until a later publication exists, then final without rates of its own.
If a history file lags behind the daily one (a cache serving an older copy), the answer
stays final only through that file's newest day, and the daily file's publication is added
when the range holds it.
"""

from datetime import date, timedelta
from typing import Final

from pixecom_core.providers import ProviderTransientError, Publication, RateAnswer
from pixecom_ecb_rates.client import PROVIDER, SERVICE, EcbClient
from pixecom_ecb_rates.eurofxref import ReferenceRatesFile
from pixecom_ecb_rates.settings import EcbSettings
from pixecom_ecb_rates.target_calendar import final_through, is_business_day, next_business_day

#: Ranges starting at most this many days before the latest publication are read from the
#: 90-day file: a margin below its 90 calendar days for holidays and cache lag.
NINETY_DAY_REACH: Final = 85


class EcbRateSource:
    """The ECB's euro foreign exchange reference rates (EUR against about 30 currencies).

    :param settings: where the files are; default: read from ``PIXECOM_ECB_*``.
    :param client: the client to read them with (tests); default: one built from
        ``settings``.
    """

    identifier = PROVIDER
    display_name = "European Central Bank"
    base_currency = "EUR"

    def __init__(self, settings: EcbSettings | None = None, *, client: EcbClient | None = None):
        self.settings = settings if settings is not None else EcbSettings()
        self._client = client if client is not None else EcbClient(self.settings)

    async def fetch_rates(self, since: date, until: date) -> RateAnswer:
        """The ECB's publications of the days ``since`` … ``until`` (see the module).

        :raises ValueError: ``since`` is after ``until``.
        :raises ProviderUnavailable: the ECB's site cannot be reached or answered 5xx.
        :raises ProviderThrottled: it answered 429.
        :raises ProviderTransientError: a malformed, cut-off or empty file.
        """
        if since > until:
            raise ValueError(f"since ({since}) is after until ({until})")
        daily = await self._read(ReferenceRatesFile.DAILY)
        latest = daily[-1]
        answered_from = daily
        if since < latest.published_on:
            answered_from = await self._history(since, latest.published_on)
        newest = answered_from[-1].published_on
        publications = {
            publication.published_on: publication
            for publication in answered_from
            if since <= publication.published_on <= until
        }
        if newest < latest.published_on and since <= latest.published_on <= until:
            publications[latest.published_on] = latest
        return RateAnswer(
            base_currency=self.base_currency,
            publications=tuple(publications[day] for day in sorted(publications)),
            complete_through=final_through(newest),
        )

    async def aclose(self) -> None:
        """Release the HTTP client."""
        await self._client.aclose()

    async def _history(self, since: date, latest: date) -> list[Publication]:
        """The smallest history file that holds every publication from ``since`` on."""
        if since >= latest - timedelta(days=NINETY_DAY_REACH):
            recent = await self._read(ReferenceRatesFile.NINETY_DAYS)
            if _reaches_back_to(recent, since):
                return recent
        return await self._read(ReferenceRatesFile.HISTORY)

    async def _read(self, file: ReferenceRatesFile) -> list[Publication]:
        publications = await self._client.publications(file)
        if not publications:
            raise ProviderTransientError(
                f"{SERVICE}'s {file.value} lists no publication; the load is retried later",
                provider=PROVIDER,
            )
        return publications


def _reaches_back_to(publications: list[Publication], since: date) -> bool:
    """Whether a window of publications misses none from ``since`` on: it starts on or
    before ``since``'s first business day."""
    first_needed = since if is_business_day(since) else next_business_day(since)
    return publications[0].published_on <= first_needed
