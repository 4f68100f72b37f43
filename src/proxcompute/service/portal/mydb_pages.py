"""MyDB in the portal: the user's tables with their size, Drop, Share and Unshare; quota use.

Sharing is the service's (``ServiceState.share``/``unshare``): a table shared with a group
(or with every signed-in user) is read-only for them as ``mydb_<owner>.<table>`` and shows
in their catalog browser and under "Shared with you" here.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from proxcompute.service.errors import AuthError
from proxcompute.service.portal.catalogs import readable_tables
from proxcompute.service.portal.web import Ctx, portal_page, render

__all__ = ["drop_table", "mydb_page", "mydb_view", "share_table"]

EVERYONE = "authenticated"
"""The share target meaning every signed-in user."""


def mydb_view(ctx: Ctx) -> dict:
    """The user's tables (name, bytes, shared with), their use and quota, what others share with them."""
    state, user = ctx.state, ctx.user
    shares = state.shares_of(user)
    tables = [{"name": n, "bytes": size, "shared_with": sorted(shares.get(n, ()))}
              for n, size in state.mydb.sizes(user).items()]  # fmt: skip
    used = sum(t["bytes"] for t in tables)
    quota = state.quota_for(user).mydb_bytes
    targets = [EVERYONE, *(f"group:{g}" for g in sorted(state.groups_of(user)))]
    shared_with_me = [t.name for t in readable_tables(ctx) if t.schema.lower().startswith("mydb_")]
    return {"tables": tables, "used": used, "quota": quota, "percent": min(100.0, 100.0 * used / max(quota, 1)),
            "targets": targets, "shared_with_me": shared_with_me}  # fmt: skip


def _signed_in(ctx: Ctx) -> str:
    if ctx.user is None:
        raise AuthError("MyDB tables belong to a user: sign in first")
    return ctx.user


@portal_page
async def mydb_page(request: Request, ctx: Ctx) -> Response:
    view = await run_in_threadpool(mydb_view, ctx) if ctx.user is not None else None
    return render(ctx, "mydb.html", mydb=view)


@portal_page
async def drop_table(request: Request, ctx: Ctx) -> Response:
    await ctx.form()
    await run_in_threadpool(ctx.state.mydb.drop, _signed_in(ctx), request.path_params["name"])
    return RedirectResponse(ctx.url("/mydb"), status_code=303)


@portal_page
async def share_table(request: Request, ctx: Ctx) -> Response:
    """POST ``/mydb/{name}/share`` or ``/mydb/{name}/unshare`` with the form field ``with``."""
    form = await ctx.form()
    user = _signed_in(ctx)
    action = ctx.state.share if request.url.path.endswith("/share") else ctx.state.unshare
    await run_in_threadpool(action, user, request.path_params["name"], form.get("with", ""))
    return RedirectResponse(ctx.url("/mydb"), status_code=303)
