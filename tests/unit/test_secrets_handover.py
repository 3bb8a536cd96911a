"""The hand-over of secret values to a kernel, run here as the kernel would run it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.runs import secrets as store
from workbench.runs.errors import SecretError, SecretNotFoundError
from workbench.runs.notebook import render_injection


@pytest.fixture(autouse=True)
def nothing_handed() -> Iterator[None]:
    store.receive({})
    yield
    store.receive({})


def _exec(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(source, "<kernel>", "exec"), namespace)  # noqa: S102 - as the kernel runs it
    namespace.pop("__builtins__", None)
    return namespace


def test_referenced_names_once_each_in_order_lists_included() -> None:
    parameters = {
        "a": "secret:one",
        "b": ["x", "secret:two", "secret:one"],
        "c": "not secret:three",
        "d": 4,
        "e": None,
    }
    assert store.referenced_names(parameters) == ["one", "two"]
    assert store.referenced_names({"a": "plain"}) == []


def test_the_hand_over_binds_no_name_and_resolve_reads_it() -> None:
    values = {"api_token": "v'\"\\\n\x00 end", "b.c-d": "δ 東京"}
    assert _exec(store.hand_over_code(values)) == {}
    assert store.resolve("api_token") == values["api_token"]
    assert store.resolve("b.c-d") == values["b.c-d"]


def test_the_injected_cell_reads_the_handed_value_and_shows_only_the_name() -> None:
    cell = render_injection({"token": "secret:api_token", "many": ["secret:api_token", "x"]})
    assert "Q9-secret" not in cell
    _exec(store.hand_over_code({"api_token": "Q9-secret"}))
    assert _exec(cell) == {"token": "Q9-secret", "many": ["Q9-secret", "x"]}


def test_a_name_not_handed_is_refused_without_any_value() -> None:
    _exec(store.hand_over_code({"api_token": "Q9-secret"}))
    with pytest.raises(SecretNotFoundError, match="'other' was not handed") as refused:
        store.resolve("other")
    assert "Q9-secret" not in str(refused.value)
    _exec(store.hand_over_code({}))  # a new run's hand-over replaces the last one's
    with pytest.raises(SecretNotFoundError):
        store.resolve("api_token")


def test_the_code_carries_the_values_only(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k3y-" + "m" * 40
    monkeypatch.setenv("WORKBENCH_SECRET_KEY", key)
    code = store.hand_over_code({"api_token": "Q9-secret"})
    assert key not in code and "WORKBENCH" not in code and "environ" not in code
    assert code.count("\n") == 1


@pytest.mark.parametrize("name", ["x'); __import__('os').system('id'); ('", "", "a b", "1x"])
def test_names_that_are_not_secret_names_are_refused(name: str) -> None:
    with pytest.raises(SecretError):
        store.hand_over_code({name: "v"})
