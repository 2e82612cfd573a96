"""Routes for creatives (filled in by the creatives work; mounted by the app already)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["creatives"])
