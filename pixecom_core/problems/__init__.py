"""What went wrong for a seller: failed jobs, stuck payment webhooks, failing syncs."""

from pixecom_core.problems.service import Problem, ProblemKind, ProblemReports

__all__ = ["Problem", "ProblemKind", "ProblemReports"]
