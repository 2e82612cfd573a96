"""Graph's usual amount strings are read without a Decimal (issue 18 item 3): the short way
must agree with the exact Decimal reading on every string, and refuse what it refuses."""

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixecom_meta_ads.rows import action_value, decimal_micros, whole_count

DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=12)


def exact_micros(text: str) -> int:
    return int((Decimal(text.strip()) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))


@given(whole=DIGITS, fraction=DIGITS, dot=st.booleans())
def test_the_short_reading_agrees_with_the_exact_one(whole: str, fraction: str, dot: bool) -> None:
    text = f"{whole}.{fraction}" if dot else whole + fraction
    if not text.strip(".") or text == ".":
        with pytest.raises(ValueError):
            decimal_micros(text)
        return
    assert decimal_micros(text) == exact_micros(text)
    if not dot:
        assert whole_count(text) == int(text)


@pytest.mark.parametrize(
    "text", ["\u00b2", "\u0661\u0662", "1.\u00b2", "\u0661.5", "1.2.3", "-0.5", " 2.5 ", "1e3"]
)
def test_anything_else_is_read_the_exact_way(text: str) -> None:
    try:
        expected: int | None = exact_micros(text)
    except ArithmeticError:
        expected = None
    if expected is None or expected < 0:
        with pytest.raises(ValueError):
            decimal_micros(text)
    else:
        assert decimal_micros(text) == expected


@pytest.mark.parametrize(
    "text", ["9" * 60, "1." + "0" * 50 + "1", "12.", "0.000001", "0.0000005", "007.50"]
)
def test_long_and_edge_strings_agree_with_the_exact_reading(text: str) -> None:
    assert decimal_micros(text) == exact_micros(text)
    if text.isdigit():
        assert whole_count(text) == int(text)


def test_a_list_of_actions_and_any_other_sequence_read_alike() -> None:
    actions = [
        {"action_type": "link_click", "value": "3"},
        {"action_type": "purchase", "value": "2"},
    ]

    assert action_value(actions, "purchase") == action_value(tuple(actions), "purchase") == "2"
    with pytest.raises(ValueError, match="list of"):
        action_value("purchase", "purchase")
    with pytest.raises(ValueError, match="list of"):
        action_value({"action_type": "purchase"}, "purchase")
