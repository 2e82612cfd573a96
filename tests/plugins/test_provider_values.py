"""Provider value objects refuse what would corrupt numbers downstream."""

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from pixecom_core.providers import (
    AdAccountCredentials,
    EntityLevel,
    GatewayPaymentEvent,
    InsightRow,
    PaymentEventKind,
    UploadRequest,
)

FETCHED_AT = datetime(2025, 3, 2, 6, 0, tzinfo=UTC)


def insight(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "network": "meta",
        "entity_type": EntityLevel.AD,
        "entity_id": "120210000000001",
        "date_start": date(2025, 3, 1),
        "date_stop": date(2025, 3, 1),
        "spend_micros": 12_340_000,
        "impressions": 1000,
        "clicks": 40,
        "purchases": 2,
        "purchase_value_micros": 59_980_000,
        "currency": "USD",
        "fetched_at": FETCHED_AT,
    }
    return row | overrides


def test_insight_row_accepts_one_day() -> None:
    row = InsightRow(**insight())

    assert row.spend_micros == 12_340_000
    assert row.entity_type is EntityLevel.AD


def test_insight_row_spanning_several_days_is_refused() -> None:
    with pytest.raises(ValidationError, match="insight rows cover one day"):
        InsightRow(**insight(date_stop=date(2025, 3, 2)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"spend_micros": -1},
        {"clicks": -1},
        {"currency": "usd"},
        {"currency": "US"},
        {"fetched_at": datetime(2025, 3, 2, 6, 0)},  # naive: which day it is becomes a guess
        {"spend": 1.5},  # unknown field: floats never sneak in beside the micros
    ],
)
def test_insight_row_refuses_bad_numbers(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        InsightRow(**insight(**overrides))


def test_values_are_frozen() -> None:
    row = InsightRow(**insight())

    with pytest.raises(ValidationError):
        row.spend_micros = 0  # type: ignore[misc]


def test_refund_amounts_are_positive_with_their_kind() -> None:
    with pytest.raises(ValidationError):
        GatewayPaymentEvent(
            gateway="stripe",
            event_id="evt_1",
            gateway_reference="pi_1",
            fact_reference="re_1",
            kind=PaymentEventKind.REFUNDED,
            amount_minor=-500,
            currency="EUR",
            occurred_at=FETCHED_AT,
        )


def test_access_token_is_not_shown() -> None:
    credentials = AdAccountCredentials(
        seller_id=uuid.uuid4(), account_id="act_1", access_token=SecretStr("EAAB-secret")
    )

    assert "EAAB-secret" not in repr(credentials)
    assert credentials.access_token.get_secret_value() == "EAAB-secret"


@pytest.mark.parametrize("key", ["/sellers/a/logo.png", "sellers/a/../b/logo.png", ".."])
def test_upload_key_cannot_escape_its_prefix(key: str) -> None:
    with pytest.raises(ValidationError, match="relative without '..' segments"):
        UploadRequest(
            seller_id=uuid.uuid4(), key=key, content_type="image/png", content_length=1024
        )
