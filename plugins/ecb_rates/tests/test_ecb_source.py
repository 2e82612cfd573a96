"""``fetch_rates`` against the sandbox with its clock fixed: which file a range is read from
(the sandbox's request log shows it), ``complete_through`` around weekends, Easter and the
16:00 publication, withheld and overridden days, and answers equal to the files served."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from ecb_support import FRIDAY, HISTORY_STARTS_ON, SandboxHandle
from pixecom_ecb_rates.eurofxref import ReferenceRatesFile
from pixecom_ecb_rates.source import EcbRateSource

from pixecom_core.providers import cross_rate

SATURDAY = FRIDAY + timedelta(days=1)
SUNDAY = FRIDAY + timedelta(days=2)
MONDAY = FRIDAY + timedelta(days=3)
THURSDAY = FRIDAY - timedelta(days=1)
DAILY = ReferenceRatesFile.DAILY.value
NINETY_DAYS = ReferenceRatesFile.NINETY_DAYS.value
HISTORY = ReferenceRatesFile.HISTORY.value


def days_of(answer_publications: tuple[object, ...]) -> list[date]:
    return [publication.published_on for publication in answer_publications]  # type: ignore[attr-defined]


# -- complete_through and the clock ---------------------------------------------------


async def test_friday_after_publication_makes_the_weekend_final(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    answer = await source.fetch_rates(FRIDAY, SUNDAY)

    assert days_of(answer.publications) == [FRIDAY]
    assert answer.complete_through == SUNDAY
    assert answer.base_currency == "EUR"
    assert await sandbox.requested_paths() == [DAILY]


async def test_friday_before_publication_is_pending(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(FRIDAY, published=False)

    answer = await source.fetch_rates(FRIDAY, FRIDAY)

    assert answer.publications == ()
    assert answer.complete_through == THURSDAY


async def test_saturday_answers_as_friday_evening(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(SATURDAY, published=True)

    answer = await source.fetch_rates(SATURDAY, SATURDAY)

    assert answer.publications == ()
    assert answer.complete_through == SUNDAY
    assert await sandbox.requested_paths() == [DAILY]


async def test_monday_before_publication_leaves_monday_pending(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(MONDAY, published=False)

    answer = await source.fetch_rates(FRIDAY, MONDAY)

    assert days_of(answer.publications) == [FRIDAY]
    assert answer.complete_through == SUNDAY


async def test_monday_after_publication_is_final_through_monday(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(MONDAY, published=True)

    answer = await source.fetch_rates(FRIDAY, MONDAY)

    assert days_of(answer.publications) == [FRIDAY, MONDAY]
    assert answer.complete_through == MONDAY
    # Friday is older than the daily file's Monday: the 90-day file answered
    assert await sandbox.requested_paths() == [DAILY, NINETY_DAYS]


async def test_easter_is_final_from_maundy_thursday_until_tuesday(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(date(2026, 4, 7), published=False)

    answer = await source.fetch_rates(date(2026, 4, 1), date(2026, 4, 7))

    assert days_of(answer.publications) == [date(2026, 4, 1), date(2026, 4, 2)]
    assert answer.complete_through == date(2026, 4, 6)


async def test_christmas_and_new_year_are_days_without_publication(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.set_today(date(2026, 1, 5), published=True)

    answer = await source.fetch_rates(date(2025, 12, 22), date(2026, 1, 5))

    assert days_of(answer.publications) == [
        date(2025, 12, 22),
        date(2025, 12, 23),
        date(2025, 12, 24),
        date(2025, 12, 29),
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 2),
        date(2026, 1, 5),
    ]
    assert answer.complete_through == date(2026, 1, 5)


async def test_the_sandbox_clock_decides_when_not_fixed(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(today=None, today_published=None)
    # Friday 20 March 2026, 15:59 and 16:00 in Frankfurt (CET, UTC+1)
    before = 1_774_018_740.0
    moved = await sandbox.control.post("/_sandbox/clock", json={"now": before})
    assert moved.status_code == 200, moved.text

    pending = await source.fetch_rates(FRIDAY, FRIDAY)
    await sandbox.control.post("/_sandbox/clock", json={"advance_seconds": 60})
    published = await source.fetch_rates(FRIDAY, FRIDAY)

    assert (pending.publications, pending.complete_through) == ((), THURSDAY)
    assert days_of(published.publications) == [FRIDAY]
    assert published.complete_through == SUNDAY


# -- which file answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "files"),
    [
        (FRIDAY, [DAILY]),
        (FRIDAY + timedelta(days=10), [DAILY]),
        (FRIDAY - timedelta(days=1), [DAILY, NINETY_DAYS]),
        (FRIDAY - timedelta(days=85), [DAILY, NINETY_DAYS]),
        (FRIDAY - timedelta(days=86), [DAILY, HISTORY]),
        (date(2025, 6, 2), [DAILY, HISTORY]),
    ],
    ids=["latest-day", "future", "yesterday", "85-days", "86-days", "history"],
)
async def test_the_smallest_file_that_covers_the_range_is_read(
    source: EcbRateSource, sandbox: SandboxHandle, since: date, files: list[str]
) -> None:
    answer = await source.fetch_rates(since, since + timedelta(days=14))

    assert await sandbox.requested_paths() == files
    assert all(since <= day <= since + timedelta(days=14) for day in days_of(answer.publications))


async def test_a_90_day_file_starting_after_a_holiday_still_covers_the_range(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    # today Tuesday 24 March, the last two days withheld: the latest publication is Friday
    # 20 March and the 90-day file starts on Monday 29 December (25 December + 90 days)
    await sandbox.set_today(date(2026, 3, 24), published=True)
    await sandbox.withhold(date(2026, 3, 23))
    await sandbox.withhold(date(2026, 3, 24))

    # from Friday 26 December, a closing day: the file misses no publication
    answer = await source.fetch_rates(date(2025, 12, 26), date(2026, 1, 2))

    assert await sandbox.requested_paths() == [DAILY, NINETY_DAYS]
    assert days_of(answer.publications) == [
        date(2025, 12, 29),
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 2),
    ]


async def test_a_90_day_file_that_stops_short_falls_back_to_the_history(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    # the last seven business days withheld: the latest publication is 11 March, 85 days
    # after 16 December, but the 90-day file starts on 22 December
    for day in (12, 13, 16, 17, 18, 19, 20):
        await sandbox.withhold(date(2026, 3, day))

    answer = await source.fetch_rates(date(2025, 12, 16), date(2025, 12, 23))

    assert await sandbox.requested_paths() == [DAILY, NINETY_DAYS, HISTORY]
    assert days_of(answer.publications) == [
        date(2025, 12, 16),
        date(2025, 12, 17),
        date(2025, 12, 18),
        date(2025, 12, 19),
        date(2025, 12, 22),
        date(2025, 12, 23),
    ]
    assert answer.complete_through == date(2026, 3, 11)


async def test_a_range_older_than_the_history_answers_what_there_is(
    source: EcbRateSource,
) -> None:
    answer = await source.fetch_rates(date(1998, 12, 1), HISTORY_STARTS_ON + timedelta(days=2))

    assert days_of(answer.publications) == [HISTORY_STARTS_ON + timedelta(days=n) for n in range(3)]
    assert answer.complete_through == SUNDAY


# -- the answer is what the ECB published ----------------------------------------------


async def test_the_answer_equals_the_served_file_within_the_range(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    since, until = date(2026, 2, 14), date(2026, 3, 1)

    answer = await source.fetch_rates(since, until)
    served = await sandbox.oracle(ReferenceRatesFile.NINETY_DAYS)

    assert list(answer.publications) == [p for p in served if since <= p.published_on <= until]
    assert days_of(answer.publications)[0] == date(2026, 2, 16)  # a Monday
    assert len(answer.publications[0].rates) == 29  # the lev is gone since 2026


async def test_an_overridden_rate_is_answered_exactly(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    day = date(2026, 3, 11)
    await sandbox.override(day, "USD", "1.0843")
    await sandbox.override(day, "GBP", "0.84210")

    answer = await source.fetch_rates(day, day)

    [publication] = answer.publications
    assert publication.rates["USD"] == Decimal("1.0843")
    assert cross_rate(publication.rates, "EUR", "GBP", "USD") == Decimal("1.0843") / Decimal(
        "0.84210"
    )
    assert cross_rate(publication.rates, "EUR", "USD", "EUR") == 1 / Decimal("1.0843")


async def test_the_lev_is_quoted_at_its_central_rate_until_2025(
    source: EcbRateSource,
) -> None:
    answer = await source.fetch_rates(date(2025, 12, 31), date(2026, 1, 2))

    old, new = answer.publications
    assert old.rates["BGN"] == Decimal("1.9558")
    assert "BGN" not in new.rates


async def test_a_withheld_day_is_pending_until_published(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    await sandbox.withhold(FRIDAY)

    missing = await source.fetch_rates(THURSDAY, SUNDAY)
    await sandbox.publish(FRIDAY)
    published = await source.fetch_rates(THURSDAY, SUNDAY)

    assert days_of(missing.publications) == [THURSDAY]
    assert missing.complete_through == THURSDAY
    assert days_of(published.publications) == [THURSDAY, FRIDAY]
    assert published.complete_through == SUNDAY


async def test_a_skipped_day_before_a_later_publication_is_final_without_rates(
    source: EcbRateSource, sandbox: SandboxHandle
) -> None:
    wednesday = FRIDAY - timedelta(days=2)
    await sandbox.withhold(wednesday)

    answer = await source.fetch_rates(wednesday - timedelta(days=1), FRIDAY)

    assert wednesday not in days_of(answer.publications)
    assert answer.complete_through == SUNDAY


async def test_the_same_range_twice_is_the_same_answer(source: EcbRateSource) -> None:
    first = await source.fetch_rates(date(2025, 9, 1), date(2025, 9, 30))
    second = await source.fetch_rates(date(2025, 9, 1), date(2025, 9, 30))

    assert first == second
    assert len(first.publications) == 22


async def test_a_range_that_ends_before_it_starts_is_refused(source: EcbRateSource) -> None:
    with pytest.raises(ValueError, match="after until"):
        await source.fetch_rates(FRIDAY, THURSDAY)
