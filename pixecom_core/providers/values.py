"""Conventions every value object exchanged with a provider follows.

Values that cross the plugin boundary are frozen (a provider cannot change what core has
already validated) and refuse unknown fields (a typo in a plugin fails at construction, not
as a silently missing number later). Money is an ``int`` in minor units next to an ISO 4217
``currency``; ad-network amounts stay in micros until core converts them, in one place.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD", "EUR"])]
"""An ISO 4217 alphabetic currency code, upper case."""

MinorUnits = Annotated[int, Field(ge=0)]
"""A non-negative amount in the currency's minor unit (cents for USD, yen for JPY)."""

Micros = Annotated[int, Field(ge=0)]
"""A non-negative amount in millionths of the currency's major unit, as ad networks report."""


class FrozenValue(BaseModel):
    """Base class of provider value objects: immutable and strict about field names."""

    model_config = ConfigDict(frozen=True, extra="forbid")
