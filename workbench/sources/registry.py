"""Find sources by name among everything the plugins registered (built-ins first)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from workbench.sources.errors import UnknownSourceError

if TYPE_CHECKING:
    from workbench.plugins.manager import Plugins

__all__ = ["available_sources", "get_source"]

log = logging.getLogger(__name__)


def available_sources(plugins: Plugins | None = None) -> dict[str, Any]:
    """Every registered source by name; a later one with a taken name is ignored (logged)."""
    if plugins is None:
        from workbench.plugins.manager import get_plugins

        plugins = get_plugins()
    sources: dict[str, Any] = {}
    for source in plugins.collect("register_sources"):
        name = getattr(source, "name", None)
        if not isinstance(name, str) or not callable(getattr(source, "read", None)):
            log.warning("ignoring a registered source without a name and read(): %r", source)
            continue
        if name in sources:
            log.warning("ignoring a second source named %r: %r", name, source)
            continue
        sources[name] = source
    return sources


def get_source(name: str, plugins: Plugins | None = None) -> Any:
    """The source called ``name``, or an error listing the ones there are."""
    sources = available_sources(plugins)
    try:
        return sources[name]
    except KeyError:
        raise UnknownSourceError(
            f"No source is called {name!r}; the sources are: {', '.join(sorted(sources))}."
        ) from None
