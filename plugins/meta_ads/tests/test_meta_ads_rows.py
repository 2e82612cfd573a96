"""Reading one Graph insights object: exact micros, one purchase type, levels' own ids."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixecom_meta_ads.rows import (
    MalformedInsight,
    action_value,
    decimal_micros,
    insight_row,
    whole_count,
)
from pixecom_meta_ads.sandbox import decimal_string

from pixecom_core.providers import EntityLevel

FETCHED_AT = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def _row(item: dict[str, Any], level: EntityLevel = EntityLevel.AD, **options: Any) -> Any:
    values: dict[str, Any] = {
        "level": level,
        "purchase_action_type": "omni_purchase",
        "clicks_field": "inline_link_clicks",
        "fetched_at": FETCHED_AT,
    }
    values.update(options)
    return insight_row(item, **values)


ITEM = {
    "campaign_id": "c1",
    "adset_id": "s1",
    "ad_id": "a1",
    "date_start": "2026-03-10",
    "date_stop": "2026-03-10",
    "account_currency": "EUR",
    "spend": "0.29",
    "impressions": "1021",
    "clicks": "40",
    "inline_link_clicks": "31",
    "actions": [
        {"action_type": "link_click", "value": "31"},
        {"action_type": "purchase", "value": "2"},
        {"action_type": "omni_purchase", "value": "2"},
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
    ],
    "action_values": [
        {"action_type": "purchase", "value": "59.9"},
        {"action_type": "omni_purchase", "value": "59.9"},
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "59.9"},
    ],
}


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0.29", 290_000),  # 0.29 * 1e6 as a float is 289999.99999999994
        ("0.1", 100_000),
        ("12.34", 12_340_000),
        ("1234", 1_234_000_000),
        ("0", 0),
        ("0.000001", 1),
        ("0.0000005", 0),  # half to even at the micro
        ("0.0000015", 2),
        ("99999999.99", 99_999_999_990_000),
    ],
)
def test_decimal_strings_become_exact_micros(text: str, micros: int) -> None:
    assert decimal_micros(text) == micros


@pytest.mark.parametrize("value", ["-1", "NaN", "Infinity", "", "1,5", "abc", 1.5, None, True])
def test_anything_but_a_non_negative_decimal_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        decimal_micros(value)


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False))
def test_micros_of_any_six_place_decimal_are_exact(value: Decimal) -> None:
    assert decimal_micros(str(value)) == value * 1_000_000


@given(
    minor=st.integers(min_value=0, max_value=10**12),
    currency=st.sampled_from(["USD", "EUR", "JPY"]),
)
def test_the_sandbox_amounts_read_back_exactly(minor: int, currency: str) -> None:
    exponent = 0 if currency == "JPY" else 2
    assert decimal_micros(decimal_string(minor, currency)) == minor * 10 ** (6 - exponent)


def test_counts_are_whole_numbers() -> None:
    assert whole_count("1021") == 1021
    assert whole_count("2.5") == 2  # modelled conversions can be fractional
    assert whole_count(7) == 7


def test_a_row_reads_every_number() -> None:
    row = _row(ITEM)

    assert row.entity_id == "a1"
    assert row.spend_micros == 290_000
    assert row.impressions == 1021
    assert row.clicks == 31
    assert row.purchases == 2
    assert row.purchase_value_micros == 59_900_000
    assert row.currency == "EUR"
    assert row.fetched_at == FETCHED_AT


def test_all_clicks_can_be_chosen() -> None:
    assert _row(ITEM, clicks_field="clicks").clicks == 40


@pytest.mark.parametrize(
    ("level", "entity_id"),
    [(EntityLevel.CAMPAIGN, "c1"), (EntityLevel.ADSET, "s1"), (EntityLevel.AD, "a1")],
)
def test_the_entity_id_comes_from_the_levels_own_field(level: EntityLevel, entity_id: str) -> None:
    row = _row(ITEM, level)

    assert (row.entity_type, row.entity_id) == (level, entity_id)


def test_only_the_configured_purchase_type_counts() -> None:
    row = _row(ITEM, purchase_action_type="purchase")

    assert (row.purchases, row.purchase_value_micros) == (2, 59_900_000)


def test_metrics_meta_leaves_out_count_zero() -> None:
    item = {k: v for k, v in ITEM.items() if k not in {"actions", "action_values", "spend"}}

    row = _row(item)

    assert (row.spend_micros, row.purchases, row.purchase_value_micros) == (0, 0, 0)


def test_the_first_entry_of_a_type_counts_never_the_sum() -> None:
    actions = [{"action_type": "omni_purchase", "value": "2"}] * 2

    assert action_value(actions, "omni_purchase") == "2"


def test_a_row_without_its_currency_uses_the_one_given() -> None:
    item = {k: v for k, v in ITEM.items() if k != "account_currency"}

    assert _row(item, currency="usd").currency == "USD"
    with pytest.raises(MalformedInsight, match="account_currency"):
        _row(item)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"ad_id": None}, "no ad_id"),
        ({"ad_id": 17}, "no ad_id"),
        ({"date_start": "10/03/2026"}, "Invalid isoformat"),
        ({"date_stop": "2026-03-11"}, "one day"),
        ({"spend": 0.29}, "decimal string"),
        ({"action_values": [{"action_type": "omni_purchase"}]}, "has no value"),
        ({"action_values": {"omni_purchase": "1"}}, "list"),
    ],
)
def test_an_unusable_object_is_a_malformed_insight(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(MalformedInsight) as raised:
        _row(ITEM | change)

    assert problem in str(raised.value)
    assert raised.value.provider == "meta"
