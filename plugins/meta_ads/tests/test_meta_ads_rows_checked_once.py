"""Insight rows are checked once by the plugin, not by pydantic per field (issue 18 item 3):
what it builds is exactly what core's validation would build, and what core's validation
refuses the plugin refuses too."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pixecom_meta_ads.rows import MalformedInsight, insight_row

from pixecom_core.providers import EntityLevel, InsightRow

FETCHED_AT = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def item(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "campaign_id": "120001",
        "date_start": "2026-03-10",
        "date_stop": "2026-03-10",
        "account_currency": "eur",
        "spend": "12.5",
        "impressions": "1021",
        "inline_link_clicks": "31",
        "actions": [{"action_type": "omni_purchase", "value": "2"}],
        "action_values": [{"action_type": "omni_purchase", "value": "59.90"}],
    }
    values.update(changes)
    return values


def read(raw: dict[str, Any], fetched_at: datetime = FETCHED_AT) -> InsightRow:
    return insight_row(
        raw,
        level=EntityLevel.CAMPAIGN,
        purchase_action_type="omni_purchase",
        clicks_field="inline_link_clicks",
        fetched_at=fetched_at,
    )


@given(
    spend=st.decimals(min_value=0, max_value=10**7, places=2).map(str),
    impressions=st.integers(min_value=0, max_value=10**9).map(str),
    currency=st.sampled_from(["usd", "EUR", "Jpy"]),
)
def test_a_row_equals_what_cores_validation_builds(
    spend: str, impressions: str, currency: str
) -> None:
    row = read(item(spend=spend, impressions=impressions, account_currency=currency))

    assert InsightRow.model_validate(row.model_dump()) == row
    assert row.currency == currency.upper()


@pytest.mark.parametrize(
    ("changes", "fetched_at", "reason"),
    [
        ({"account_currency": "EURO"}, FETCHED_AT, "ISO 4217"),
        ({"account_currency": "E1R"}, FETCHED_AT, "ISO 4217"),
        ({"account_currency": "\u00e9ur"}, FETCHED_AT, "ISO 4217"),
        ({"date_stop": "2026-03-11"}, FETCHED_AT, "one day"),
        ({}, datetime(2026, 3, 15, 12, 0), "timezone-aware"),
    ],
)
def test_what_core_refuses_the_plugin_refuses(
    changes: dict[str, Any], fetched_at: datetime, reason: str
) -> None:
    with pytest.raises(MalformedInsight, match=reason):
        read(item(**changes), fetched_at)
