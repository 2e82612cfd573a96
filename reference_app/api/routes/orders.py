"""Routes for orders (filled in by the orders work; mounted by the app already)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["orders"])
