"""The ECB's ``eurofxref`` XML files: the one place their format is read and written.

The source parses them, the sandbox renders them, and tests parse what the sandbox serves
to compute their expected conversions. Every file is one ``gesmes:Envelope``::

    <?xml version="1.0" encoding="UTF-8"?>
    <gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
                     xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
        <gesmes:subject>Reference rates</gesmes:subject>
        <gesmes:Sender>
            <gesmes:name>European Central Bank</gesmes:name>
        </gesmes:Sender>
        <Cube>
            <Cube time='2024-06-28'>
                <Cube currency='USD' rate='1.0705'/>
                <Cube currency='JPY' rate='171.94'/>
                ...
            </Cube>
        </Cube>
    </gesmes:Envelope>

The outer ``Cube`` holds one ``Cube time=…`` per publication day (one in
``eurofxref-daily.xml``, the last 90 days' in ``eurofxref-hist-90d.xml``, every day since
4 January 1999 in ``eurofxref-hist.xml``, newest first), each holding one ``Cube
currency=… rate=…`` per currency: units of that currency one euro buys, printed with the
ECB's fixed number of decimals per currency (usually five significant digits). The set of
currencies changes over time (the Russian rouble stopped on 1 March 2022, the Croatian kuna
and the Bulgarian lev when their countries adopted the euro), so no day is expected to
list a fixed set.

Parsing is strict, because a wrong rate silently converts every seller's figures: anything
that is not this shape raises :class:`MalformedReferenceRates`, and so does a document
type declaration (the ECB's files have none, and refusing them rules out entity expansion
before the XML parser sees a byte). Rates become :class:`~decimal.Decimal` from their text,
never through a float.
"""

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

from pydantic import ValidationError

from pixecom_core.providers import Publication

GESMES_NAMESPACE: Final = "http://www.gesmes.org/xml/2002-08-01"
EUROFXREF_NAMESPACE: Final = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
_ENVELOPE: Final = f"{{{GESMES_NAMESPACE}}}Envelope"
_CUBE: Final = f"{{{EUROFXREF_NAMESPACE}}}Cube"
#: A document type declaration or an entity: the ECB's files carry neither.
_DECLARATIONS: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_RATE: Final = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DAY: Final = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ReferenceRatesFile(StrEnum):
    """The three files the ECB publishes the rates in, under
    ``https://www.ecb.europa.eu/stats/eurofxref/``."""

    #: The latest publication day only.
    DAILY = "eurofxref-daily.xml"
    #: The publication days of the last 90 calendar days.
    NINETY_DAYS = "eurofxref-hist-90d.xml"
    #: Every publication day since 4 January 1999 (several megabytes).
    HISTORY = "eurofxref-hist.xml"


class MalformedReferenceRates(ValueError):
    """A body that is not a well-formed ``eurofxref`` file; the message says what is wrong."""


def parse_reference_rates(body: bytes) -> list[Publication]:
    """The publications in an ``eurofxref`` file, oldest first.

    :param body: the file's bytes, as served.
    :raises MalformedReferenceRates: not XML, cut off, a DTD or entity, not a
        ``gesmes:Envelope`` with a ``Cube`` of days, a day twice, a day without rates, a
        currency twice in one day, or a rate that is not a positive decimal number.
    """
    if _DECLARATIONS.search(body):
        raise MalformedReferenceRates("the file declares a DOCTYPE or an entity")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise MalformedReferenceRates(f"not well-formed XML (cut off?): {exc}") from exc
    if root.tag != _ENVELOPE:
        raise MalformedReferenceRates(f"the root element is {root.tag!r}, not gesmes:Envelope")
    days = root.find(_CUBE)
    if days is None:
        raise MalformedReferenceRates("the envelope holds no Cube of days")
    publications: dict[date, Publication] = {}
    for day_cube in days:
        publication = _publication(day_cube)
        if publication.published_on in publications:
            raise MalformedReferenceRates(f"the day {publication.published_on} is listed twice")
        publications[publication.published_on] = publication
    return [publications[day] for day in sorted(publications)]


def _publication(day_cube: ElementTree.Element) -> Publication:
    time = day_cube.get("time", "")
    if day_cube.tag != _CUBE or not _DAY.match(time):
        raise MalformedReferenceRates(f"expected <Cube time='YYYY-MM-DD'>, got {day_cube.tag!r}")
    try:
        published_on = date.fromisoformat(time)
    except ValueError as exc:
        raise MalformedReferenceRates(f"{time!r} is not a date") from exc
    rates: dict[str, Decimal] = {}
    for rate_cube in day_cube:
        currency, rate = rate_cube.get("currency", ""), rate_cube.get("rate", "")
        if rate_cube.tag != _CUBE or not _CURRENCY.match(currency) or not _RATE.match(rate):
            raise MalformedReferenceRates(
                f"{published_on}: expected <Cube currency='XXX' rate='1.2345'/>, got "
                f"currency {currency[:10]!r} rate {rate[:20]!r}"
            )
        if currency in rates:
            raise MalformedReferenceRates(f"{published_on}: {currency} is listed twice")
        try:
            rates[currency] = Decimal(rate)
        except InvalidOperation as exc:  # the pattern already refuses these; kept as a guard
            raise MalformedReferenceRates(f"{published_on}: {currency} rate {rate!r}") from exc
    try:
        return Publication(published_on=published_on, rates=rates)
    except ValidationError as exc:
        raise MalformedReferenceRates(f"{published_on}: {exc.errors()[0]['msg']}") from exc


def render_reference_rates(days: Iterable[tuple[date, Mapping[str, str]]]) -> bytes:
    """An ``eurofxref`` file listing ``days`` in the order given (the ECB lists the newest
    first); each day's rates as the text to print (``{"USD": "1.0705"}``), in order.

    The layout (tabs, single-quoted attributes) is the daily file's as the ECB serves it.
    """
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gesmes:Envelope xmlns:gesmes="{GESMES_NAMESPACE}" xmlns="{EUROFXREF_NAMESPACE}">',
        "\t<gesmes:subject>Reference rates</gesmes:subject>",
        "\t<gesmes:Sender>",
        "\t\t<gesmes:name>European Central Bank</gesmes:name>",
        "\t</gesmes:Sender>",
        "\t<Cube>",
    ]
    for day, rates in days:
        lines.append(f"\t\t<Cube time='{day.isoformat()}'>")
        lines.extend(
            f"\t\t\t<Cube currency='{currency}' rate='{rate}'/>" for currency, rate in rates.items()
        )
        lines.append("\t\t</Cube>")
    lines += ["\t</Cube>", "</gesmes:Envelope>", ""]
    return "\n".join(lines).encode("utf-8")
