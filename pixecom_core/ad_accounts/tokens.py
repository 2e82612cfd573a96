"""Ad-account access tokens: encrypted at rest, re-encrypted when the key changes.

Three tables hold such secrets: ``ad_accounts`` (the token each account syncs with),
``ad_connections`` (the grant a seller's consent gave, which the account chooser reads)
and ``payment_connections`` (a seller's own gateway account and its credentials, issue 15).
Tokens are encrypted with :class:`pixecom_core.security.secret_box.SecretBox`
(MultiFernet): the first key of ``PIXECOM_TOKEN_ENCRYPTION_KEYS`` encrypts, every key
decrypts. ``token_key_version`` records which key encrypted a row, so after a new key is
put first, :func:`rotate_ad_account_tokens` re-encrypts exactly the rows still under an
older key — seller by seller, in each seller's scope — and the old key can then be
removed (SEC-5: "ENCRYPTION_KEY … changing requires re-encryption").

A row that no configured key decrypts (its key was removed too early, or the value is
damaged) does not stop the rotation: it keeps its ciphertext, is named in the report, and
every other seller's secrets still move to the newest key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.models.ads import AdAccount, AdConnection
from pixecom_core.models.conversions import ConversionDestinationRow
from pixecom_core.models.payments import PaymentConnection
from pixecom_core.security.secret_box import SecretBox, SecretDecryptionError
from pixecom_core.settings import Settings
from pixecom_core.tenancy import open_seller_scope

#: A table with an encrypted secret and the version of the key that encrypted it.
TokenRow = AdAccount | AdConnection | PaymentConnection | ConversionDestinationRow
#: Each such table, with its ciphertext and key-version columns.
ENCRYPTED_COLUMNS: tuple[tuple[type[TokenRow], str, str], ...] = (
    (AdAccount, "token_ciphertext", "token_key_version"),
    (AdConnection, "token_ciphertext", "token_key_version"),
    (PaymentConnection, "account_ciphertext", "account_key_version"),
    (ConversionDestinationRow, "token_ciphertext", "token_key_version"),
)

_SELLER_PAGE = text("SELECT seller_id FROM pixecom_seller_directory(:after, :max_rows)")
#: Sellers read from the directory per round trip.
DIRECTORY_PAGE_SIZE = 500
#: Ad accounts re-encrypted per transaction, so a large seller never holds long locks.
ROTATION_BATCH_SIZE = 200


@dataclass(frozen=True)
class UndecryptableSecret:
    """A stored secret no configured key decrypts: left as it was by the rotation."""

    table: str
    row_id: uuid.UUID
    seller_id: uuid.UUID


@dataclass
class RotationReport:
    """What a rotation run did.

    ``undecryptable`` lists the rows left under their old ciphertext because no configured
    key decrypts them; a run with any is incomplete (``pixecom keys rotate`` exits 1 and
    names them), and the old keys must stay until they are resolved.
    """

    sellers_visited: int = 0
    tokens_reencrypted: int = 0
    sellers_with_changes: list[uuid.UUID] = field(default_factory=list)
    undecryptable: list[UndecryptableSecret] = field(default_factory=list)


async def _seller_ids(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[uuid.UUID]:
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    _SELLER_PAGE, {"after": after, "max_rows": DIRECTORY_PAGE_SIZE}
                )
            ).all()
        for row in rows:
            yield row.seller_id
        if len(rows) < DIRECTORY_PAGE_SIZE:
            return
        after = rows[-1].seller_id


async def rotate_ad_account_tokens(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, box: SecretBox
) -> RotationReport:
    """Re-encrypt every stored ad-account token, ad-connection grant and payment-connection
    account not under the newest key.

    Idempotent and resumable: rows already under the newest key are skipped, so running
    it again (after an interruption, say) only finishes the rest. Raises
    :class:`pixecom_core.security.secret_box.SecretDecryptionError` when a token's key is
    no longer configured — nothing is lost: that row keeps its old ciphertext.
    """
    report = RotationReport()
    async for seller_id in _seller_ids(sessions):
        report.sellers_visited += 1
        changed = 0
        for model, ciphertext, version in ENCRYPTED_COLUMNS:
            changed += await _rotate_table(
                sessions, settings, box, seller_id, model, ciphertext, version, report
            )
        if changed:
            report.tokens_reencrypted += changed
            report.sellers_with_changes.append(seller_id)
    return report


async def _rotate_table(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    box: SecretBox,
    seller_id: uuid.UUID,
    model: type[TokenRow],
    ciphertext: str,
    version: str,
    report: RotationReport,
) -> int:
    changed = 0
    row_id = col(getattr(model, "id"))  # noqa: B009
    after: uuid.UUID | None = None
    while True:
        # Keyset pages by id: a row left undecryptable stays under its old key and must
        # not be read again forever.
        page = (
            select(model)
            .where(
                col(getattr(model, "seller_id")) == seller_id,  # noqa: B009
                col(getattr(model, ciphertext)).is_not(None),
                col(getattr(model, version)).is_distinct_from(box.primary_version),
            )
            .order_by(row_id)
            .limit(ROTATION_BATCH_SIZE)
            .with_for_update()
        )
        if after is not None:
            page = page.where(row_id > after)
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            rows = list((await scope.session.scalars(page)).all())
            for row in rows:
                try:
                    rotated = box.rotate(getattr(row, ciphertext))
                except SecretDecryptionError:
                    report.undecryptable.append(
                        UndecryptableSecret(model.__tablename__, row.id, seller_id)
                    )
                    continue
                setattr(row, ciphertext, rotated)
                setattr(row, version, box.primary_version)
                changed += 1
        if len(rows) < ROTATION_BATCH_SIZE:
            return changed
        after = rows[-1].id
