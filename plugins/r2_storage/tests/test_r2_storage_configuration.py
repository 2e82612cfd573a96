"""An unconfigured bucket is refused with the variables to set, under ``python -O`` too
(issue 13 #8: the check is explicit, not an ``assert``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from pixecom_r2_storage.client import R2Client
from pixecom_r2_storage.errors import R2NotConfigured
from pixecom_r2_storage.settings import R2Settings


@pytest.mark.usefixtures("clean_environment")
def test_the_bucket_of_an_unconfigured_client_names_every_missing_variable() -> None:
    client = R2Client(R2Settings(endpoint_url="http://127.0.0.1:9"))

    with pytest.raises(R2NotConfigured) as caught:
        _ = client.bucket

    assert "PIXECOM_R2_BUCKET" in str(caught.value)
    assert "PIXECOM_R2_SECRET_ACCESS_KEY" in str(caught.value)
    assert "PIXECOM_R2_ENDPOINT_URL" not in str(caught.value)


def test_the_check_holds_under_python_dash_o() -> None:
    script = textwrap.dedent(
        """
        assert False, "asserts are on: this check needs python -O"
        from pixecom_r2_storage.client import R2Client
        from pixecom_r2_storage.errors import R2NotConfigured
        from pixecom_r2_storage.settings import R2Settings

        client = R2Client(R2Settings(endpoint_url="http://127.0.0.1:9", access_key_id="id"))
        try:
            client.bucket
        except R2NotConfigured as exc:
            print("refused:", exc)
        """
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIXECOM_R2_", "PYTHONOPTIMIZE"))
    }
    done = subprocess.run(
        [sys.executable, "-O", "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "refused: Cloudflare R2 is not configured: set PIXECOM_R2_BUCKET" in done.stdout
