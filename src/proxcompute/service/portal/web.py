"""What every portal page shares: its session, the CSRF check, templates, errors, headers.

Handlers are module-level functions ``async def page(request, ctx) -> Response`` wrapped by
:func:`portal_page`, which finds (or starts) the visitor's session, hands the handler a
:class:`Ctx`, turns errors into an HTML page with a 4xx status (only a bug is a 500), and
sets the session cookie and the security headers (a Content-Security-Policy that allows
only this service's own scripts, styles and images) on every answer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from proxcompute.errors import ProxError
from proxcompute.service.errors import message_for, status_for
from proxcompute.service.portal.sessions import COOKIE, Session, SessionStore, SignInThrottle
from proxcompute.service.state import ServiceState, base_url, state_of

__all__ = ["CsrfError", "Ctx", "PortalState", "portal_of", "portal_page", "render"]

log = logging.getLogger("proxcompute.service.portal")

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class CsrfError(ProxError):
    """A state-changing form without this session's CSRF token (HTTP 403)."""


class PortalState:
    """The portal's own state next to the service's: sessions, sign-in throttle, templates, image cache.

    Parameters
    ----------
    service : ServiceState
        The TAP service the portal is a front of.
    prefix : str
        URL path the portal is served under ("" for ``/``).
    """

    def __init__(self, service: ServiceState, prefix: str = "") -> None:
        self.service = service
        self.prefix = prefix.rstrip("/")
        self.sessions = SessionStore(service.store)
        self.sign_in_throttle = SignInThrottle()
        self.cache_dir = Path(service.config.data_dir) / "portal-cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every {{ value }} is HTML-escaped
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )


def portal_of(request: Request) -> PortalState:
    """The :class:`PortalState` of the app serving ``request``."""
    return request.app.state.portal


@dataclass
class Ctx:
    """One request as a portal handler sees it."""

    request: Request
    state: ServiceState
    portal: PortalState
    session: Session

    @property
    def user(self) -> str | None:
        """Who signed in (None: anonymous)."""
        return self.session.user

    def url(self, path: str) -> str:
        """A portal path (``/jobs``) under the portal's prefix."""
        return self.portal.prefix + path

    async def form(self) -> dict[str, str]:
        """The posted form, after checking its ``csrf_token`` against the session's.

        Raises
        ------
        CsrfError
            The token is missing or is not this session's.
        """
        form = await self.request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.session.csrf_ok(values.get("csrf_token")):
            raise CsrfError("the form has expired or did not come from this site; reload the page and try again")
        return values


def render(ctx: Ctx, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render a template with what every page needs (user, CSRF token, URLs)."""
    html = ctx.portal.templates.get_template(template).render(
        user=ctx.user,
        csrf_token=ctx.session.csrf,
        root=ctx.portal.prefix,
        tap_url=base_url(ctx.request, ctx.state),
        path=ctx.request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status)


Handler = Callable[[Request, Ctx], Awaitable[Response]]


def _status(exc: BaseException) -> int:
    if isinstance(exc, CsrfError):
        return 403
    if isinstance(exc, ProxError) and isinstance(exc, LookupError):
        return 404  # no such catalog, job or table (or not the user's: the same answer)
    return status_for(exc)


def portal_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a portal handler: session in, cookie and security headers out, errors as pages."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        portal = portal_of(request)
        given = request.cookies.get(COOKIE)
        session = await run_in_threadpool(lambda: portal.sessions.get(given) or portal.sessions.new())
        ctx = Ctx(request, state_of(request), portal, session)
        try:
            response = await handler(request, ctx)
        except Exception as exc:
            status = _status(exc)
            if status >= 500:
                log.exception("%s %s failed", request.method, request.url.path)
                message = "internal error: the service could not answer this request (it is logged)"
            else:
                message = message_for(exc)
            response = render(ctx, "error.html", status=status, message=message)
        if ctx.session.id != given:
            response.set_cookie(
                COOKIE, ctx.session.id, httponly=True, samesite="lax", path="/",
                secure=request.url.scheme == "https",
            )  # fmt: skip
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        response.headers.setdefault("cache-control", "no-store")
        return response

    return wrapped
