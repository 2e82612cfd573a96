"""Minor units to PayPal's decimal strings and back: exact for every currency exponent."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixecom_paypal.money import (
    AmountError,
    currency_exponent,
    from_paypal_value,
    to_paypal_value,
)

CURRENCIES = ["USD", "EUR", "JPY", "KRW", "KWD", "BHD", "TND", "CLF", "GBP"]


@given(
    amount_minor=st.integers(min_value=0, max_value=10**20), currency=st.sampled_from(CURRENCIES)
)
def test_a_round_trip_changes_nothing(amount_minor: int, currency: str) -> None:
    value = to_paypal_value(amount_minor, currency)

    assert from_paypal_value(value, currency) == amount_minor
    decimals = len(value.partition(".")[2])
    assert decimals == currency_exponent(currency)


@pytest.mark.parametrize(
    ("currency", "exponent"), [("USD", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4)]
)
def test_exponents_follow_iso_4217(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("0.10", "USD", 10),
        ("0.1", "USD", 10),
        ("1500", "JPY", 1500),
        ("1500.0", "JPY", 1500),
        ("12.345", "KWD", 12345),
        ("1500", "HUF", 150000),
        ("-2.51", "USD", -251),
        ("99999999999999999999999999999.99", "USD", 9999999999999999999999999999999),
    ],
)
def test_paypal_values_are_read_exactly(value: str, currency: str, minor: int) -> None:
    assert from_paypal_value(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("0.001", "USD"),
        ("1500.5", "JPY"),
        ("1.2345", "KWD"),
        ("1e3", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("", "USD"),
        (" 1.00", "USD"),
        ("1,00", "USD"),
        ("+1.00", "USD"),
        ("1.2.3", "USD"),
    ],
)
def test_values_that_are_not_exact_minor_units_are_refused(value: str, currency: str) -> None:
    with pytest.raises(AmountError):
        from_paypal_value(value, currency)


def test_paypal_whole_unit_currencies_refuse_fractions() -> None:
    assert to_paypal_value(150000, "TWD") == "1500"
    with pytest.raises(AmountError, match="whole units"):
        to_paypal_value(150001, "TWD")


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(AmountError):
        to_paypal_value(-1, "USD")
