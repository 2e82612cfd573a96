"""`pixecom serve` refuses a misconfiguration before any API process starts."""

from __future__ import annotations

import json

from tests.deploy.conftest import RunPixecom, free_loopback_port


def test_serve_refuses_placeholder_secrets_with_ex_config(run_pixecom: RunPixecom) -> None:
    result = run_pixecom(
        "serve",
        "--port",
        str(free_loopback_port()),
        "--workers",
        "2",
        env={
            "PIXECOM_MODE": "production",
            "DATABASE_URL": "postgresql://pixecom@127.0.0.1:1/pixecom",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "PIXECOM_JWT_SIGNING_KEYS": json.dumps(["changeme"]),
            "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(["changeme"]),
            "PIXECOM_REFRESH_TOKEN_PEPPER": "changeme",
        },
        timeout=60,
    )

    assert result.returncode == 78  # EX_CONFIG: systemd's RestartPreventExitStatus
    assert "PIXECOM_JWT_SIGNING_KEYS" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Uvicorn running" not in result.stderr + result.stdout


def test_serve_refuses_a_missing_redis_url(run_pixecom: RunPixecom) -> None:
    result = run_pixecom(
        "serve",
        env={"PIXECOM_MODE": "dev", "DATABASE_URL": "postgresql://pixecom@127.0.0.1:1/pixecom"},
        timeout=60,
    )

    assert result.returncode == 78, result.stderr
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
