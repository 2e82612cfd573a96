"""PayPal's secrets may come from files, so production keeps them out of the environment."""

import os
from pathlib import Path

import pytest
from pixecom_paypal.settings import PayPalSettings

from pixecom_core.testing.secrets import check_secrets_read_from_files


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_PAYPAL_"):
            monkeypatch.delenv(name)


def test_every_secret_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Production keeps secrets out of the environment (issue 12 item 8).
    assert check_secrets_read_from_files(PayPalSettings, monkeypatch, tmp_path)


def test_a_missing_secret_file_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXECOM_PAYPAL_CLIENT_SECRET_FILE", str(tmp_path / "absent"))

    with pytest.raises(RuntimeError, match="PIXECOM_PAYPAL_CLIENT_SECRET_FILE"):
        PayPalSettings()
