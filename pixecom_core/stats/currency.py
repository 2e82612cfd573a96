"""Minor units per currency (ISO 4217 exponents), and converting micros to minor units.

Ad networks report money in micros (millionths of the major unit); the ledger and
``sellpage_stats_daily`` hold integer minor units (cents, yen, fils). The conversion is
done in one place — here, as a SQL expression used by the set-based aggregation — with
the currency's real exponent, so a JPY or KWD account is not off by a factor of 100.
"""

from __future__ import annotations

import pycountry

from pixecom_core.models.base import sql_in_list

#: Currencies whose minor unit is not 1/100 of the major (ISO 4217); every other is 2.
NON_DEFAULT_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}
DEFAULT_EXPONENT = 2


def exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency``'s minor unit."""
    return NON_DEFAULT_EXPONENTS.get(currency, DEFAULT_EXPONENT)


def micros_per_minor_unit_sql(currency_column: str) -> str:
    """A SQL expression: how many micros one minor unit of ``currency_column`` is."""
    cases = []
    for digits in sorted(set(NON_DEFAULT_EXPONENTS.values())):
        codes = [code for code, value in NON_DEFAULT_EXPONENTS.items() if value == digits]
        cases.append(f"WHEN {currency_column} IN ({sql_in_list(codes)}) THEN {10 ** (6 - digits)}")
    return f"(CASE {' '.join(cases)} ELSE {10 ** (6 - DEFAULT_EXPONENT)} END)"


def minor_per_major_sql(currency_column: str) -> str:
    """A SQL expression: minor units in one major unit of ``currency_column``."""
    return f"(1000000 / {micros_per_minor_unit_sql(currency_column)})"


def round_half_even_sql(amount: str) -> str:
    """A SQL expression: the non-negative numeric ``amount`` rounded to an integer, a tie
    to the even neighbour (as Python's ``Decimal`` and the ad-network plugins round).

    PostgreSQL's ``round(numeric)`` takes ties away from zero: 1120.5 cents would become
    1121 where every other part of PixEcom says 1120. Amounts are never negative here (the
    roll-ups' check constraints), so the one correction is for positive ties.
    """
    return (
        f"(round({amount}) - CASE WHEN mod({amount}, 1) = 0.5"
        f" AND mod(trunc({amount}), 2) = 0 THEN 1 ELSE 0 END)"
    )


def is_iso_4217(code: str) -> bool:
    """Whether ``code`` is a currency of ISO 4217's list (``"ZZZ"`` is not): a reporting
    currency or a manual rate naming another would wait for a rate forever."""
    return len(code) == 3 and pycountry.currencies.get(alpha_3=code) is not None
