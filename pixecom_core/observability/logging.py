"""Structured logs: one configuration for the API, the workers, the scheduler and ``pixecom dev``.

Every line is one JSON object (or, for people, one coloured console line) carrying the
time, level, logger and event plus whatever the current context has bound: the request id
and the authenticated seller in the API, the task name, task id and seller in a worker.
Context lives in :mod:`contextvars` (structlog's ``merge_contextvars``), so it follows a
request or a task through every ``await`` and never leaks into a concurrent one.

Records from the standard library's :mod:`logging` — uvicorn's, taskiq's, our own
``logging.getLogger(__name__)`` calls — go through the same processors
(:class:`structlog.stdlib.ProcessorFormatter`), so a log shipper sees one format.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from pixecom_core.settings import LogFormat, Mode, Settings

#: Loggers whose own handlers would print a second, unstructured copy of each record.
_THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "taskiq", "alembic")
#: uvicorn's access log: every request is already logged, with more fields, by the API's
#: observability middleware.
_SILENCED_LOGGERS = ("uvicorn.access",)


def log_format(settings: Settings) -> LogFormat:
    """The format in force: the setting, else console in dev mode and JSON otherwise."""
    if settings.log_format is not None:
        return settings.log_format
    return LogFormat.CONSOLE if settings.mode is Mode.DEV else LogFormat.JSON


def _shared_processors(process: str) -> list[Processor]:
    def add_process(_logger: Any, _name: str, event: structlog.typing.EventDict) -> Any:
        event.setdefault("process", process)
        return event

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_process,
    ]


def configure_logging(settings: Settings, *, process: str, stream: TextIO | None = None) -> None:
    """Send every log record of this process, structlog's and stdlib's, to ``stream``.

    :param process: what this process is (``api``, ``worker-payments``, ``scheduler``,
        ``dev``); every line carries it as ``process``.
    :param stream: where lines go; standard error when not given.

    Calling it again replaces the previous configuration (tests do).
    """
    shared = _shared_processors(process)
    renderer: Processor
    if log_format(settings) is LogFormat.JSON:
        # UTF-8 as is: operators grep these lines for the words they read.
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        final: list[Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: reconfiguring (tests, `pixecom dev` before uvicorn) must take effect
        # for loggers created earlier.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=final,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in _THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in _SILENCED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = False


def bind_log_context(**values: object) -> None:
    """Add ``values`` to every line logged from the current context on (request, task)."""
    structlog.contextvars.bind_contextvars(**values)


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind ``values`` for the body only, restoring what was bound before."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def clear_log_context() -> None:
    """Forget everything bound in the current context (at the start of a request)."""
    structlog.contextvars.clear_contextvars()


__all__ = [
    "bind_log_context",
    "clear_log_context",
    "configure_logging",
    "log_context",
    "log_format",
]
