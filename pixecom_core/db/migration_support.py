"""Small helpers migrations share (what they need from the Alembic context)."""

from __future__ import annotations

from alembic import op


def app_role() -> str:
    """The application role migrations grant to, quoted as an identifier.

    It comes from configuration (``config.attributes['app_role']``, set by
    :func:`pixecom_core.db.admin.alembic_config`), so it is quoted, never interpolated raw.
    """
    context = op.get_context()
    role = context.config.attributes["app_role"] if context.config is not None else None
    if not role:
        raise RuntimeError("the migration needs config.attributes['app_role']")
    return str(context.dialect.identifier_preparer.quote_identifier(str(role)))
