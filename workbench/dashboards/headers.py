"""The security headers of the dashboards server, sent with every page and API answer.

The Content-Security-Policy is the narrowest the real Voila pages render under (checked in
Chromium by tests/e2e/test_dashboards_csp.py): scripts, styles, fonts and images from this
server only, plus the inline scripts and styles Voila's page template and the widget libraries
write and ``data:``/``blob:`` images and fonts; connections (the kernel's websocket) to this
server only; no plugins, no ``<base>`` elsewhere, forms posted only here, and no framing by
any site (``frame-ancestors 'none'``). A run's stored output keeps its own stricter sandbox
policy (:mod:`workbench.dashboards.outputs`). HSTS is added to answers sent over TLS.
"""

from __future__ import annotations

from tornado import web

from workbench.ops.http import BASE_HEADERS, HSTS

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "add_transport_headers"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

#: The tornado ``headers`` setting: jupyter_server's handlers send these with every answer.
SECURITY_HEADERS: dict[str, str] = {
    **BASE_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
}


def add_transport_headers(handler: web.RequestHandler) -> None:
    """HSTS on an answer the browser receives over TLS (``https``), never over plain HTTP."""
    if handler.request.protocol == "https":
        handler.set_header(*HSTS)
