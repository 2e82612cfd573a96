"""`pixecom keys rotate`: ad-account tokens move to the newest key, seller by seller.

Runs against a database whose owner is not a superuser, so FORCE row-level security
applies to the owner too: the rotation must reach every seller through the seller
directory and each seller's scope, never by bypassing RLS.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from pydantic import SecretStr

from pixecom_core.providers import MerchantAccount
from pixecom_core.security.secret_box import SecretBox, key_version
from reference_app.keys import new_secret
from tests.conftest import RestrictedOwnerDatabase
from tests.db.tenant_rows import insert_seller, seller_scope

RunPixecom = Callable[..., subprocess.CompletedProcess[str]]
Connection = psycopg.Connection[tuple[Any, ...]]


def env_for(owner_dsn: str, encryption_keys: list[str]) -> dict[str, str]:
    return {
        "PIXECOM_MODE": "production",
        "DATABASE_URL": owner_dsn,
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps([new_secret()]),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(encryption_keys),
        "PIXECOM_REFRESH_TOKEN_PEPPER": new_secret(),
    }


def add_ad_account(
    conn: Connection, seller_id: uuid.UUID, token: str | None, box: SecretBox
) -> uuid.UUID:
    with seller_scope(conn, seller_id):
        row = conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, currency,"
            " token_ciphertext, token_key_version) VALUES (%s, 'meta', %s, 'acct', 'UTC', 'USD',"
            " %s, %s) RETURNING id",
            (
                seller_id,
                f"act_{uuid.uuid4().hex[:10]}",
                box.encrypt(token) if token is not None else None,
                box.primary_version if token is not None else None,
            ),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def stored(
    conn: Connection, seller_id: uuid.UUID
) -> dict[uuid.UUID, tuple[bytes | None, int | None]]:
    with seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT id, token_ciphertext, token_key_version FROM ad_accounts"
        ).fetchall()
    return {row[0]: (bytes(row[1]) if row[1] is not None else None, row[2]) for row in rows}


def arrange(
    db: RestrictedOwnerDatabase, old_key: str, sellers: int
) -> dict[uuid.UUID, dict[uuid.UUID, str | None]]:
    """Sellers, each with two tokens under ``old_key`` and one account without a token."""
    box = SecretBox([SecretStr(old_key)])
    plaintexts: dict[uuid.UUID, dict[uuid.UUID, str | None]] = {}
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        for _ in range(sellers):
            seller_id = uuid.uuid4()
            insert_seller(conn, seller_id)
            accounts: dict[uuid.UUID, str | None] = {}
            for token in (f"EAAB-{uuid.uuid4().hex}", f"EAAB-{uuid.uuid4().hex}", None):
                accounts[add_ad_account(conn, seller_id, token, box)] = token
            plaintexts[seller_id] = accounts
    return plaintexts


#: A token no key decrypts.
DAMAGED = b"gAAAAA-not-a-fernet-token"


def assert_under(
    db: RestrictedOwnerDatabase,
    plaintexts: dict[uuid.UUID, dict[uuid.UUID, str | None]],
    key: str,
    *,
    left: dict[uuid.UUID, tuple[bytes, int]] | None = None,
) -> None:
    """Every token of ``plaintexts`` is stored under ``key`` alone, but the accounts of
    ``left``, which keep the (ciphertext, key version) given; no token stays no token."""
    only = SecretBox([SecretStr(key)])
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        for seller_id, accounts in plaintexts.items():
            rows = stored(conn, seller_id)
            for account_id, token in accounts.items():
                ciphertext, version = rows[account_id]
                if left is not None and account_id in left:
                    assert (ciphertext, version) == left[account_id]
                elif token is None:
                    assert (ciphertext, version) == (None, None)
                else:
                    assert ciphertext is not None
                    assert only.decrypt(ciphertext) == token
                    assert version == key_version(key)


def test_rotate_reencrypts_every_sellers_tokens_under_forced_rls(
    run_pixecom: RunPixecom, restricted_owner_database: RestrictedOwnerDatabase
) -> None:
    db = restricted_owner_database
    old_key, new_key = new_secret(), new_secret()
    plaintexts = arrange(db, old_key, sellers=3)

    result = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key, old_key]))

    assert result.returncode == 0, result.stderr
    assert "re-encrypted 6 stored secret(s) of 3 seller(s)" in result.stdout
    assert_under(db, plaintexts, new_key)

    again = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key, old_key]))
    assert again.returncode == 0, again.stderr
    assert "re-encrypted 0 stored secret(s) of 0 seller(s); 3 seller(s) checked" in again.stdout


def test_rotate_without_the_old_key_fails_clearly_and_loses_nothing(
    run_pixecom: RunPixecom, restricted_owner_database: RestrictedOwnerDatabase
) -> None:
    db = restricted_owner_database
    old_key, new_key = new_secret(), new_secret()
    plaintexts = arrange(db, old_key, sellers=1)
    [(seller_id, _)] = plaintexts.items()
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        before = stored(conn, seller_id)

    # The old key was removed before rotating: nothing can decrypt the tokens.
    result = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key]))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no configured key decrypts" in result.stderr
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        assert stored(conn, seller_id) == before


def test_a_damaged_secret_is_named_and_every_other_seller_still_rotates(
    run_pixecom: RunPixecom, restricted_owner_database: RestrictedOwnerDatabase
) -> None:
    """One row no key decrypts (say, damaged in a restore) must not leave a thousand
    sellers under the old key: the run rotates the rest, names that row, exits 1."""
    db = restricted_owner_database
    old_key, new_key = new_secret(), new_secret()
    plaintexts = arrange(db, old_key, sellers=3)
    # Damage one token of the seller the directory visits first, so the others come after.
    first_seller = min(plaintexts)
    damaged = next(account for account, token in plaintexts[first_seller].items() if token)
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        with seller_scope(conn, first_seller):
            conn.execute(
                "UPDATE ad_accounts SET token_ciphertext = %s WHERE id = %s",
                (DAMAGED, damaged),
            )

    result = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key, old_key]))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"ad_accounts row {damaged} of seller {first_seller}" in result.stderr
    assert "re-encrypted 5 stored secret(s) of 3 seller(s)" in result.stdout
    assert_under(db, plaintexts, new_key, left={damaged: (DAMAGED, key_version(old_key))})

    # Fixed (here: the row's account reconnected with a fresh token), a re-run finishes.
    only_new = SecretBox([SecretStr(new_key)])
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        with seller_scope(conn, first_seller):
            conn.execute(
                "UPDATE ad_accounts SET token_ciphertext = %s, token_key_version = %s"
                " WHERE id = %s",
                (only_new.encrypt("EAAB-fresh"), only_new.primary_version, damaged),
            )
    again = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key, old_key]))
    assert again.returncode == 0, again.stderr
    assert "re-encrypted 0 stored secret(s)" in again.stdout


def test_rotate_reencrypts_sellers_payment_accounts(
    run_pixecom: RunPixecom, restricted_owner_database: RestrictedOwnerDatabase
) -> None:
    """A seller's own gateway account (issue 15), credentials included, is a stored
    secret like a token: rotated under the newest key, readable with it alone."""
    db = restricted_owner_database
    old_key, new_key = new_secret(), new_secret()
    account = MerchantAccount(
        account_id="merchant-1", client_id="app-1", credentials=SecretStr("client-secret-1")
    ).model_dump_json()
    seller_id = uuid.uuid4()
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            conn.execute(
                "INSERT INTO payment_connections (seller_id, gateway, status, state_nonce,"
                " state_expires_at, account_id, account_ciphertext, account_key_version)"
                " VALUES (%s, 'paypal', 'ACTIVE', 'n', now(), 'merchant-1', %s, %s)",
                (seller_id, SecretBox([SecretStr(old_key)]).encrypt(account), key_version(old_key)),
            )

    result = run_pixecom("keys", "rotate", env=env_for(db.owner_dsn, [new_key, old_key]))

    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 stored secret(s) of 1 seller(s)" in result.stdout
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT account_ciphertext, account_key_version FROM payment_connections"
        ).fetchone()
    assert row is not None and row[1] == key_version(new_key)
    assert SecretBox([SecretStr(new_key)]).decrypt(bytes(row[0])) == account
