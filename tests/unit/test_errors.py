from __future__ import annotations

import pytest

from workbench.core import errors


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


@pytest.mark.parametrize("cls", [errors.WorkbenchError, *_subclasses(errors.WorkbenchError)])
def test_every_error_has_a_default_message_from_its_docstring(cls: type) -> None:
    if cls is errors.InsecureConfigurationError:
        err = cls(["WORKBENCH_SECRET_KEY is missing"])
        assert "WORKBENCH_SECRET_KEY is missing" in str(err)
    else:
        err = cls()
        assert str(err) == (cls.__doc__ or "").strip()
        assert str(err)
    assert isinstance(err, errors.WorkbenchError)
    assert err.exit_code != 0


def test_specific_message_wins() -> None:
    assert str(errors.DatabaseError("table x is locked")) == "table x is locked"
