"""The server's own pages: login, the dashboards index and the friendly error page, and the
header every page has, the dashboards' included.

Rendered with Jinja2 (autoescaped) from the templates below, in one shared look.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment
from markupsafe import Markup

__all__ = [
    "DashboardLink",
    "error_page",
    "index_page",
    "login_page",
    "logout_page",
    "page_header",
]

_env = Environment(autoescape=True)

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Workbench</title>
<style>
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:#f4f6f9;color:#1f2933}
main{max-width:880px;margin:40px auto;padding:0 24px}
@media (max-width:600px){main{margin:20px auto;padding:0 12px} .card{padding:18px}}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:28px}
h1{font-size:22px;margin:0 0 18px} label{display:block;margin:14px 0 4px;font-weight:600}
input{width:100%;box-sizing:border-box;padding:9px 11px;border:1px solid #c5ced8;
border-radius:6px;font-size:15px}
button{margin-top:20px;background:#1f6feb;color:#fff;border:0;border-radius:6px;
padding:10px 18px;font-size:15px;cursor:pointer}
.error{background:#fdecea;color:#8a1c13;border-radius:6px;padding:10px 12px;margin-bottom:8px}
ul.dash{list-style:none;padding:0;margin:0} ul.dash li{border-top:1px solid #e6eaef;padding:14px 0}
ul.dash li:first-child{border-top:0} ul.dash a{font-weight:600;color:#1f6feb;font-size:17px;
text-decoration:none} .muted{color:#6b7785}
</style></head><body>
{{ header }}<main><div class="card">{{ body }}</div></main></body></html>
"""

#: The header of every page, the dashboards' included (:func:`page_header`): its own
#: styles, scoped to ``.wb-header`` so that Voila's page styles and these do not mix.
_HEADER = """<style>
.wb-header{background:#1f3a5f;color:#fff;padding:12px 32px;display:flex;flex-wrap:wrap;
align-items:center;justify-content:space-between;gap:6px 18px;box-sizing:border-box;
font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.wb-header nav{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px;min-width:0}
.wb-header a.wb-home{color:#fff;font-weight:700;font-size:18px;letter-spacing:.3px;
text-decoration:none}
.wb-header a.wb-home:hover,.wb-header form button:hover{text-decoration:underline}
.wb-header .wb-title{color:#cfe0f5;font-size:17px;margin:0;font-weight:600;
overflow-wrap:anywhere}
.wb-header form{margin:0;display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.wb-header .wb-viewer{color:#fff}
.wb-header form button{margin:0;padding:0;border:0;background:none;color:#cfe0f5;
font:inherit;cursor:pointer}
@media (max-width:600px){.wb-header{padding:10px 12px}}
</style>
<header class="wb-header"><nav><a class="wb-home" href="{{ base_url }}"
title="All your dashboards">Workbench dashboards</a>
{% if title %}<span aria-hidden="true" class="wb-title">/</span>
<h1 class="wb-title">{{ title }}</h1>{% endif %}</nav>
{% if username %}<form class="wb-signout" method="post" action="{{ base_url }}logout">
{{ xsrf }}<span class="wb-viewer">{{ username }}</span><span aria-hidden="true">·</span>
<button type="submit">Sign out</button></form>{% endif %}
</header>"""

_LOGIN = """<h1>Sign in</h1>
{% if error %}<div class="error" role="alert">{{ error }}</div>{% endif %}
<form method="post" action="{{ action }}">{{ xsrf }}
<label for="username">User name</label>
<input id="username" name="username" value="{{ username }}" autocomplete="username" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Sign in</button></form>"""

_INDEX = """<h1>Your dashboards</h1>
{% if links %}<ul class="dash">{% for link in links %}
<li><a href="{{ link.url }}">{{ link.title }}</a>
{% if link.description %}<div class="muted">{{ link.description }}</div>{% endif %}</li>
{% endfor %}</ul>{% else %}<p class="muted">No dashboard is open to your account yet; ask an
administrator.</p>{% endif %}"""

_LOGOUT = """<h1>Sign out</h1><p>Sign out of Workbench dashboards on this browser?</p>
<form method="post" action="{{ base_url }}logout">{{ xsrf }}
<button type="submit">Sign out</button></form>
<p><a href="{{ base_url }}">Back to your dashboards</a></p>"""

_ERROR = """<h1>{{ heading }}</h1><p>{{ message }}</p>
<p><a href="{{ base_url }}">Back to your dashboards</a></p>"""


@dataclass(frozen=True)
class DashboardLink:
    url: str
    title: str
    description: str = ""


def page_header(*, title: str = "", username: str = "", base_url: str = "/", xsrf: str = "") -> str:
    """The header of every page: a link to the index, the page's ``title`` and, signed in,
    the viewer's name and the sign-out button, a form posted with the XSRF token (``xsrf``:
    tornado's hidden input). Dashboards get it from the server (:mod:`.frame`)."""
    return _env.from_string(_HEADER).render(
        title=title,
        username=username,
        base_url=base_url,
        xsrf=Markup(xsrf),  # noqa: S704 (tornado's escaped hidden input)
    )


def _page(title: str, body: str, *, username: str = "", base_url: str = "/", xsrf: str = "") -> str:
    """A page in the shared look, with the shared header."""
    header = page_header(username=username, base_url=base_url, xsrf=xsrf)
    return _env.from_string(_BASE).render(
        title=title,
        body=Markup(body),  # noqa: S704 (rendered by an autoescaping template)
        header=Markup(header),  # noqa: S704 (rendered by an autoescaping template)
    )


def login_page(*, action: str, xsrf: str, error: str | None, username: str) -> str:
    body = _env.from_string(_LOGIN).render(
        action=action,
        xsrf=Markup(xsrf),  # noqa: S704 (tornado's escaped hidden input)
        error=error,
        username=username,
    )
    return _page("Sign in", body)


def index_page(links: list[DashboardLink], *, username: str, base_url: str, xsrf: str) -> str:
    body = _env.from_string(_INDEX).render(links=links)
    return _page("Dashboards", body, username=username, base_url=base_url, xsrf=xsrf)


def logout_page(*, username: str, base_url: str, xsrf: str) -> str:
    """Asks before signing out: only a posted form (with its XSRF token) signs out."""
    body = _env.from_string(_LOGOUT).render(base_url=base_url, xsrf=Markup(xsrf))  # noqa: S704
    return _page("Sign out", body, username=username, base_url=base_url, xsrf=xsrf)


def error_page(status: int, *, username: str = "", base_url: str = "/", xsrf: str = "") -> str:
    """A page for an HTTP error status that says what happened, without internals."""
    heading, message = _MESSAGES.get(status, _MESSAGES[500])
    body = _env.from_string(_ERROR).render(heading=heading, message=message, base_url=base_url)
    return _page(heading, body, username=username if xsrf else "", base_url=base_url, xsrf=xsrf)


_MESSAGES = {
    403: ("Not allowed", "Your account may not open this page."),
    404: ("Not found", "There is no such page or file here."),
    405: ("Not allowed", "This page cannot be used that way."),
    500: (
        "Something went wrong",
        "The page could not be shown. Try again in a moment; if it keeps happening, tell "
        "your Workbench administrator the time it happened.",
    ),
}
