"""Conventions every value object exchanged with a provider follows.

Values that cross the plugin boundary are frozen (a provider cannot change what core has
already validated) and refuse unknown fields (a typo in a plugin fails at construction, not
as a silently missing number later). Money is an ``int`` in minor units next to an ISO 4217
``currency``; ad-network amounts stay in micros until core converts them, in one place.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD", "EUR"])]
"""An ISO 4217 alphabetic currency code, upper case."""

#: The largest amount core accepts anywhere, in minor units: 100 million major units of a
#: two-decimal currency. Issue 12 item 5: an unbounded BIGINT price reached the gateways
#: (Stripe caps USD at 99,999,999) and two such orders overflowed the seller's stats; far
#: below 2**63, so sums of many orders still fit a BIGINT.
MAX_AMOUNT_MINOR = 10**10

#: The largest quantity of one order line; more is surely a typo or abuse.
MAX_QUANTITY = 1_000

MinorUnits = Annotated[
    int,
    Strict(),
    Field(
        ge=0,
        le=MAX_AMOUNT_MINOR,
        description=f"Integer minor units of the currency (cents for USD, yen for JPY), "
        f"0 to {MAX_AMOUNT_MINOR:,}.",
    ),
]
"""An amount in the currency's minor unit, 0 to :data:`MAX_AMOUNT_MINOR`.

Strict: a JSON integer only — ``"100"``, ``1.5`` and ``true`` are refused, not coerced.
Every amount that enters core (prices, checkout totals, gateway events, refunds) has this
type, so a bound checked once holds everywhere."""

Quantity = Annotated[
    int,
    Strict(),
    Field(ge=1, le=MAX_QUANTITY, description=f"Integer, 1 to {MAX_QUANTITY:,}."),
]
"""How many of one product an order asks for, 1 to :data:`MAX_QUANTITY`; strict like
:data:`MinorUnits`."""

Micros = Annotated[int, Field(ge=0)]
"""A non-negative amount in millionths of the currency's major unit, as ad networks report."""


class FrozenValue(BaseModel):
    """Base class of provider value objects: immutable and strict about field names."""

    model_config = ConfigDict(frozen=True, extra="forbid")
