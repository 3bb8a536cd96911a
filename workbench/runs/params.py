"""The typed parameter schema of a notebook, read from its cell tagged ``parameters``.

Each annotated assignment (``carrier: str = "UA"  # airline code``) becomes one
:class:`Parameter`; the trailing comment is its description. One :class:`ParameterSchema`
validates values from the Python API and the scheduler, converts the strings a person types
on the command line by type first (:meth:`ParameterSchema.parse_text`), and serialises to a
JSON-schema-like dict for forms and widgets. Nothing is executed:
the cell is read with :mod:`ast` and defaults must be literals.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import math
import re
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from workbench.runs.errors import NotebookError, ParameterError

__all__ = [
    "SECRET_NAME",
    "SECRET_PREFIX",
    "Parameter",
    "ParameterSchema",
    "TypeSpec",
    "is_secret_reference",
    "parse_parameters_source",
]

SECRET_PREFIX = "secret:"  # noqa: S105 (a prefix, not a secret)
#: What a secret may be called; `workbench secrets set` and `secret:NAME` run parameters check it.
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_SCALARS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "date": "date",
    "datetime.date": "date",
    "datetime": "datetime",
    "datetime.datetime": "datetime",
    "Any": "any",
    "typing.Any": "any",
}
_PY_NAMES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "date": "datetime.date",
    "datetime": "datetime.datetime",
    "any": "Any",
}
_WORDS = {
    "string": "text",
    "integer": "a whole number (such as 15)",
    "number": "a number (such as 1.5)",
    "boolean": "true or false",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date and time (YYYY-MM-DDTHH:MM:SS)",
    "any": "a value",
}
#: The most of a typed value an error shows (the person typed it; it may still be long).
_SHOWN = 40
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NULL = {"none", "null"}


def is_secret_reference(value: object) -> bool:
    """True for a ``secret:NAME`` string: a reference resolved inside the kernel."""
    return isinstance(value, str) and value.startswith(SECRET_PREFIX)


@dataclass(frozen=True)
class TypeSpec:
    """A parameter type: a scalar kind, a list of a type, choices, optionally nullable."""

    kind: str
    nullable: bool = False
    choices: tuple[Any, ...] = ()
    items: TypeSpec | None = None

    def describe(self) -> str:
        if self.kind == "literal":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "list":
            text = f"list[{self.items.describe() if self.items else 'Any'}]"
        else:
            text = _PY_NAMES[self.kind]
        return f"{text} or None" if self.nullable else text

    def in_words(self) -> str:
        """The type as a person reads it ("a date (YYYY-MM-DD)"), for errors about typed text."""
        if self.kind == "literal":
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif self.kind == "list":
            item = self.items.in_words() if self.items else "values"
            text = f"a list (a,b or a JSON list) of {item}"
        else:
            text = _WORDS[self.kind]
        return f"{text}, or none" if self.nullable else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.kind == "literal":
            out = {"enum": [_jsonable(c) for c in self.choices]}
        elif self.kind == "list":
            out = {"type": "array", "items": self.items.to_dict() if self.items else {}}
        elif self.kind in {"date", "datetime"}:
            out = {"type": "string", "format": "date" if self.kind == "date" else "date-time"}
        elif self.kind == "any":
            out = {}
        else:
            out = {"type": self.kind}
        if self.nullable:
            out["nullable"] = True
        return out


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: name, type, default (if any) and description."""

    name: str
    type: TypeSpec
    default: Any = None
    has_default: bool = True
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = self.type.to_dict()
        if self.has_default:
            out["default"] = _jsonable(self.default)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class ParameterSchema:
    """The declared parameters of one notebook, in declaration order."""

    parameters: tuple[Parameter, ...] = field(default_factory=tuple)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-schema-like description, for forms, widgets and ``--json`` output."""
        return {
            "type": "object",
            "properties": {p.name: p.to_dict() for p in self.parameters},
            "required": [p.name for p in self.parameters if not p.has_default],
            "additionalProperties": False,
        }

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values for Python ``values``; refuses unknown names, wrong types, missing ones.

        ``secret:NAME`` strings stay references (only for ``str`` parameters).
        """
        out = {
            name: _coerce_spec(param, param.type, value)
            for name, param, value in self._declared(values)
        }
        missing = [p.name for p in self.parameters if not p.has_default and p.name not in out]
        if missing:
            raise ParameterError(
                f"Missing required parameter(s): {', '.join(missing)}.", parameters=tuple(missing)
            )
        return out

    def parse_text(self, values: Mapping[str, str]) -> dict[str, Any]:
        """Typed values for strings a person typed (`workbench run -p`, `workbench jobs add`).

        Each string is converted by its parameter's declared type (``-5``, ``1e-3``, ``yes``,
        ISO dates, ``a,b`` or a JSON list, ``none`` for an optional one); the result is then
        passed on like any Python caller's values, and :meth:`validate` reports missing ones.
        """
        return {
            name: _parse(param, param.type, text) for name, param, text in self._declared(values)
        }

    def _declared(self, values: Mapping[str, Any]) -> Iterator[tuple[str, Parameter, Any]]:
        """Each name of ``values`` with its declared parameter, refusing undeclared names."""
        for name, value in values.items():
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise ParameterError(
                    f"{name!r} is not a valid parameter name (names are Python identifiers)."
                )
            try:
                param = self[name]
            except KeyError:
                known = ", ".join(self.names) or "none"
                raise ParameterError(
                    f"Unknown parameter {name!r}; this notebook declares: {known}.",
                    parameters=(name,),
                ) from None
            yield name, param, value

    @staticmethod
    def to_json(values: Mapping[str, Any]) -> dict[str, Any]:
        """Validated values as JSON (dates as ISO strings); secrets stay references."""
        return {k: _jsonable(v) for k, v in values.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _type_name(value: object) -> str:
    return "secret reference" if is_secret_reference(value) else type(value).__name__


def _refuse(param: Parameter, value: object, spec: TypeSpec | None = None) -> ParameterError:
    expected = (spec or param.type).describe()
    # Never echo the value itself: it may be a credential typed in the wrong place.
    return ParameterError(
        f"Parameter {param.name!r} expects {expected}, got a value of type {_type_name(value)}.",
        parameters=(param.name,),
    )


def _refuse_text(param: Parameter, spec: TypeSpec, text: str) -> ParameterError:
    """Text typed on a command line that is not of the parameter's type, said in its terms
    (the person who typed it sees it again; a ``secret:`` reference never gets here)."""
    shown = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    return ParameterError(
        f"{param.name}: {shown!r} is not {spec.in_words()}.", parameters=(param.name,)
    )


def _secret_reference(param: Parameter, spec: TypeSpec, value: str) -> str:
    """A ``secret:NAME`` value, allowed for ``str`` (and untyped) parameters only."""
    if spec.kind not in {"string", "any"}:
        raise _refuse(param, value, spec)
    if not SECRET_NAME.match(value[len(SECRET_PREFIX) :]):
        raise ParameterError(
            f"Parameter {param.name!r}: a secret reference is `secret:NAME` with NAME made "
            "of letters, digits, '_', '.' or '-'.",
            parameters=(param.name,),
        )
    return value


def _not_a_choice(param: Parameter, spec: TypeSpec) -> ParameterError:
    return ParameterError(
        f"Parameter {param.name!r} must be {spec.describe()}; the value given is not one "
        "of these choices.",
        parameters=(param.name,),
    )


def _coerce_spec(param: Parameter, spec: TypeSpec, value: Any) -> Any:
    """A Python value checked against ``spec`` (ISO strings are accepted for dates)."""
    if value is None:
        if spec.nullable or spec.kind == "any":
            return None
        raise _refuse(param, value, spec)
    if is_secret_reference(value):
        return _secret_reference(param, spec, value)
    try:
        return _convert(param, spec, value)
    except (ValueError, TypeError, OverflowError):
        raise _refuse(param, value, spec) from None


def _convert(param: Parameter, spec: TypeSpec, value: Any) -> Any:
    kind = spec.kind
    if kind == "literal":
        for choice in spec.choices:
            if type(value) is type(choice) and value == choice:
                return choice
        raise _not_a_choice(param, spec)
    if kind == "list":
        if not isinstance(value, list | tuple):
            raise TypeError
        item = spec.items or TypeSpec("any")
        return [_coerce_spec(param, item, v) for v in value]
    return _from_python(kind, value)


def _parse(param: Parameter, spec: TypeSpec, value: Any) -> Any:
    """Text converted by ``spec``; a non-string (an item of a JSON list) is checked as Python."""
    if not isinstance(value, str):
        if spec.kind == "list" and isinstance(value, list):
            item = spec.items or TypeSpec("any")
            return [_parse(param, item, v) for v in value]
        return _coerce_spec(param, spec, value)
    if value.lower() in _NULL and (spec.nullable or spec.kind == "any"):
        return None
    if is_secret_reference(value):
        return _secret_reference(param, spec, value)
    try:
        return _from_text(param, spec, value)
    except (ValueError, TypeError, OverflowError):
        raise _refuse_text(param, spec, value) from None


def _from_text(param: Parameter, spec: TypeSpec, text: str) -> Any:
    if spec.kind == "literal":
        for choice in spec.choices:
            if str(choice) == text:
                return choice
        raise _refuse_text(param, spec, text)
    if spec.kind == "list":
        items = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(items, list):
            raise TypeError
        item = spec.items or TypeSpec("any")
        return [_parse(param, item, v) for v in items]
    return _from_string(spec.kind, text)


def _from_string(kind: str, text: str) -> Any:
    if kind == "string":
        return text
    if kind == "integer":
        return int(text, 10)
    if kind == "number":
        return _finite(float(text))
    if kind == "boolean":
        low = text.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(text)
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "datetime":
        return datetime.fromisoformat(text)
    try:  # "any": a JSON scalar if it parses as one, else the string
        parsed = json.loads(text)
    except ValueError:
        return text
    return _from_python("any", parsed)


def _from_python(kind: str, value: Any) -> Any:
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(float(value))
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            return date.fromisoformat(value)
    if kind == "datetime":
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            return datetime.fromisoformat(value)
    if kind == "any" and (value is None or isinstance(value, str | int | float | bool)):
        return _finite(value) if isinstance(value, float) else value
    raise TypeError(kind)


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


# -- reading the parameters cell --------------------------------------------------------------


def parse_parameters_source(source: str) -> ParameterSchema:
    """The schema declared by the source of a parameters cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(
            f"The parameters cell is not valid Python (line {exc.lineno}: {exc.msg})."
        ) from None
    comments = _trailing_comments(source)
    params: list[Parameter] = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            spec = _annotation(node.annotation, node.target.id)
            has_default = node.value is not None
            default = _literal(node.value, node.target.id) if node.value is not None else None
            params.append(
                Parameter(
                    node.target.id,
                    spec,
                    default,
                    has_default,
                    comments.get(node.end_lineno or 0, ""),
                )
            )
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name = node.targets[0].id
            default = _literal(node.value, name)
            params.append(
                Parameter(
                    name, _infer(default), default, True, comments.get(node.end_lineno or 0, "")
                )
            )
    return ParameterSchema(tuple(params))


def _trailing_comments(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _annotation(node: ast.expr, name: str) -> TypeSpec:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        node = ast.parse(node.value, mode="eval").body
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        if any(isinstance(p, ast.Constant) and p.value is None for p in parts):
            other = next(p for p in parts if not (isinstance(p, ast.Constant) and p.value is None))
            return _nullable(_annotation(other, name))
    dotted = _dotted(node)
    if dotted in _SCALARS:
        return TypeSpec(_SCALARS[dotted])
    if isinstance(node, ast.Subscript):
        head = _dotted(node.value).removeprefix("typing.")
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Optional" and len(args) == 1:
            return _nullable(_annotation(args[0], name))
        if head in {"list", "List"} and len(args) == 1:
            return TypeSpec("list", items=_annotation(args[0], name))
        if head == "Literal":
            choices = tuple(_literal(a, name) for a in args)
            if all(isinstance(c, str | int | bool) for c in choices):
                return TypeSpec("literal", choices=choices)
    raise NotebookError(
        f"Parameter {name!r} has a type the workbench cannot check ({ast.unparse(node)}); use "
        "str, int, float, bool, datetime.date, datetime.datetime, Literal[...], Optional[...] "
        "or list[...]."
    )


def _nullable(spec: TypeSpec) -> TypeSpec:
    return TypeSpec(spec.kind, True, spec.choices, spec.items)


def _literal(node: ast.expr, name: str) -> Any:
    if isinstance(node, ast.Call) and not node.keywords:
        func = _dotted(node.func)
        constructor = {"date": date, "datetime.date": date}.get(func) or (
            datetime if func in {"datetime", "datetime.datetime"} else None
        )
        if constructor is not None:
            try:
                return constructor(*[_literal(a, name) for a in node.args])
            except (TypeError, ValueError):
                pass  # reported below, like any other non-literal
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise NotebookError(
            f"The default of parameter {name!r} is not a literal ({ast.unparse(node)}); use a "
            "plain value such as 15, 'UA', date(2013, 1, 1) or None."
        ) from None


def _infer(default: Any) -> TypeSpec:
    for kind, cls in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(default, cls):
            return TypeSpec(kind)
    if isinstance(default, datetime):
        return TypeSpec("datetime")
    if isinstance(default, date):
        return TypeSpec("date")
    if isinstance(default, list):
        return TypeSpec("list", items=TypeSpec("any"))
    return TypeSpec("any", nullable=True)
