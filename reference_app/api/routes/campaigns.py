"""Routes for campaigns (filled in by the campaigns work; mounted by the app already)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["campaigns"])
