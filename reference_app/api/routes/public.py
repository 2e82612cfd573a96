"""Routes for storefront (filled in by the storefront work; mounted by the app already)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["storefront"])
