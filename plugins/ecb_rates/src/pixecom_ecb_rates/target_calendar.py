"""The TARGET calendar: the days the ECB publishes its euro foreign exchange reference rates.

The ECB publishes the rates "every working day, except on TARGET closing days" (its page on
the euro foreign exchange reference rates). TARGET (now T2) is closed on Saturdays and
Sundays and on six days a year, by the long-term calendar the Governing Council set on
14 December 2000 for 2002 onwards (ECB press release of that day; the same list is on the
ECB's TARGET2 calendar page):

- New Year's Day (1 January),
- Good Friday and Easter Monday (Western, i.e. Catholic/Protestant, Easter),
- Labour Day (1 May),
- Christmas Day (25 December) and 26 December.

Every other day is a business day. Before 2002 the calendar was set year by year (1999
closed only on 25 December and 1 January, and TARGET also closed on 31 December 1999, 2000
and 2001): this module applies the long-term calendar to every year, which only matters for
reading history as old as that, never for what :func:`final_through` decides today.
"""

from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from typing import Final

ONE_DAY: Final = timedelta(days=1)


def easter_sunday(year: int) -> date:
    """Western Easter Sunday of ``year`` in the Gregorian calendar (the anonymous Gregorian
    algorithm, also known as Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def closing_days(year: int) -> frozenset[date]:
    """The weekdays and weekend days TARGET is closed on in ``year``, weekends excluded."""
    easter = easter_sunday(year)
    return frozenset(
        {
            date(year, 1, 1),
            easter - 2 * ONE_DAY,  # Good Friday
            easter + ONE_DAY,  # Easter Monday
            date(year, 5, 1),
            date(year, 12, 25),
            date(year, 12, 26),
        }
    )


def is_business_day(day: date) -> bool:
    """Whether TARGET is open on ``day`` (and so the ECB publishes reference rates)."""
    return day.weekday() < 5 and day not in closing_days(day.year)


def next_business_day(day: date) -> date:
    """The first business day after ``day`` (never ``day`` itself)."""
    following = day + ONE_DAY
    while not is_business_day(following):
        following += ONE_DAY
    return following


def previous_business_day(day: date) -> date:
    """The last business day before ``day`` (never ``day`` itself)."""
    preceding = day - ONE_DAY
    while not is_business_day(preceding):
        preceding -= ONE_DAY
    return preceding


def business_days(since: date, until: date) -> Iterator[date]:
    """The business days from ``since`` to ``until``, both included, oldest first."""
    day = since
    while day <= until:
        if is_business_day(day):
            yield day
        day += ONE_DAY


def final_through(latest_publication: date) -> date:
    """The last day whose rates are final once ``latest_publication`` is the newest day the
    ECB published: every day up to the next business day is a day it does not publish (a
    weekend, a closing day); the next business day may still get its own rates.

    Friday's publication makes Saturday and Sunday final; Thursday's before Easter makes
    final everything up to Easter Monday.
    """
    return next_business_day(latest_publication) - ONE_DAY
