"""Turning one Graph insights object into core's :class:`InsightRow`.

Every number arrives as a string (``"spend": "12.34"``, ``"impressions": "1021"``). Amounts
become micros through :class:`~decimal.Decimal`, never ``float``, so ``"0.29"`` is exactly
290000 micros. Purchases and their value come from **one** ``action_type`` (the
``purchase_action_type`` setting): Meta lists the same purchase under ``purchase``,
``omni_purchase``, ``offsite_conversion.fb_pixel_purchase`` and more, with the same value.

A sync reads thousands of these strings per cycle (issue 18 item 3: a sync costs a fifth),
so the usual shapes — ASCII digits, at most six decimal places — are read with ``int``
alone; anything else (more places, a leading dot, other digits, an exponent) takes the
exact :class:`~decimal.Decimal` way, and a property test holds the two readings equal.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from pydantic import ValidationError

from pixecom_core.providers import EntityLevel, InsightRow, ProviderError
from pixecom_meta_ads.client import LEVEL_ID_FIELDS, PROVIDER

MICROS_PER_UNIT: Final = Decimal(1_000_000)
#: :data:`pixecom_core.providers.values.CurrencyCode`'s pattern.
_CURRENCY_CODE: Final = re.compile(r"[A-Z]{3}")
#: Strings up to this long are read the short way (``int`` refuses past 4,300 digits).
_SHORT: Final = 40


class MalformedInsight(ProviderError):
    """An insights object that cannot be read as one entity's numbers for one day."""


def decimal_micros(value: str | int) -> int:
    """Micros of a Graph decimal string (``"12.34"`` → 12340000), exactly.

    More than six decimal places (never seen in spend) round half to even at the micro.

    :raises ValueError: not a finite, non-negative decimal number.
    """
    if type(value) is str and len(value) <= _SHORT and value.isascii():
        whole, _, fraction = value.partition(".")
        # "12", "12.", "12.3456": ASCII digits only (``isdigit`` alone takes "²" and "٢")
        if whole.isdigit() and (not fraction or (fraction.isdigit() and len(fraction) <= 6)):
            micros = int(whole) * 1_000_000
            return micros + int(fraction.ljust(6, "0")) if fraction else micros
    number = _decimal(value)
    return int((number * MICROS_PER_UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))


def whole_count(value: str | int) -> int:
    """A Graph count string (``"1021"``) as an ``int``; a fractional count (modelled
    conversions) rounds half to even.

    :raises ValueError: not a finite, non-negative decimal number.
    """
    if type(value) is str and len(value) <= _SHORT and value.isascii() and value.isdigit():
        return int(value)
    return int(_decimal(value).to_integral_value(rounding=ROUND_HALF_EVEN))


def _decimal(value: str | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        # a float has already lost the exact decimal the network sent
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise ValueError(f"not a finite, non-negative number: {value!r}")
    return number


def action_value(actions: Any, action_type: str) -> str | int | None:
    """The ``value`` of the entry of ``actions`` whose ``action_type`` is ``action_type``.

    Only that one type counts: the other purchase types repeat the same purchases. Meta
    leaves out types with nothing to report, so a missing entry means zero.
    """
    if actions is None:
        return None
    # a decoded JSON array is a list: the ABC check below only for anything else
    if type(actions) is not list and (
        not isinstance(actions, Sequence) or isinstance(actions, str)
    ):
        raise ValueError("actions must be a list of {action_type, value} objects")
    for entry in actions:
        if isinstance(entry, Mapping) and entry.get("action_type") == action_type:
            value = entry.get("value")
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ValueError(f"{action_type} has no value")
            return value
    return None


def insight_row(
    item: Mapping[str, Any],
    *,
    level: EntityLevel,
    purchase_action_type: str,
    clicks_field: str,
    fetched_at: datetime,
    currency: str | None = None,
) -> InsightRow:
    """Core's row for one Graph insights object of a daily (``time_increment=1``) report.

    :param item: one element of the answer's ``data``.
    :param level: the report's level; the entity id is read from its id field
        (``campaign_id``, ``adset_id``, ``ad_id``), so levels never share keys.
    :param purchase_action_type: the one action type counted as purchases.
    :param clicks_field: the field read as clicks (``inline_link_clicks`` or ``clicks``).
    :param fetched_at: when the answer arrived.
    :param currency: the account currency when the object lacks ``account_currency``.
    :raises MalformedInsight: a field is missing or not a number, or the row spans days.
    """
    id_field = LEVEL_ID_FIELDS[level]
    try:
        entity_id = item.get(id_field)
        if not isinstance(entity_id, str) or not entity_id:
            raise ValueError(f"no {id_field}")
        date_start = date.fromisoformat(str(item.get("date_start")))
        date_stop = date.fromisoformat(str(item.get("date_stop")))
        row_currency = item.get("account_currency") or currency
        if not isinstance(row_currency, str):
            raise ValueError("no account_currency")
        purchases = action_value(item.get("actions"), purchase_action_type)
        purchase_value = action_value(item.get("action_values"), purchase_action_type)
        row_currency = row_currency.upper()
        # InsightRow's constraints, checked here once rather than by pydantic per field of
        # every row (a sync reads thousands of rows per cycle, issue 18 item 3): the numbers
        # above are non-negative ints by construction, the entity id a non-empty string.
        if date_start != date_stop:
            raise ValueError(
                f"insight rows cover one day: date_start {date_start} != date_stop "
                f"{date_stop}; ask the network for a daily breakdown"
            )
        if not _CURRENCY_CODE.fullmatch(row_currency):
            raise ValueError(f"account_currency {row_currency[:12]!r} is not an ISO 4217 code")
        if fetched_at.tzinfo is None or fetched_at.utcoffset() is None:
            raise ValueError("fetched_at must be timezone-aware")
        return InsightRow.model_construct(
            network=PROVIDER,
            entity_type=level,
            entity_id=entity_id,
            date_start=date_start,
            date_stop=date_stop,
            # Meta leaves out metrics that are zero for the row
            spend_micros=decimal_micros(item.get("spend", "0")),
            impressions=whole_count(item.get("impressions", "0")),
            clicks=whole_count(item.get(clicks_field, "0")),
            purchases=whole_count(purchases) if purchases is not None else 0,
            purchase_value_micros=decimal_micros(purchase_value)
            if purchase_value is not None
            else 0,
            currency=row_currency,
            fetched_at=fetched_at,
        )
    except (ValueError, ValidationError) as exc:
        described = item.get(id_field) or "?"
        raise MalformedInsight(
            f"Meta insights row for {level.value} {described!s:.40} on "
            f"{item.get('date_start')!s:.12}..{item.get('date_stop')!s:.12} is unusable: "
            f"{_first_line(exc)}",
            provider=PROVIDER,
        ) from exc


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            first = errors[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
