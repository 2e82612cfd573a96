"""Routes for catalog (filled in by the catalog work; mounted by the app already)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["catalog"])
