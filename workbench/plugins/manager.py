"""The plugin manager: built-in plugins and installed ones from the ``workbench`` entry points.

A broken third-party plugin — one that fails to import, names a hook that does not exist, or
raises inside a hook — is recorded by name with its error and left out; the rest go on.
``WORKBENCH_PLUGINS`` is an optional allow-list of installed plugins (empty: none).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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

#: Modules that register Workbench's own features through the same hooks as any plugin.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "workbench.default_plugins.folders",
    "workbench.default_plugins.webhook",
    "workbench.sources.builtin",
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


class Plugins:
    """A loaded set of plugins, with hook calls that survive one plugin's failure."""

    def __init__(self, settings: Settings, *, load_entry_points: bool = True) -> None:
        self.settings = settings
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.hook_failures: list[HookFailure] = []
        if settings.trace_plugins:
            self.manager.trace.root.setwriter(lambda message: log.debug("%s", message.rstrip()))
            self.manager.enable_tracing()
        for module_name in BUILTIN_PLUGINS:
            self._register(import_module(module_name), module_name, __version__, builtin=True)
        if load_entry_points:
            self._load_entry_points()

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
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            if builtin:
                raise
            self._failed(name, version, f"invalid hooks: {exc}")
            return
        hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])
        self.infos[name] = PluginInfo(name, version, builtin, "ok", hooks)

    def _failed(self, name: str, version: str, error: str) -> None:
        log.warning("plugin %s is disabled: %s", name, error)
        self.infos[name] = PluginInfo(name, version, False, "failed", error=error)

    # -- calling --------------------------------------------------------------------------

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of a hook; one that raises is recorded, not fatal.

        Results come back in registration order, without ``None``s. A failing built-in
        re-raises: that is a Workbench bug, not a plugin's.
        """
        caller = getattr(self.manager.hook, hook_name)
        results: list[Any] = []
        for impl in reversed(caller.get_hookimpls()):
            function: Callable[..., Any] = impl.function
            wanted = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                result = function(**wanted)
            except Exception as exc:
                info = self.infos.get(impl.plugin_name)
                if info is None or info.builtin:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s failed in %s: %s", impl.plugin_name, hook_name, error)
                self.hook_failures.append(HookFailure(impl.plugin_name, hook_name, error))
                info.status, info.error = "failed", f"{hook_name}: {error}"
                continue
            if result is not None:
                results.append(result)
        return results

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a ``register_*`` hook and flatten the sequences it returns."""
        items: list[Any] = []
        for result in self.call(hook_name, **kwargs):
            items.extend(result)
        return items

    def plugin_list(self) -> list[PluginInfo]:
        return sorted(self.infos.values(), key=lambda i: (not i.builtin, i.name))


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
