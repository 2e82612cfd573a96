"""Smoke runs of `pixecom simulate` need the Meta, Stripe and 17TRACK plugins installed
(editable), real servers (DATABASE_URL / REDIS_URL, else embedded) and a few minutes."""
