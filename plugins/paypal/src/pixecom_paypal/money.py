"""PayPal amounts (decimal strings) to and from core's integer minor units, exactly.

PayPal's ``money`` object is ``{"currency_code": "USD", "value": "19.99"}``. Core counts in
the ISO 4217 minor unit (cents, yen, fils), so the conversion needs each currency's exponent
and never touches a float.
"""

import re
from decimal import Decimal, Inexact, InvalidOperation, localcontext

#: ISO 4217 currencies whose minor unit is not the hundredth. Every other code has 2 decimals.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
            "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip

#: Currencies PayPal takes in whole units only although ISO gives them two decimals
#: (PayPal: "does not support decimals"). JPY is whole in both.
_PAYPAL_WHOLE_UNITS = frozenset({"HUF", "TWD"})

# PayPal's pattern for money values: an optional minus, digits, an optional fraction.
_VALUE_PATTERN = re.compile(r"^-?(\d+)(\.\d+)?$|^-?\.\d+$")


# Far above PayPal's 32-character values, and inexact results raise: nothing is ever rounded.
_PRECISION = 64


class AmountError(ValueError):
    """An amount cannot be expressed exactly in the other unit."""


def currency_exponent(currency: str) -> int:
    """Return how many decimals the minor unit of ``currency`` has (2 for USD, 0 for JPY)."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_paypal_value(amount_minor: int, currency: str) -> str:
    """Write ``amount_minor`` minor units of ``currency`` as PayPal's decimal string.

    >>> to_paypal_value(1999, "USD"), to_paypal_value(1500, "JPY"), to_paypal_value(1234, "KWD")
    ('19.99', '1500', '1.234')

    :raises AmountError: the amount is negative, or PayPal wants whole units of ``currency``
        (HUF, TWD) and the amount has a fraction.
    """
    if amount_minor < 0:
        raise AmountError(f"amount {amount_minor} is negative")
    exponent = currency_exponent(currency)
    with localcontext() as context:
        context.prec = _PRECISION
        context.traps[Inexact] = True
        major = Decimal(amount_minor).scaleb(-exponent)
    if currency.upper() in _PAYPAL_WHOLE_UNITS:
        if major != major.to_integral_value():
            raise AmountError(
                f"PayPal takes {currency} in whole units only; {amount_minor} minor units "
                f"is {major} {currency}"
            )
        return f"{major:.0f}"
    return f"{major:.{exponent}f}"


def from_paypal_value(value: str, currency: str) -> int:
    """Read PayPal's decimal string ``value`` of ``currency`` as minor units, exactly.

    A negative value stays negative; callers decide what a sign means for their event.

    >>> from_paypal_value("19.99", "USD"), from_paypal_value("1500", "JPY")
    (1999, 1500)

    :raises AmountError: ``value`` is not a decimal number, or it has more decimals than the
        currency's minor unit (``"0.001"`` USD).
    """
    if not isinstance(value, str) or not _VALUE_PATTERN.match(value):
        raise AmountError(f"{value!r} is not a PayPal decimal amount")
    try:
        with localcontext() as context:
            context.prec = _PRECISION
            context.traps[Inexact] = True
            minor = Decimal(value).scaleb(currency_exponent(currency))
    except (InvalidOperation, Inexact) as exc:
        raise AmountError(f"{value!r} does not fit an exact decimal") from exc
    if minor != minor.to_integral_value():
        raise AmountError(f"{value} {currency} is finer than the currency's minor unit")
    return int(minor)
