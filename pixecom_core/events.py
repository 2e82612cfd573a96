"""Announcing core's events to plugins: after commit, one implementation at a time.

Core tells plugins what happened through the ``pixecom_on_*`` hooks
(:mod:`pixecom_core.hookspecs.events`). Every service announces through
:func:`announce`, and only once the transaction that made the change has committed: a
rollback must never tell a plugin about a change that did not happen (issue 13 item 3).

Pluggy's own hook call stops at the first implementation that raises, so one broken
plugin would silence every plugin after it. :func:`announce` calls each implementation on
its own instead, in pluggy's order, and a failure is logged with the plugin's name and
counted in ``pixecom_event_hook_failures_total{hook, plugin}`` (see
:func:`count_hook_failures`); the plugins after it are still called, and the committed
change stands.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import pluggy
from prometheus_client import CollectorRegistry, Counter

_log = logging.getLogger(__name__)

# The failure counters of this process: one per metrics registry (an app or a worker has
# its own, see pixecom_core.observability.metrics); weak, so a test's registry and its
# counter go away together.
_failure_counters: weakref.WeakSet[Counter] = weakref.WeakSet()


def count_hook_failures(registry: CollectorRegistry) -> Counter:
    """Count this process's event hook failures in ``registry``; return the counter.

    The API's and the worker's metrics call this once for their registry
    (:class:`~pixecom_core.observability.metrics.HttpMetrics`,
    :class:`~pixecom_core.observability.metrics.TaskMetrics`). Failures are always logged,
    counted or not.
    """
    counter = Counter(
        "pixecom_event_hook_failures",
        "Event hook implementations that raised, by hook and plugin (the others still ran).",
        ["hook", "plugin"],
        registry=registry,
    )
    _failure_counters.add(counter)
    return counter


def announce(pm: pluggy.PluginManager | None, hook_name: str, /, **kwargs: Any) -> int:
    """Call every implementation of the event hook ``hook_name`` with ``kwargs``.

    Each implementation is called on its own, in pluggy's order (last registered first,
    ``tryfirst``/``trylast`` honoured) with the arguments it names; one that raises is
    logged and counted and the next is called. Results are ignored. Hook wrappers are not
    run around the calls (event hooks have none; a wrapper cannot see one call in
    isolation). Returns how many implementations failed.

    Call this only after the transaction that made the change has committed.

    :param pm: the plugin manager; ``None`` announces nothing.
    :param hook_name: a ``pixecom_on_*`` hook (a misspelt name raises ``AttributeError``).
    """
    if pm is None:
        return 0
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    failures = 0
    # get_hookimpls() lists in ascending priority; pluggy calls the last one first.
    for implementation in reversed(caller.get_hookimpls()):
        if implementation.wrapper or implementation.hookwrapper:
            continue
        arguments = [kwargs[name] for name in implementation.argnames]
        try:
            implementation.function(*arguments)
        except Exception:  # one plugin's failure never silences the others
            failures += 1
            _log.exception(
                "the %s implementation of plugin %r failed; the other plugins were still called",
                hook_name,
                implementation.plugin_name,
                extra={"hook": hook_name, "plugin": implementation.plugin_name},
            )
            for counter in list(_failure_counters):
                counter.labels(hook_name, implementation.plugin_name).inc()
    return failures


__all__ = ["announce", "count_hook_failures"]
