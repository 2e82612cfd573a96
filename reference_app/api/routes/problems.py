"""A seller's open problems: dead-lettered jobs, stuck payment webhooks, failing syncs,
orders whose payment does not match them.

Read-only and seller-scoped: the seller comes from the access token (TENANT-1). The
dashboard shows this feed so a seller sees why numbers are missing instead of zeros
(SELLER-2, OPS-2: failures no longer vanish).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pixecom_core.problems import Problem, ProblemKind, ProblemReports
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.schemas import PageOut

router = APIRouter(tags=["problems"])


class ProblemOut(BaseModel):
    """One open problem of the seller."""

    kind: ProblemKind = Field(
        description="dead_letter: a job failed for good; webhook: a payment webhook is "
        "retried (DEFERRED) or parked (FAILED); sync_error: an ad account's sync fails; "
        "payment_mismatch: an order's captured money does not match it (UNDERPAID, "
        "NEEDS_REVIEW)."
    )
    key: str = Field(description="Stable id within the kind.")
    occurred_at: datetime
    subject: str = Field(description="What failed: a task, a webhook, an ad account.")
    state: str
    error: str | None = Field(
        description="What went wrong, in words for the seller: never SQL, a stack trace or "
        "an internal name (the raw error stays with the operator)."
    )
    attempts: int

    @classmethod
    def of(cls, problem: Problem) -> ProblemOut:
        return cls.model_validate(problem, from_attributes=True)


@router.get(
    "/problems",
    response_model=PageOut[ProblemOut],
    summary="The seller's open problems, newest first",
    responses=error_responses(400, 401, 422, 429),
)
async def list_problems(seller: CurrentSeller, paging: Paging) -> PageOut[ProblemOut]:
    """Unresolved dead letters, DEFERRED/FAILED webhooks attributed to the seller,
    failing ad-account syncs and orders whose captured money does not match them; 400
    ``invalid_cursor`` for a cursor this list did not issue."""
    page = await ProblemReports(seller).open_problems(paging)
    return PageOut[ProblemOut].of(page, ProblemOut.of)
