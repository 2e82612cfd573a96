"""The ``eurofxref`` format: the ECB's real file shape parses to exact decimals; anything else
is refused with ``MalformedReferenceRates``."""

from datetime import date
from decimal import Decimal

import pytest
from pixecom_ecb_rates.eurofxref import (
    MalformedReferenceRates,
    parse_reference_rates,
    render_reference_rates,
)

#: The ECB's daily file of 28 June 2024, as it serves it (some currencies left out).
REAL_DAILY = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
\t<gesmes:subject>Reference rates</gesmes:subject>
\t<gesmes:Sender>
\t\t<gesmes:name>European Central Bank</gesmes:name>
\t</gesmes:Sender>
\t<Cube>
\t\t<Cube time='2024-06-28'>
\t\t\t<Cube currency='USD' rate='1.0705'/>
\t\t\t<Cube currency='JPY' rate='171.94'/>
\t\t\t<Cube currency='BGN' rate='1.9558'/>
\t\t\t<Cube currency='GBP' rate='0.84638'/>
\t\t\t<Cube currency='HUF' rate='395.10'/>
\t\t\t<Cube currency='IDR' rate='17487.21'/>
\t\t\t<Cube currency='PHP' rate='62.560'/>
\t\t</Cube>
\t</Cube>
</gesmes:Envelope>
"""

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">'
    "<Cube>{days}</Cube></gesmes:Envelope>"
)


def envelope(days: str) -> bytes:
    return ENVELOPE.format(days=days).encode()


def test_the_real_daily_file_parses_to_exact_decimals() -> None:
    [publication] = parse_reference_rates(REAL_DAILY)

    assert publication.published_on == date(2024, 6, 28)
    assert dict(publication.rates) == {
        "USD": Decimal("1.0705"),
        "JPY": Decimal("171.94"),
        "BGN": Decimal("1.9558"),
        "GBP": Decimal("0.84638"),
        "HUF": Decimal("395.10"),
        "IDR": Decimal("17487.21"),
        "PHP": Decimal("62.560"),
    }
    # the printed digits survive: no float went in between
    assert str(publication.rates["HUF"]) == "395.10"
    assert all(type(rate) is Decimal for rate in publication.rates.values())


def test_history_files_list_the_newest_day_first_and_parse_oldest_first() -> None:
    body = envelope(
        '<Cube time="2024-07-01"><Cube currency="USD" rate="1.0745"/></Cube>'
        "<Cube time='2024-06-28'><Cube currency='USD' rate='1.0705'/></Cube>"
        "<Cube time='2024-06-27'><Cube currency='USD' rate='1.0702'/></Cube>"
    )

    publications = parse_reference_rates(body)

    assert [p.published_on for p in publications] == [
        date(2024, 6, 27),
        date(2024, 6, 28),
        date(2024, 7, 1),
    ]
    assert publications[-1].rates["USD"] == Decimal("1.0745")


def test_an_empty_cube_lists_no_publication() -> None:
    assert parse_reference_rates(envelope("")) == []


def test_rendered_files_parse_back_to_the_same_rates() -> None:
    days = [
        (date(2026, 3, 20), {"USD": "1.0843", "JPY": "162.51"}),
        (date(2026, 3, 19), {"USD": "1.0799", "JPY": "161.90"}),
    ]

    publications = parse_reference_rates(render_reference_rates(days))

    assert [(p.published_on, {c: str(r) for c, r in p.rates.items()}) for p in publications] == [
        (date(2026, 3, 19), {"USD": "1.0799", "JPY": "161.90"}),
        (date(2026, 3, 20), {"USD": "1.0843", "JPY": "162.51"}),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (REAL_DAILY[: len(REAL_DAILY) // 2], "not well-formed"),
        (b"", "not well-formed"),
        (b'{"rates": {}}', "not well-formed"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "1.0705">]>\n'
            + REAL_DAILY.split(b"\n", 1)[1],
            "DOCTYPE",
        ),
        (b"<!doctype html><html></html>", "DOCTYPE"),
        (b"<html><body>Service Unavailable</body></html>", "root element"),
        (b'<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"/>', "no Cube"),
        (envelope("<Cube time='28/06/2024'><Cube currency='USD' rate='1'/></Cube>"), "time="),
        (envelope("<Cube time='2024-02-30'><Cube currency='USD' rate='1'/></Cube>"), "not a date"),
        (envelope("<Cube time='2024-06-28'></Cube>"), "2024-06-28"),
        (envelope("<Cube time='2024-06-28'><Cube currency='USD' rate='1,07'/></Cube>"), "rate"),
        (envelope("<Cube time='2024-06-28'><Cube currency='USD' rate='-1.07'/></Cube>"), "rate"),
        (envelope("<Cube time='2024-06-28'><Cube currency='USD' rate='1e3'/></Cube>"), "rate"),
        (envelope("<Cube time='2024-06-28'><Cube currency='usd' rate='1.07'/></Cube>"), "usd"),
        (
            envelope("<Cube time='2024-06-28'><Cube currency='USD' rate='0.0000'/></Cube>"),
            "positive",
        ),
        (
            envelope(
                "<Cube time='2024-06-28'><Cube currency='USD' rate='1.07'/>"
                "<Cube currency='USD' rate='1.08'/></Cube>"
            ),
            "USD is listed twice",
        ),
        (
            envelope(
                "<Cube time='2024-06-28'><Cube currency='USD' rate='1.07'/></Cube>"
                "<Cube time='2024-06-28'><Cube currency='USD' rate='1.07'/></Cube>"
            ),
            "listed twice",
        ),
    ],
    ids=[
        "cut-off",
        "empty",
        "json",
        "dtd-with-entity",
        "html-doctype",
        "html",
        "no-days",
        "bad-time",
        "impossible-date",
        "day-without-rates",
        "comma-rate",
        "negative-rate",
        "exponent-rate",
        "lower-case-currency",
        "zero-rate",
        "currency-twice",
        "day-twice",
    ],
)
def test_anything_but_the_format_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedReferenceRates, match=reason):
        parse_reference_rates(body)
