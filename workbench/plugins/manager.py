"""The plugin manager: built-in plugins and installed ones from the ``workbench`` entry points.

Every hook call goes through pluggy (``manager.hook.<name>``), so tracing, hook wrappers and
the hook specifications apply to all of them. A broken third-party plugin — one that fails to
import, names a hook that does not exist, or raises inside a hook — is recorded by name with
its error and left out; the rest go on. That isolation is a guarded stand-in registered in
place of each installed plugin: its hooks wrap the plugin's, so a failure is recorded there
and the call carries on. Built-ins are registered as they are: their failure is a Workbench
bug and propagates. ``WORKBENCH_PLUGINS`` is an optional allow-list of installed plugins
(empty: none); ``WORKBENCH_TRACE_PLUGINS`` logs every hook call and its result.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any

import pluggy

from workbench.core.config import Settings, load_settings
from workbench.core.version import __version__
from workbench.plugins import hookspecs

__all__ = [
    "BUILTIN_PLUGINS",
    "HookFailure",
    "PluginInfo",
    "Plugins",
    "get_plugins",
    "reset_plugins",
]

log = logging.getLogger(__name__)

#: Modules that register Workbench's own features through the same hooks as any plugin, each
#: in the module that implements the feature. Imported by name when plugins load, so this
#: layer does not depend on the ones above it.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "workbench.runs.notebook",
    "workbench.dashboards.catalog",
    "workbench.notify.webhook",
    "workbench.sources.builtin",
    "workbench.ops.tracking",
)


@dataclass
class PluginInfo:
    name: str
    version: str
    builtin: bool
    status: str  # "ok", "failed", "not allowed"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class HookFailure:
    plugin: str
    hook: str
    error: str


class _Guarded:
    """Registered in place of an installed plugin: the same hooks, each guarded."""

    def __init__(self, name: str, plugin: object) -> None:
        self.__name = name
        self.__plugin = plugin

    def __repr__(self) -> str:
        return f"<plugin {self.__name!r}: {self.__plugin!r}>"


def _trace(message: str) -> None:
    log.info("%s", message.rstrip())


class Plugins:
    """A loaded set of plugins, with hook calls that survive one plugin's failure."""

    def __init__(self, settings: Settings, *, load_entry_points: bool = True) -> None:
        self.settings = settings
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.hook_failures: list[HookFailure] = []
        if settings.trace_plugins:
            self.manager.trace.root.setwriter(_trace)
            self.manager.enable_tracing()
        if load_entry_points:
            self._load_entry_points()
        # pluggy calls the last registered first, so the built-ins lead every list of results.
        for module_name in BUILTIN_PLUGINS:
            self._register(import_module(module_name), module_name, __version__, builtin=True)

    # -- loading --------------------------------------------------------------------------

    def _allowed(self) -> set[str] | None:
        raw = self.settings.plugins
        if raw is None:
            return None
        return {name.strip() for name in raw.split(",") if name.strip()}

    def _load_entry_points(self) -> None:
        allowed = self._allowed()
        for ep in metadata.entry_points(group=hookspecs.PROJECT_NAME):
            version = ep.dist.version if ep.dist is not None else "?"
            if allowed is not None and ep.name not in allowed:
                self.infos[ep.name] = PluginInfo(ep.name, version, False, "not allowed")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not stop Workbench
                self._failed(ep.name, version, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._register(plugin, ep.name, version, builtin=False)

    def _register(self, plugin: object, name: str, version: str, *, builtin: bool) -> None:
        registered = plugin if builtin else self._guarded(plugin, name)
        try:
            self.manager.register(registered, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.manager.is_registered(registered):
                self.manager.unregister(registered)
            if builtin:
                raise
            self._failed(name, version, f"invalid hooks: {exc}")
            return
        hooks = sorted(caller.name for caller in self.manager.get_hookcallers(registered) or [])
        self.infos[name] = PluginInfo(name, version, builtin, "ok", hooks)

    def _failed(self, name: str, version: str, error: str) -> None:
        log.warning("plugin %s is disabled: %s", name, error)
        self.infos[name] = PluginInfo(name, version, False, "failed", error=error)

    # -- guarding installed plugins -----------------------------------------------------

    def _guarded(self, plugin: object, name: str) -> _Guarded:
        """A stand-in for ``plugin`` whose hooks record a failure instead of raising it.

        Each hook wraps the plugin's with :func:`functools.wraps`, so pluggy reads the same
        ``@hookimpl`` options and argument names (and still refuses a misspelled hook).
        """
        stand_in = _Guarded(name, plugin)
        for attr in dir(plugin):
            opts = self.manager.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            hook = opts.get("specname") or attr
            function: Callable[..., Any] = getattr(plugin, attr)
            if opts.get("wrapper") or opts.get("hookwrapper"):
                guarded = self._guard_wrapper(function, name, hook)
            else:
                guarded = self._guard_function(function, name, hook)
            setattr(stand_in, attr, guarded)
        return stand_in

    def _guard_function(
        self, function: Callable[..., Any], plugin: str, hook: str
    ) -> Callable[..., Any]:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:  # one plugin must not break the others or the command
                self._hook_failed(plugin, hook, exc)
                return None

        return guarded

    def _guard_wrapper(
        self, function: Callable[..., Any], plugin: str, hook: str
    ) -> Callable[..., Any]:
        if not inspect.isgeneratorfunction(function):
            return function  # pluggy refuses it at registration, saying why

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
            return (yield from self._drive(function(*args, **kwargs), plugin, hook))

        return guarded

    def _drive(
        self, wrapper: Generator[None, Any, Any], plugin: str, hook: str
    ) -> Generator[None, Any, Any]:
        """Run a plugin's hook wrapper; where it fails, step aside and pass the call through.

        What pluggy sends (the result, or an old-style wrapper's outcome) or throws (the error
        of the implementations) goes on to the plugin's wrapper, and its answer comes back.
        """
        try:
            next(wrapper)
        except StopIteration:
            self._hook_failed(plugin, hook, RuntimeError("the hook wrapper did not yield"))
            return (yield)
        except Exception as exc:
            self._hook_failed(plugin, hook, exc)
            return (yield)
        try:
            sent = yield
        except GeneratorExit:
            wrapper.close()
            raise
        except BaseException as exc:  # the implementations raised: the wrapper may handle it
            try:
                wrapper.throw(exc)
            except StopIteration as stop:
                return stop.value
            except BaseException as raised:
                if raised is exc or not isinstance(raised, Exception):
                    raise
                self._hook_failed(plugin, hook, raised)
            else:
                wrapper.close()
                self._hook_failed(plugin, hook, RuntimeError("the hook wrapper yielded twice"))
            raise
        try:
            wrapper.send(sent)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:
            self._hook_failed(plugin, hook, exc)
            return sent
        wrapper.close()
        self._hook_failed(plugin, hook, RuntimeError("the hook wrapper yielded twice"))
        return sent

    def _hook_failed(self, plugin: str, hook: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("plugin %s failed in %s: %s", plugin, hook, error)
        self.hook_failures.append(HookFailure(plugin, hook, error))
        info = self.infos.get(plugin)
        if info is not None:
            info.status, info.error = "failed", f"{hook}: {error}"

    # -- calling --------------------------------------------------------------------------

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook through pluggy; an installed plugin that raises is recorded, not fatal.

        The results, without ``None``s, come back as pluggy (and any hook wrapper) gives them:
        the last registered first, which puts the built-ins first. A failing built-in raises:
        that is a Workbench bug, not a plugin's.
        """
        caller: pluggy.HookCaller = getattr(self.manager.hook, hook_name)
        results = caller(**kwargs)
        if results is None:
            return []
        return list(results) if isinstance(results, list) else [results]

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a ``register_*`` hook and flatten the sequences it returns."""
        items: list[Any] = []
        for result in self.call(hook_name, **kwargs):
            items.extend(result)
        return items

    def plugin_list(self) -> list[PluginInfo]:
        """Built-ins in the order they load, then installed plugins by name."""
        builtins = [info for info in self.infos.values() if info.builtin]
        installed = sorted((i for i in self.infos.values() if not i.builtin), key=lambda i: i.name)
        return builtins + installed


_plugins: Plugins | None = None
_lock = threading.Lock()


def get_plugins(settings: Settings | None = None) -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _plugins
    with _lock:
        if _plugins is None:
            _plugins = Plugins(settings or load_settings())
        return _plugins


def reset_plugins() -> None:
    """Forget the loaded plugins (they are loaded again on next use)."""
    global _plugins
    with _lock:
        _plugins = None
