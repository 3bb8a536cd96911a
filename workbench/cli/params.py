"""One way to give a notebook's parameters on every command: `-p`, in either spelling, and `-f`.

`-p NAME VALUE` and `-p NAME=VALUE` both work wherever parameters are taken (`workbench run`,
`workbench jobs add`), as does `-f FILE`: a YAML or JSON mapping, as papermill reads. Values
typed on the command line are converted by the notebook's declared types; values from a file
keep the types the file gives them; a `-p` wins over the file. Everything is checked against
the notebook before any kernel or database is touched, so a mistake fails at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import typer

from workbench.cli.errors import UsageError

if TYPE_CHECKING:
    from workbench.runs.params import ParameterSchema

__all__ = [
    "PARAMETER_FLAGS",
    "ParameterFileOption",
    "ParameterInput",
    "ParameterOption",
    "normalize_parameter_args",
    "parameter_input",
]

PARAMETER_FLAGS = frozenset({"-p", "--parameter"})
#: The commands that take parameters, as their first words on the command line.
_TAKING_PARAMETERS = (("run",), ("jobs", "add"))

ParameterOption: TypeAlias = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter",
        "-p",
        metavar="NAME VALUE",
        help="A parameter: `-p NAME VALUE` or `-p NAME=VALUE`, converted by the notebook's "
        "declared type; repeatable.",
    ),
]
ParameterFileOption: TypeAlias = Annotated[
    Path | None,
    typer.Option(
        "--parameters-file",
        "-f",
        metavar="FILE",
        help="Parameters from a YAML or JSON file (a mapping of names to values); `-p` wins.",
        dir_okay=False,
    ),
]


def normalize_parameter_args(argv: Sequence[str]) -> list[str]:
    """``argv`` with every `-p NAME VALUE` written `-p NAME=VALUE`, for the commands that take
    parameters (others are left alone); a `-p` without a value is left for
    :func:`parameter_input` to refuse in words."""
    args = list(argv)
    if not any(tuple(args[: len(words)]) == words for words in _TAKING_PARAMETERS):
        return args
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            out.extend(args[i:])
            break
        # `-p NAME VALUE`; a long option where VALUE should be is a forgotten value, not one
        # (`-5` is a value).
        if (
            word in PARAMETER_FLAGS
            and i + 2 < len(args)
            and "=" not in args[i + 1]
            and not args[i + 2].startswith("--")
        ):
            out.extend([word, f"{args[i + 1]}={args[i + 2]}"])
            i += 3
            continue
        out.append(word)
        i += 1
    return out


@dataclass(frozen=True)
class ParameterInput:
    """The parameters of one command line: typed text, and a file's values."""

    texts: dict[str, str] = field(default_factory=dict)
    from_file: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.texts or self.from_file)

    def typed(self, schema: ParameterSchema) -> dict[str, Any]:
        """The values checked against ``schema``: the text by type, the file's as given."""
        values = dict(self.from_file)
        values.update(schema.parse_text(self.texts))
        return schema.validate(values)


def parameter_input(pairs: Sequence[str] | None, file: Path | None) -> ParameterInput:
    """What `-p` and `-f` gave, refused in one line when it is not NAME=VALUE or a mapping."""
    texts: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-p {pair} needs a value: write `-p NAME VALUE` or `-p NAME=VALUE`.")
        texts[name] = value
    return ParameterInput(texts, _read_file(file) if file is not None else {})


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot read the parameters file {path}: {exc.strerror}.") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "lineno", None) or (mark.line + 1 if mark is not None else None)
        where = f" (line {line})" if line else ""
        raise UsageError(
            f"The parameters file {path} is not valid {kind}{where}: write a mapping, "
            "one `name: value` per line."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(
            f"The parameters file {path} must hold a mapping of parameter names to values."
        )
    return data
