"""Sign-in's ``next=``: only a path of this server under its base URL, otherwise the base URL.

Each hostile value is one a browser would follow to another site (it drops tabs and new lines,
reads a backslash as a slash, trims leading spaces) or that is not this server's path.
"""

from __future__ import annotations

import pytest

from workbench.dashboards.auth import safe_next

HOSTILE = [
    "/\t/evil.example",  # `next=/%09/host`: tornado keeps the tab, Chromium drops it
    "/\n/evil.example",
    "/\r/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\x7f/evil.example",
    "/\u200b/evil.example",  # zero-width space
    "/\u2028/evil.example",  # line separator
    "/\u3000/evil.example",  # ideographic space
    "/ /evil.example",
    " //evil.example",
    "\t//evil.example",
    "//evil.example",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "voila/render/x.ipynb",  # relative: not a path of this server's root
    "?next=//evil.example",
    "#//evil.example",
    "",
    None,
]


@pytest.mark.parametrize("target", HOSTILE)
def test_a_hostile_next_goes_to_the_base_url(target: str | None) -> None:
    assert safe_next(target, "/") == "/"
    assert safe_next(target, "/wb/") == "/wb/"


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/voila/render/flights_operations.ipynb",
        "/voila/render/flights_operations.ipynb?carrier=UA&origin=JFK",
        "/voila/render/a%20b.ipynb",
        "/voila/render/%2F%2Fstays.ipynb",  # encoded: the browser keeps it a path here
        "/voila/render/caf\u00e9.ipynb",
        "/runs/0b3c7e1e-3a0e-4c8a-9d55-0d1f2c3b4a59/output",
    ],
)
def test_a_path_of_this_server_is_kept(target: str) -> None:
    assert safe_next(target, "/") == target


def test_a_path_outside_the_base_url_goes_to_the_base_url() -> None:
    assert safe_next("/wb/voila/render/x.ipynb", "/wb/") == "/wb/voila/render/x.ipynb"
    assert safe_next("/other/x", "/wb/") == "/wb/"
    assert safe_next("/wbx/", "/wb/") == "/wb/"
