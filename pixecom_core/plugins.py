"""The plugin manager: finds plugins, checks their hooks, and indexes the providers they offer.

Plugins are distributions that declare an entry point in the ``pixecom`` group::

    [project.entry-points.pixecom]
    stripe = "pixecom_stripe.plugin"

:func:`create_plugin_manager` builds a fresh :class:`pluggy.PluginManager` each time it is
called (tests get one each, apps build one at start-up) and :class:`ProviderRegistry` turns
the ``pixecom_register_*`` hooks into lookups by identifier::

    pm = create_plugin_manager()
    gateway = ProviderRegistry(pm).payment_gateway("stripe")
"""

import difflib
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

import pluggy

from pixecom_core.hookspecs import events as event_hookspecs
from pixecom_core.hookspecs import providers as provider_hookspecs
from pixecom_core.providers import (
    AdNetwork,
    CurrencyRateSource,
    PaymentGateway,
    Sandbox,
    Storage,
    Tracker,
)

PROJECT_NAME = "pixecom"
"""The pluggy project name and the entry-point group plugins are declared in."""

LOAD_PLUGINS_ENV = "PIXECOM_LOAD_PLUGINS"
"""Comma-separated entry-point names to load; unset loads all, an empty value loads none."""

PLUGIN_MODULES_ENV = "PIXECOM_PLUGIN_MODULES"
"""Comma-separated importable modules to register as plugins without packaging them (a
plugin under development, a test double in a worker process); loaded with entry points."""

_HOOKSPEC_MODULES = (provider_hookspecs, event_hookspecs)

_log = logging.getLogger(__name__)


class PluginLoadError(Exception):
    """A plugin declared through an entry point could not be loaded.

    :param entry_point: the entry point's name in the ``pixecom`` group.
    :param distribution: the distribution that declares it, or ``None`` if none does.
    """

    def __init__(self, message: str, *, entry_point: str, distribution: str | None) -> None:
        super().__init__(message)
        self.entry_point = entry_point
        self.distribution = distribution


class PluginValidationError(pluggy.PluginValidationError):
    """A plugin implements a hook that does not exist or with parameters the hook lacks.

    :param plugin: the offending plugin object.
    :param plugin_name: its registered name (the entry-point name for installed plugins).
    :param hook_name: the hook implementation at fault.
    """

    def __init__(self, plugin: object, message: str, *, plugin_name: str, hook_name: str) -> None:
        super().__init__(plugin, message)
        self.plugin_name = plugin_name
        self.hook_name = hook_name


class ProviderKind(StrEnum):
    """The kinds of provider a :class:`ProviderRegistry` indexes."""

    AD_NETWORK = "ad_network"
    PAYMENT_GATEWAY = "payment_gateway"
    TRACKER = "tracker"
    STORAGE = "storage"
    CURRENCY_RATES = "currency_rates"
    SANDBOX = "sandbox"

    @property
    def label(self) -> str:
        """The kind in words, for messages: ``"payment gateway"``."""
        return self.value.replace("_", " ")


class UnknownProviderError(LookupError):
    """No installed plugin provides the requested provider.

    :param kind: the kind looked up.
    :param name: the identifier (or sandbox name) asked for.
    :param installed: the identifiers of that kind that are installed, sorted.
    """

    def __init__(self, kind: ProviderKind, name: str, installed: list[str]) -> None:
        listing = ", ".join(installed) if installed else "none"
        message = f"no {kind.label} named {name!r}; installed: {listing}"
        close = difflib.get_close_matches(name, installed, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif not installed:
            message += f" (install a plugin that provides one, or check {LOAD_PLUGINS_ENV})"
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.installed = installed


class DuplicateProviderError(ValueError):
    """Two providers of the same kind claim the same identifier.

    Work is dispatched by identifier, so core refuses to guess which one is meant: uninstall
    one of the plugins or leave it out with ``PIXECOM_LOAD_PLUGINS``.
    """


class InvalidProviderError(TypeError):
    """A ``pixecom_register_*`` hook returned something that is not a provider of its kind."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What is known about one registered plugin.

    :param name: the registered name (the entry-point name for installed plugins).
    :param distribution: the distribution it came from, ``None`` for directly registered ones.
    :param version: that distribution's version.
    :param hooks: the hooks it implements, sorted.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


def create_plugin_manager(
    *,
    load_entry_points: bool = True,
    allow: Collection[str] | None = None,
    plugins: Iterable[object] = (),
) -> pluggy.PluginManager:
    """Build a plugin manager with every hookspec, the allowed installed plugins and ``plugins``.

    :param load_entry_points: load plugins declared in the ``pixecom`` entry-point group,
        and the modules named in ``PIXECOM_PLUGIN_MODULES``.
    :param allow: entry-point names to load; ``None`` reads ``PIXECOM_LOAD_PLUGINS`` and loads
        every installed plugin when that is unset too. Directly given plugins always load.
    :param plugins: plugin objects (modules, classes, instances) to register as they are.
    :raises PluginLoadError: an entry point failed to import or the allow-list names a plugin
        that is not installed.
    :raises PluginValidationError: a plugin implements an unknown hook or a hook parameter
        that does not exist.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    for spec_module in _HOOKSPEC_MODULES:
        pm.add_hookspecs(spec_module)
    if load_entry_points:
        _load_entry_points(pm, _allowed_names(allow))
        _load_plugin_modules(pm)
    for plugin in plugins:
        _register(pm, plugin, name=None)
    _check_pending(pm)
    return pm


def _allowed_names(allow: Collection[str] | None) -> frozenset[str] | None:
    if allow is not None:
        return frozenset(allow)
    configured = os.environ.get(LOAD_PLUGINS_ENV)
    if configured is None:
        return None
    return frozenset(name.strip() for name in configured.split(",") if name.strip())


def _load_entry_points(pm: pluggy.PluginManager, allowed: frozenset[str] | None) -> None:
    declared = importlib.metadata.entry_points(group=PROJECT_NAME)
    if allowed is not None:
        missing = sorted(allowed - set(declared.names))
        if missing:
            # A misspelt allow-list entry would otherwise silently run without the plugin.
            close = difflib.get_close_matches(missing[0], declared.names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginLoadError(
                f"{LOAD_PLUGINS_ENV} names {', '.join(map(repr, missing))} but no installed "
                f"distribution declares such a {PROJECT_NAME!r} entry point; installed: "
                f"{', '.join(sorted(declared.names)) or 'none'}{hint}",
                entry_point=missing[0],
                distribution=None,
            )
    for entry_point in sorted(declared, key=lambda ep: ep.name):
        if allowed is not None and entry_point.name not in allowed:
            continue
        dist = entry_point.dist
        distribution = dist.name if dist is not None else None
        origin = f"distribution {dist.name} {dist.version}" if dist else "an unknown distribution"
        if pm.has_plugin(entry_point.name):
            raise PluginLoadError(
                f"two plugins are named {entry_point.name!r}: {origin} declares a "
                f"{PROJECT_NAME!r} entry point whose name is already registered; "
                "uninstall one of them",
                entry_point=entry_point.name,
                distribution=distribution,
            )
        try:
            # pluggy's own loader records the distribution, which describe_plugins reports.
            pm.load_setuptools_entrypoints(PROJECT_NAME, name=entry_point.name)
        except pluggy.PluginValidationError as exc:
            raise _validation_error(
                pm, exc, plugin_name=entry_point.name, origin=f" from {origin}"
            ) from exc
        except Exception as exc:
            raise PluginLoadError(
                f"could not load plugin {entry_point.name!r} ({entry_point.value}) from "
                f"{origin}: {type(exc).__name__}: {exc}; fix or uninstall that "
                f"distribution, or leave it out with {LOAD_PLUGINS_ENV}",
                entry_point=entry_point.name,
                distribution=distribution,
            ) from exc


def _load_plugin_modules(pm: pluggy.PluginManager) -> None:
    configured = os.environ.get(PLUGIN_MODULES_ENV, "")
    for module_name in (name.strip() for name in configured.split(",")):
        if not module_name:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginLoadError(
                f"could not import {module_name!r} named in {PLUGIN_MODULES_ENV}: "
                f"{type(exc).__name__}: {exc}",
                entry_point=module_name,
                distribution=None,
            ) from exc
        _register(pm, module, name=module_name)


def _register(pm: pluggy.PluginManager, plugin: object, *, name: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise _validation_error(pm, exc, plugin_name=name, origin="") from exc


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise _validation_error(pm, exc, plugin_name=None, origin=_origin(pm, exc.plugin)) from exc


def _origin(pm: pluggy.PluginManager, plugin: object) -> str:
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            return f" from distribution {dist.project_name} {dist.version}"
    return ""


def _validation_error(
    pm: pluggy.PluginManager,
    exc: pluggy.PluginValidationError,
    *,
    plugin_name: str | None,
    origin: str,
) -> PluginValidationError:
    name = plugin_name or pm.get_name(exc.plugin)
    if name is None or name == str(id(exc.plugin)):
        # pluggy names unnamed instances by id(); the class says more about where it lives.
        name = getattr(exc.plugin, "__name__", None) or _qualified(exc.plugin)
    unknown = _unknown_hooks(pm, exc.plugin)
    if not unknown:
        # Registration refused the plugin (e.g. a parameter the hookspec lacks); pluggy's
        # message already names the hook, so keep it and add where the plugin came from.
        hook_name = next(
            (spec for spec in _hook_names(pm) if f"hook {spec!r}" in str(exc)), "unknown"
        )
        # The first line repeats the plugin (by id for instances) and hook named here.
        detail = "; ".join(line for line in str(exc).splitlines() if not line.startswith("Plugin "))
        return PluginValidationError(
            exc.plugin,
            f"plugin {name!r}{origin} implements hook {hook_name!r} incorrectly: {detail}",
            plugin_name=name,
            hook_name=hook_name,
        )
    hook_name = unknown[0]
    message = f"plugin {name!r}{origin} implements unknown hook {hook_name!r}"
    close = difflib.get_close_matches(hook_name, _hook_names(pm), n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    else:
        message += f"; known hooks: {', '.join(_hook_names(pm))}"
    return PluginValidationError(exc.plugin, message, plugin_name=name, hook_name=hook_name)


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(
        name
        for spec_module in _HOOKSPEC_MODULES
        for name in vars(spec_module)
        if pm.parse_hookspec_opts(spec_module, name) is not None
    )


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return [
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
    ]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """List every registered plugin with its distribution, version and implemented hooks.

    :param pm: a manager from :func:`create_plugin_manager`.
    """
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    described = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a name blocked with pm.set_blocked()
            continue
        dist = distributions.get(id(plugin))
        described.append(
            PluginInfo(
                name=name,
                distribution=dist.project_name if dist is not None else None,
                version=str(dist.version) if dist is not None else None,
                hooks=tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])),
            )
        )
    return sorted(described, key=lambda info: info.name)


_P = TypeVar("_P")


class _ProvidersOfKind(Generic[_P]):
    """The providers of one kind, keyed by identifier."""

    def __init__(
        self,
        kind: ProviderKind,
        results: list[Any],
        *,
        expected: type[Any],
        key: Callable[[_P], str],
    ) -> None:
        self.kind = kind
        self.by_name: dict[str, _P] = {}
        key_label = "name" if kind is ProviderKind.SANDBOX else "identifier"
        for result in results:
            if not isinstance(result, list | tuple):
                raise InvalidProviderError(
                    f"a {kind.label} hook returned {result!r}; return a list of "
                    f"{expected.__name__} objects"
                )
            for provider in result:
                if not isinstance(provider, expected):
                    raise InvalidProviderError(
                        f"{provider!r} was registered as a {kind.label} but does not implement "
                        f"{expected.__module__}.{expected.__name__}"
                    )
                name = key(provider)
                if name in self.by_name:
                    raise DuplicateProviderError(
                        f"two {kind.label} providers use the {key_label} {name!r}: "
                        f"{_qualified(self.by_name[name])} and {_qualified(provider)}; "
                        f"uninstall one or leave its plugin out with {LOAD_PLUGINS_ENV}"
                    )
                self.by_name[name] = provider

    def get(self, name: str) -> _P:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownProviderError(self.kind, name, sorted(self.by_name)) from None


def _qualified(provider: object) -> str:
    cls = type(provider)
    return f"{cls.__module__}.{cls.__qualname__}"


class ProviderRegistry:
    """The providers offered by a plugin manager's plugins, looked up by identifier.

    Built once from a manager (the register hooks are called here, not on every lookup).

    :param pm: a manager from :func:`create_plugin_manager`.
    :raises DuplicateProviderError: two providers of one kind share an identifier.
    :raises InvalidProviderError: a register hook returned something else than providers.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        #: The manager the providers came from; event hooks are called through it.
        self.plugin_manager = pm
        hook = pm.hook
        self._ad_networks: _ProvidersOfKind[AdNetwork] = _ProvidersOfKind(
            ProviderKind.AD_NETWORK,
            hook.pixecom_register_ad_networks(),
            expected=AdNetwork,
            key=lambda provider: provider.identifier,
        )
        self._payment_gateways: _ProvidersOfKind[PaymentGateway] = _ProvidersOfKind(
            ProviderKind.PAYMENT_GATEWAY,
            hook.pixecom_register_payment_gateways(),
            expected=PaymentGateway,
            key=lambda provider: provider.identifier,
        )
        self._trackers: _ProvidersOfKind[Tracker] = _ProvidersOfKind(
            ProviderKind.TRACKER,
            hook.pixecom_register_trackers(),
            expected=Tracker,
            key=lambda provider: provider.identifier,
        )
        self._storage: _ProvidersOfKind[Storage] = _ProvidersOfKind(
            ProviderKind.STORAGE,
            hook.pixecom_register_storage(),
            expected=Storage,
            key=lambda provider: provider.identifier,
        )
        self._currency_rates: _ProvidersOfKind[CurrencyRateSource] = _ProvidersOfKind(
            ProviderKind.CURRENCY_RATES,
            hook.pixecom_register_currency_rates(),
            expected=CurrencyRateSource,
            key=lambda provider: provider.identifier,
        )
        self._sandboxes: _ProvidersOfKind[Sandbox] = _ProvidersOfKind(
            ProviderKind.SANDBOX,
            hook.pixecom_register_sandboxes(),
            expected=Sandbox,
            key=lambda sandbox: sandbox.name,
        )

    def ad_network(self, identifier: str) -> AdNetwork:
        """Return the ad network registered as ``identifier`` (e.g. ``"meta"``).

        :raises UnknownProviderError: none is installed under that identifier.
        """
        return self._ad_networks.get(identifier)

    def payment_gateway(self, identifier: str) -> PaymentGateway:
        """Return the payment gateway registered as ``identifier`` (e.g. ``"stripe"``).

        :raises UnknownProviderError: none is installed under that identifier.
        """
        return self._payment_gateways.get(identifier)

    def payment_gateways(self) -> list[PaymentGateway]:
        """Return every registered payment gateway, sorted by identifier."""
        return [
            self._payment_gateways.get(name) for name in self.names(ProviderKind.PAYMENT_GATEWAY)
        ]

    def tracker(self, identifier: str) -> Tracker:
        """Return the parcel tracker registered as ``identifier`` (e.g. ``"17track"``).

        :raises UnknownProviderError: none is installed under that identifier.
        """
        return self._trackers.get(identifier)

    def storage(self, identifier: str) -> Storage:
        """Return the object store registered as ``identifier`` (e.g. ``"r2"``).

        :raises UnknownProviderError: none is installed under that identifier.
        """
        return self._storage.get(identifier)

    def currency_rates(self, identifier: str | None = None) -> CurrencyRateSource:
        """Return the currency-rate source registered as ``identifier``; without one, the
        only source installed.

        :raises UnknownProviderError: none is installed under that identifier, or no
            identifier was given and not exactly one source is installed.
        """
        if identifier is None:
            installed = self.names(ProviderKind.CURRENCY_RATES)
            if len(installed) != 1:
                raise UnknownProviderError(
                    ProviderKind.CURRENCY_RATES, "(set PIXECOM_FX_SOURCE)", installed
                )
            identifier = installed[0]
        return self._currency_rates.get(identifier)

    def sandbox(self, name: str) -> Sandbox:
        """Return the sandbox registered as ``name``.

        :raises UnknownProviderError: none is installed under that name.
        """
        return self._sandboxes.get(name)

    def sandboxes(self) -> list[Sandbox]:
        """Return every registered sandbox, sorted by name."""
        return [self._sandboxes.by_name[name] for name in sorted(self._sandboxes.by_name)]

    async def aclose(self) -> None:
        """Close every provider that holds connections: call its ``async aclose()``.

        A provider may keep HTTP pools or a Redis connection for the life of the process
        (the Meta plugin's shared pacing state, for one); the process calls this once, as
        it shuts down. Each provider is closed on its own: one that raises is logged and
        the others are still closed. A provider offered under several kinds is closed
        once. Sandboxes are not providers and are not closed here.
        """
        kinds = (
            self._ad_networks,
            self._payment_gateways,
            self._trackers,
            self._storage,
            self._currency_rates,
        )
        closed: set[int] = set()
        for kind in kinds:
            for provider in kind.by_name.values():
                close = getattr(provider, "aclose", None)
                if close is None or id(provider) in closed:
                    continue
                closed.add(id(provider))
                try:
                    await close()
                except Exception:
                    _log.exception("closing %s failed", _qualified(provider))

    def names(self, kind: ProviderKind | str) -> list[str]:
        """Return the sorted identifiers (sandbox names for sandboxes) installed for ``kind``.

        :param kind: a :class:`ProviderKind` or its value, e.g. ``"payment_gateway"``.
        """
        providers: dict[ProviderKind, _ProvidersOfKind[Any]] = {
            ProviderKind.AD_NETWORK: self._ad_networks,
            ProviderKind.PAYMENT_GATEWAY: self._payment_gateways,
            ProviderKind.TRACKER: self._trackers,
            ProviderKind.STORAGE: self._storage,
            ProviderKind.CURRENCY_RATES: self._currency_rates,
            ProviderKind.SANDBOX: self._sandboxes,
        }
        return sorted(providers[ProviderKind(kind)].by_name)
