"""Fixtures: the reference app's settings on this run's database for one PayPal test."""

import secrets
import uuid

import pytest
from pydantic import SecretStr

from pixecom_core.settings import Settings


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The reference app's settings for one test: its own Redis keys and admin API key."""
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-paypal-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(secrets.token_urlsafe(48)),
        }
    )
