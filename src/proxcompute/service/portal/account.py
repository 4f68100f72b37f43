"""Sign in (a bearer token, or a user name and password) and sign out.

Signing in or out always starts a new session (a new cookie value and CSRF token), so an id
planted in a browser before sign-in is worth nothing after it. A failed sign-in says only
that it failed: not whether the user exists or which half was wrong; too many failures from
one address make it wait (:class:`~proxcompute.service.portal.sessions.SignInThrottle`).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from proxcompute.service.portal.web import Ctx, portal_page, render
from proxcompute.service.state import ServiceState

__all__ = ["SIGN_IN_FAILED", "authenticate", "sign_in", "sign_in_page", "sign_out"]

SIGN_IN_FAILED = "Sign-in failed: check the token, or the user name and password."
TOO_MANY = "Too many failed sign-ins from your address; try again in {seconds} s."


def authenticate(state: ServiceState, token: str = "", user: str = "", password: str = "") -> str | None:
    """The user a token or a user name and password signs in as; None when they do not.

    The service's access API decides (``--tokens`` and the ``--access`` file); both checks
    are timing-safe there, and an unknown user takes as long as a wrong password.
    """
    token = token.strip()
    if token:
        return state.user_for_token(token)
    user = user.strip()
    if user and password and state.check_password(user, password):
        return user
    return None


@portal_page
async def sign_in_page(request: Request, ctx: Ctx) -> Response:
    return render(ctx, "signin.html", error=None, username="")


@portal_page
async def sign_in(request: Request, ctx: Ctx) -> Response:
    form = await ctx.form()
    throttle = ctx.portal.sign_in_throttle
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait_seconds(address)
    if wait > 0:  # checked before the credentials: no answer about them while throttled
        return render(ctx, "signin.html", status=429, error=TOO_MANY.format(seconds=int(wait) + 1),
                      username=form.get("username", ""))  # fmt: skip
    user = await run_in_threadpool(
        authenticate, ctx.state, form.get("token", ""), form.get("username", ""), form.get("password", "")
    )  # argon2 takes a while: not on the event loop
    if user is None:
        throttle.failed(address)
        return render(ctx, "signin.html", status=401, error=SIGN_IN_FAILED, username=form.get("username", ""))
    ctx.session = await run_in_threadpool(ctx.portal.sessions.rotate, ctx.session, user)
    return RedirectResponse(ctx.url("/"), status_code=303)


@portal_page
async def sign_out(request: Request, ctx: Ctx) -> Response:
    await ctx.form()
    ctx.session = await run_in_threadpool(ctx.portal.sessions.rotate, ctx.session, None)
    return RedirectResponse(ctx.url("/"), status_code=303)
