"""The TARGET calendar: the days the ECB publishes on, and what a publication makes final."""

from datetime import date, timedelta

import pytest
from pixecom_ecb_rates.target_calendar import (
    business_days,
    easter_sunday,
    final_through,
    is_business_day,
    next_business_day,
    previous_business_day,
)


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1999, date(1999, 4, 4)),
        (2000, date(2000, 4, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


@pytest.mark.parametrize(
    ("good_friday", "easter_monday"),
    [
        (date(2024, 3, 29), date(2024, 4, 1)),
        (date(2025, 4, 18), date(2025, 4, 21)),
        (date(2026, 4, 3), date(2026, 4, 6)),
    ],
)
def test_good_friday_and_easter_monday_are_closed(good_friday: date, easter_monday: date) -> None:
    assert not is_business_day(good_friday)
    assert not is_business_day(easter_monday)
    assert is_business_day(good_friday - timedelta(days=1))  # Maundy Thursday
    assert is_business_day(easter_monday + timedelta(days=1))


@pytest.mark.parametrize(
    "closed",
    [
        date(2026, 1, 1),  # a Thursday
        date(2025, 5, 1),
        date(2026, 5, 1),
        date(2024, 12, 25),
        date(2024, 12, 26),
        date(2025, 12, 25),
        date(2025, 12, 26),
    ],
)
def test_fixed_closing_days_are_closed_whatever_the_weekday(closed: date) -> None:
    assert closed.weekday() < 5
    assert not is_business_day(closed)


def test_weekends_are_closed_and_ordinary_weekdays_open() -> None:
    week = [date(2026, 3, 16) + timedelta(days=offset) for offset in range(7)]

    assert [is_business_day(day) for day in week] == [True] * 5 + [False] * 2
    # 24 and 31 December are business days (TARGET closed on 31 December only 1999–2001)
    assert is_business_day(date(2025, 12, 24)) and is_business_day(date(2025, 12, 31))


def test_next_and_previous_business_day_skip_weekends_and_holidays() -> None:
    assert next_business_day(date(2026, 3, 20)) == date(2026, 3, 23)  # Friday → Monday
    assert next_business_day(date(2026, 4, 2)) == date(2026, 4, 7)  # over Easter
    assert previous_business_day(date(2026, 4, 7)) == date(2026, 4, 2)
    assert next_business_day(date(2025, 12, 24)) == date(2025, 12, 29)
    assert previous_business_day(date(2026, 1, 2)) == date(2025, 12, 31)


def test_business_days_lists_the_open_days_of_a_range() -> None:
    days = list(business_days(date(2026, 3, 30), date(2026, 4, 10)))

    assert days == [
        date(2026, 3, 30),
        date(2026, 3, 31),
        date(2026, 4, 1),
        date(2026, 4, 2),
        date(2026, 4, 7),
        date(2026, 4, 8),
        date(2026, 4, 9),
        date(2026, 4, 10),
    ]


@pytest.mark.parametrize(
    ("latest", "final"),
    [
        (date(2026, 3, 20), date(2026, 3, 22)),  # Friday: the weekend is final
        (date(2026, 3, 23), date(2026, 3, 23)),  # Monday: Tuesday may still come
        (date(2026, 4, 2), date(2026, 4, 6)),  # Maundy Thursday: through Easter Monday
        (date(2025, 12, 24), date(2025, 12, 28)),  # Christmas and the weekend after
        (date(2025, 12, 31), date(2026, 1, 1)),  # New Year's Day
    ],
)
def test_final_through_reaches_the_day_before_the_next_business_day(
    latest: date, final: date
) -> None:
    assert final_through(latest) == final


def test_no_day_after_a_publication_and_up_to_final_through_is_a_business_day() -> None:
    for latest in business_days(date(2024, 1, 1), date(2026, 12, 31)):
        final = final_through(latest)
        gap = [latest + timedelta(days=n) for n in range(1, (final - latest).days + 1)]
        assert not any(is_business_day(day) for day in gap)
        assert is_business_day(final + timedelta(days=1))
