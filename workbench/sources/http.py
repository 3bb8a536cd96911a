"""The ``http`` source: JSON or CSV from an HTTP API, page by page, with retries.

Pagination follows a next link (in the JSON body or the ``Link`` header) or counts page
numbers until a page comes back empty. Timeouts, connection failures, 429 and 5xx answers
are retried with exponential backoff. The auth header's value comes only from a
``secret:NAME`` reference and is never logged or put into an error.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pandas as pd
from pydantic import Field

from workbench.sources.base import Item, Options, Source
from workbench.sources.errors import SourceError, SourceOptionError
from workbench.sources.secrets import resolve_reference

__all__ = ["HttpOptions", "HttpSource"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 60.0


class HttpOptions(Options):
    url: str = Field(pattern=r"^https?://", description="The first page's URL.")
    format: Literal["json", "csv"] = Field("json", description="json or csv.")
    records: str | None = Field(None, description="Dotted path to the list of rows in JSON.")
    pagination: Literal["none", "next", "page"] = Field("none", description="none, next, page.")
    next_key: str = Field("next", description="Dotted path to the next page's URL (next).")
    page_param: str = Field("page", description="Query parameter of the page number (page).")
    start_page: int = Field(1, ge=0, description="First page number (page).")
    max_pages: int = Field(1000, gt=0, description="Stop after this many pages.")
    params: dict[str, str | int | float] = Field(default_factory=dict, description="Query.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers.")
    auth: str | None = Field(None, description="secret:NAME whose value goes in auth_header.")
    auth_header: str = Field("Authorization", description="Header that carries auth.")
    auth_scheme: str = Field("Bearer", description="Prefix of the auth value ('' for none).")
    timeout: float = Field(30.0, gt=0, description="Seconds per request.")
    retries: int = Field(3, ge=0, le=10, description="Retries after a failed request.")
    backoff: float = Field(0.5, ge=0, description="First retry delay; doubles each time.")


class HttpSource(Source[HttpOptions]):
    """JSON or CSV pages from an HTTP API."""

    name = "http"
    description = "JSON or CSV from an HTTP API, with pagination, retries and secret auth."
    options_model = HttpOptions

    def iter_batches(self, options: HttpOptions) -> Iterator[Item]:
        headers = dict(options.headers)
        if options.auth is not None:
            secret = resolve_reference(options.auth, "auth")
            scheme = options.auth_scheme.strip()
            headers[options.auth_header] = f"{scheme} {secret}" if scheme else secret
        client = httpx.Client(headers=headers, timeout=options.timeout, follow_redirects=True)
        with client:
            yield from _pages(client, options)


def _pages(client: httpx.Client, options: HttpOptions) -> Iterator[pd.DataFrame]:
    url: str | None = options.url
    params: dict[str, str | int | float] = dict(options.params)
    page = options.start_page
    for _ in range(options.max_pages):
        if url is None:
            return
        if options.pagination == "page":
            params[options.page_param] = page
        response = _get(client, url, params, options)
        shown = _shown(response.url)
        if options.format == "csv":
            frame = _csv(response, shown)
            body: Any = None
        else:
            body = _json(response, shown)
            frame = pd.json_normalize(_records(body, options.records, shown), sep="_")
        if options.pagination == "page" and frame.empty:
            return
        yield frame
        if options.pagination == "none":
            return
        if options.pagination == "page":
            page += 1
        else:
            url, params = _next_url(response, body, options.next_key), {}
    if url is None:
        return
    raise SourceError(
        f"{options.url}: still more pages after max_pages={options.max_pages}; raise max_pages."
    )


def _get(
    client: httpx.Client, url: str, params: dict[str, str | int | float], options: HttpOptions
) -> httpx.Response:
    """GET with retries on timeouts, connection errors, 429 and 5xx; errors name the URL."""
    target = httpx.URL(url).copy_merge_params(params)  # keeps the URL's own query too
    shown = _shown(target)
    problem, wait = "", 0.0
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(wait)
        wait = options.backoff * 2**attempt
        try:
            response = client.get(target)
        except httpx.TimeoutException:
            problem = f"timed out after {options.timeout:g} s"
            continue
        except httpx.TransportError as exc:
            problem = f"could not connect ({type(exc).__name__})"
            continue
        if response.status_code in _RETRY_STATUS and attempt < options.retries:
            problem = f"answered HTTP {response.status_code}"
            wait = max(wait, min(_retry_after(response), _MAX_RETRY_AFTER))
            continue
        if response.is_error:
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise SourceError(
                f"GET {shown} answered HTTP {response.status_code} {response.reason_phrase}"
                f"{tries}; check the URL, its parameters and the auth secret."
            )
        return response
    raise SourceError(
        f"GET {shown} {problem} ({options.retries + 1} attempts); check that the server is up, "
        "or raise timeout= or retries=."
    )


def _shown(url: httpx.URL) -> str:
    """The URL for errors: without any user and password it carries."""
    return str(url.copy_with(userinfo=b""))


def _retry_after(response: httpx.Response) -> float:
    """Seconds the server asked us to wait (``Retry-After`` in seconds), else 0."""
    try:
        return max(float(response.headers.get("Retry-After", "0")), 0.0)
    except ValueError:
        return 0.0


def _json(response: httpx.Response, shown: str) -> Any:
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"GET {shown} returned malformed JSON ({exc}); check the URL, or use format=csv."
        ) from None


def _csv(response: httpx.Response, shown: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(response.text))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, ValueError) as exc:
        raise SourceError(f"GET {shown} returned malformed CSV: {exc}") from None


def _lookup(body: Any, path: str) -> Any:
    value = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _records(body: Any, path: str | None, shown: str) -> list[Any]:
    rows = body if path is None else _lookup(body, path)
    if isinstance(rows, list):
        return rows
    if path is None and isinstance(body, dict):
        keys = ", ".join(sorted(body)[:10])
        raise SourceOptionError(
            f"GET {shown} returned a JSON object, not a list of rows; name the list with "
            f"records=KEY (the object's keys: {keys})."
        )
    raise SourceError(f"GET {shown}: no list of rows at records={path!r}.")


def _next_url(response: httpx.Response, body: Any, next_key: str) -> str | None:
    """The next page: the body's ``next_key`` (relative URLs allowed), else ``Link: rel=next``."""
    if body is not None:
        found = _lookup(body, next_key)
        if isinstance(found, str) and found:
            return str(response.url.join(found))
    link = response.links.get("next", {}).get("url")
    return str(response.url.join(link)) if link else None
