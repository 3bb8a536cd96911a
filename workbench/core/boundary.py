"""The public API's boundary: an expected failure is raised from the function a user called.

A :class:`~workbench.core.errors.WorkbenchError` says what was wrong and what to do, so the
frames of Workbench's internals under a notebook cell only hide that message. A function
wrapped by :func:`public` re-raises such an error from itself: the traceback a user sees ends
at that one frame, named as the function they called. The error's cause stays reachable as
``__context__`` (not shown). An ``explain`` function may turn another exception into the
WorkbenchError it means (the facade's explains a database that cannot be reached or opened,
:mod:`workbench.db.failures`); any exception left unexplained is a bug and keeps its whole
traceback.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from workbench.core.errors import WorkbenchError

__all__ = ["public", "public_namespace"]

P = ParamSpec("P")
R = TypeVar("R")

#: Given an exception and the call's arguments, the WorkbenchError it means, or ``None``.
Explain = Callable[[Exception, tuple[Any, ...], dict[str, Any]], WorkbenchError | None]


def public(function: Callable[P, R], *, explain: Explain | None = None) -> Callable[P, R]:
    """``function`` raising its WorkbenchErrors from itself, without the frames below it."""
    if getattr(function, "__workbench_public__", False):
        return function

    def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except WorkbenchError as error:
            if error.__cause__ is not None:
                error.__context__ = error.__cause__  # kept for debugging, not shown
            raise error.with_traceback(None) from None
        except Exception as exc:
            explained = explain(exc, args, kwargs) if explain is not None else None
            if explained is None:
                raise
            raise explained from None  # exc stays its __context__

    # The one frame a user sees carries the public function's name, not "boundary".
    name = getattr(function, "__name__", boundary.__name__)
    qualname = getattr(function, "__qualname__", name)
    boundary.__code__ = boundary.__code__.replace(co_name=name, co_qualname=qualname)
    wrapped = functools.wraps(function)(boundary)
    wrapped.__workbench_public__ = True  # type: ignore[attr-defined]
    return wrapped


def public_namespace(
    module: types.ModuleType, name: str, *, explain: Explain | None = None
) -> types.ModuleType:
    """A module named ``name`` with ``module``'s ``__all__``, its functions behind :func:`public`.

    For namespaces a user reaches as attributes (``wb.jobs.register``) while the implementing
    module's own functions stay as they are for the code that imports them.
    """
    namespace = types.ModuleType(name, module.__doc__)
    exported = cast("list[str]", getattr(module, "__all__", []))
    for attribute in exported:
        value = getattr(module, attribute)
        wrapped = public(value, explain=explain) if _is_function(value) else value
        setattr(namespace, attribute, wrapped)
    namespace.__all__ = list(exported)  # type: ignore[attr-defined]
    return namespace


def _is_function(value: object) -> bool:
    return isinstance(value, types.FunctionType)
