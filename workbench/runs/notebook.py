"""Finding and reading notebooks, and injecting parameters so that no name or value can run code.

A notebook is named by its path or, failing that, relative to one of the notebook folders
(the ``register_notebook_dirs`` hook: ``$WORKBENCH_HOME/notebooks``, ``./notebooks`` and
plugins'), so ``workbench run flights_kpis`` finds ``./notebooks/flights_kpis.ipynb``.

Values are written only as Python literals (``repr`` of validated ``str``/``int``/``float``/
``bool``/``None`` and lists of them), dates through ``fromisoformat`` of such a literal, and
secrets as a call to :func:`workbench.runs.secrets.resolve` with the secret's *name*: the cell
and the notebook's metadata show only the reference, and ``resolve`` returns the value the
service handed the kernel before the notebook (never decrypting anything itself). The
rendered cell is parsed again and checked against exactly those shapes before it is used.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.plugins.hookspecs import hookimpl
from workbench.runs.errors import NotebookError, ParameterError
from workbench.runs.params import (
    SECRET_PREFIX,
    ParameterSchema,
    is_secret_reference,
    parse_parameters_source,
)

if TYPE_CHECKING:
    from workbench.core.config import Settings

__all__ = [
    "INJECTED_TAG",
    "NOTEBOOK_SUFFIX",
    "PARAMETERS_TAG",
    "FolderNotebook",
    "check_injection",
    "inject_parameters",
    "list_notebooks",
    "load_notebook",
    "locate_notebook",
    "notebook_folders",
    "notebook_schema",
    "read_notebook",
    "register_notebook_dirs",
    "render_injection",
]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
_DT = "_wb_datetime"
_SECRET = "_wb_secret"  # noqa: S105 (a helper name, not a secret)
_HELPERS = {f"{_DT}.date.fromisoformat", f"{_DT}.datetime.fromisoformat", _SECRET}


NOTEBOOK_SUFFIX = ".ipynb"


@hookimpl
def register_notebook_dirs(settings: Settings) -> list[Path]:
    """`$WORKBENCH_HOME/notebooks` and `./notebooks`, where they exist."""
    candidates = (settings.home_path / "notebooks", Path.cwd() / "notebooks")
    return [folder for folder in candidates if folder.is_dir()]


def notebook_folders(settings: Settings | None = None) -> list[Path]:
    """The registered notebook folders that exist, resolved, each once, in hook order.

    Without ``settings``, those the process-wide plugins were loaded with.
    """
    from workbench.plugins.manager import get_plugins

    plugins = get_plugins(settings)
    found: list[Path] = []
    for folder in plugins.collect("register_notebook_dirs", settings=settings or plugins.settings):
        path = Path(folder).expanduser().resolve()
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def locate_notebook(name: str | Path, settings: Settings | None = None) -> str:
    """The absolute path of the notebook ``name``, which may leave out ``.ipynb``.

    An existing path wins; a relative name is then looked for in the notebook folders, the
    first holding it winning. A name found nowhere is a :class:`NotebookError` saying where
    it was looked for.
    """
    path = Path(name).expanduser()
    if path.exists():  # even one that is not a notebook: reading it says what is wrong
        return str(path.resolve())
    names = [path]
    if path.suffix != NOTEBOOK_SUFFIX:
        names.append(path.with_name(path.name + NOTEBOOK_SUFFIX))
    folders = [] if path.is_absolute() else notebook_folders(settings)
    for folder in [Path.cwd(), *folders]:
        for candidate in names:
            if (folder / candidate).is_file():
                return str((folder / candidate).resolve())
    if path.is_absolute():
        raise NotebookError(f"Notebook {str(path)!r} does not exist.")
    looked = ", ".join(str(p) for p in [Path.cwd(), *folders])
    raise NotebookError(
        f"Notebook {str(name)!r} does not exist; looked in {looked}. "
        "`workbench notebooks list` shows the notebooks of the notebook folders."
    )


@dataclass(frozen=True)
class FolderNotebook:
    """A notebook in one of the notebook folders, as `workbench notebooks list` shows it."""

    folder: Path
    name: str
    """The file name, which runs and jobs can use instead of a path."""
    parameters: int | None
    """How many parameters it declares; ``None`` when it cannot be read."""


def list_notebooks(settings: Settings | None = None) -> list[FolderNotebook]:
    """Every notebook directly in the notebook folders, folder by folder, by name."""
    found: list[FolderNotebook] = []
    for folder in notebook_folders(settings):
        for path in sorted(folder.glob("*" + NOTEBOOK_SUFFIX)):
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                count: int | None = len(notebook_schema(read_notebook(path)).parameters)
            except (NotebookError, ParameterError):
                count = None
            found.append(FolderNotebook(folder, path.name, count))
    return found


def read_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook's JSON as written, checked to be nbformat 4, without importing nbformat:
    enough for :func:`notebook_schema` (dashboards and recorded-result lookups use it)."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as fh:
            nb = json.load(fh)
    except FileNotFoundError:
        raise NotebookError(f"Notebook {str(p)!r} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise NotebookError(f"Notebook {str(p)!r} cannot be read as a notebook ({exc}).") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{str(p)!r} is not a version 4 Jupyter notebook.")
    return nb


def load_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook at ``path`` as a plain dict (nbformat 4), without slow schema validation."""
    nb = read_notebook(path)
    from nbformat import from_dict
    from nbformat.v4.rwbase import rejoin_lines

    rejoined: dict[str, Any] = rejoin_lines(from_dict(nb))  # type: ignore[no-untyped-call]
    return rejoined


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _parameters_index(nb: dict[str, Any]) -> int | None:
    for i, cell in enumerate(nb["cells"]):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def notebook_schema(nb: dict[str, Any]) -> ParameterSchema:
    """The schema declared by the notebook's cell tagged ``parameters`` (empty if none)."""
    index = _parameters_index(nb)
    if index is None:
        return ParameterSchema()
    return parse_parameters_source(_source(nb["cells"][index]))


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{_DT}.datetime.fromisoformat({value.isoformat()!r})"
    if isinstance(value, date):
        return f"{_DT}.date.fromisoformat({value.isoformat()!r})"
    if is_secret_reference(value):
        return f"{_SECRET}({value[len(SECRET_PREFIX) :]!r})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if value is None or isinstance(value, str | int | float | bool):
        return repr(value)
    raise NotebookError(f"Cannot inject a value of type {type(value).__name__}.")


def render_injection(values: dict[str, Any]) -> str:
    """The source of the injected cell for validated ``values`` (see the module docstring)."""
    lines = ["# Parameters"]
    needs_dt = any(_has(v, date) for v in values.values())
    needs_secret = any(_has(v, str) and _secretish(v) for v in values.values())
    if needs_dt:
        lines.append(f"import datetime as {_DT}")
    if needs_secret:
        lines.append(f"from workbench.runs.secrets import resolve as {_SECRET}")
    lines += [f"{name} = {_literal(value)}" for name, value in values.items()]
    if needs_dt or needs_secret:
        lines.append(
            "del " + ", ".join(n for n, f in ((_DT, needs_dt), (_SECRET, needs_secret)) if f)
        )
    source = "\n".join(lines) + "\n"
    check_injection(source, set(values))
    return source


def _has(value: Any, cls: type) -> bool:
    if isinstance(value, list):
        return any(_has(v, cls) for v in value)
    return isinstance(value, cls)


def _secretish(value: Any) -> bool:
    if isinstance(value, list):
        return any(_secretish(v) for v in value)
    return is_secret_reference(value)


def check_injection(source: str, names: set[str]) -> None:
    """Refuse any injected source that is not plain assignments of literals to ``names``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Delete):
            continue
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in names
            and _safe_value(node.value)
        ):
            raise NotebookError("Refusing to inject parameters that are not plain values.")


def _safe_value(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.List):
        return all(_safe_value(e) for e in node.elts)
    if isinstance(node, ast.Call):
        return (
            ast.unparse(node.func) in _HELPERS
            and not node.keywords
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        )
    return False


def inject_parameters(nb: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` with a cell tagged ``injected-parameters`` after the parameters cell."""
    cells = [c for c in nb["cells"] if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    out = dict(nb)
    out["cells"] = cells
    if not values:
        return out
    index = _parameters_index(out)
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [INJECTED_TAG]},
        "outputs": [],
        "source": render_injection(values),
    }
    if nb.get("nbformat_minor", 0) >= 5:  # cell ids exist from nbformat 4.5 on
        cell["id"] = "injected-parameters"
    cells.insert(0 if index is None else index + 1, cell)
    return out
