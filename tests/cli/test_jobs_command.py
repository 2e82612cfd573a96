"""`pixecom jobs dead-letters` and `pixecom jobs resolve` against the test database."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable

import psycopg

from pixecom_core.testing.databases import TestDatabase

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


def env_for(database: TestDatabase) -> dict[str, str]:
    settings = database.settings
    return {
        "PIXECOM_MODE": "test",
        "DATABASE_URL": database.owner_dsn,
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps(
            [k.get_secret_value() for k in settings.jwt_signing_keys]
        ),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(
            [k.get_secret_value() for k in settings.token_encryption_keys]
        ),
        "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps(
            [k.get_secret_value() for k in settings.refresh_token_peppers]
        ),
    }


def test_dead_letters_are_listed_and_resolved(
    run_pixecom: RunPixecom, database: TestDatabase
) -> None:
    task_id = f"task-{uuid.uuid4().hex}"
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO dead_letters (task_name, task_id, error, attempts) VALUES"
            " ('pixecom.sync_seller', %s, 'RuntimeError: parser bug\nsecond line', 3)"
            " RETURNING id",
            (task_id,),
        ).fetchone()
    assert row is not None
    env = env_for(database)

    listed = run_pixecom("jobs", "dead-letters", env=env)
    resolved = run_pixecom("jobs", "resolve", str(row[0]), env=env)
    again = run_pixecom("jobs", "resolve", str(row[0]), env=env)
    after = run_pixecom("jobs", "dead-letters", env=env)
    everything = run_pixecom("jobs", "dead-letters", "--all", env=env)

    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(f"{row[0]}\t"))
    assert "pixecom.sync_seller" in line and "attempts=3" in line and "open" in line
    assert "RuntimeError: parser bug second line" in line
    assert resolved.returncode == 0 and f"dead letter {row[0]} resolved" in resolved.stdout
    assert again.returncode == 1 and "no open dead letter" in again.stderr
    assert f"{row[0]}\t" not in after.stdout
    assert any(
        entry.startswith(f"{row[0]}\t") and "resolved" in entry
        for entry in everything.stdout.splitlines()
    )
