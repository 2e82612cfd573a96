"""Misconfiguration ends a command with one clear line and a non-zero status, no traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_app.cli import EXIT_CONFIGURATION_ERROR, EXIT_SERVICE_UNAVAILABLE
from reference_app.keys import new_secret

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


def strong_secrets() -> dict[str, str]:
    return {
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps([new_secret()]),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps([new_secret()]),
        "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps([new_secret()]),
    }


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pixecom: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [("db", "upgrade"), ("db", "maintain")])
@pytest.mark.parametrize("mode", ["production", "test"])
def test_weak_secrets_outside_dev_mode_are_refused(
    run_pixecom: RunPixecom, command: tuple[str, ...], mode: str
) -> None:
    env = {
        **strong_secrets(),
        "PIXECOM_MODE": mode,
        "PIXECOM_JWT_SIGNING_KEYS": '["changeme"]',
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    }

    result = run_pixecom(*command, env=env)

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(
        result,
        f"refusing to start in {mode} mode",
        "PIXECOM_JWT_SIGNING_KEYS[0]",
        "pixecom keys generate",
    )


def test_missing_secrets_in_production_are_refused(run_pixecom: RunPixecom) -> None:
    result = run_pixecom("db", "upgrade", env={"DATABASE_URL": "postgresql://localhost/x"})

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(result, "PIXECOM_REFRESH_TOKEN_PEPPERS is not set")


def test_missing_database_url_is_explained(run_pixecom: RunPixecom) -> None:
    result = run_pixecom("db", "upgrade", env=strong_secrets())

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(result, "DATABASE_URL is not set", "pixecom dev")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("dev",)])
def test_malformed_setting_names_the_variable(
    run_pixecom: RunPixecom, command: tuple[str, ...]
) -> None:
    # Settings are validated before `dev` starts anything, so this fails fast even there.
    result = run_pixecom(*command, env={**strong_secrets(), "PIXECOM_DB_POOL_SIZE": "0"})

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(result, "PIXECOM_DB_POOL_SIZE")


def test_unreachable_database_is_one_line(run_pixecom: RunPixecom, free_port: int) -> None:
    env = {**strong_secrets(), "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port}/x"}

    result = run_pixecom("db", "upgrade", env=env)

    assert result.returncode == EXIT_SERVICE_UNAVAILABLE
    assert_one_line_error(result, "cannot reach PostgreSQL")


def test_every_command_has_help(run_pixecom: RunPixecom) -> None:
    for command in [
        (),
        ("dev",),
        ("db",),
        ("db", "upgrade"),
        ("db", "maintain"),
        ("keys",),
        ("keys", "generate"),
        ("plugins",),
    ]:
        result = run_pixecom(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: pixecom" in result.stdout


def test_a_missing_secret_file_is_one_line(run_pixecom: RunPixecom, tmp_path: Path) -> None:
    env = {**strong_secrets(), "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"}
    del env["PIXECOM_REFRESH_TOKEN_PEPPERS"]
    env["PIXECOM_REFRESH_TOKEN_PEPPERS_FILE"] = str(tmp_path / "absent")

    result = run_pixecom("db", "upgrade", env=env)

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(result, "PIXECOM_REFRESH_TOKEN_PEPPERS_FILE names", "cannot be read")


def test_a_secret_given_twice_is_one_line(run_pixecom: RunPixecom, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "PIXECOM_JWT_SIGNING_KEYS").write_text(json.dumps([new_secret()]))
    env = {
        **strong_secrets(),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x",
        "CREDENTIALS_DIRECTORY": str(credentials),
    }

    result = run_pixecom("db", "upgrade", env=env)

    assert result.returncode == EXIT_CONFIGURATION_ERROR
    assert_one_line_error(result, "PIXECOM_JWT_SIGNING_KEYS and $CREDENTIALS_DIRECTORY/")
