"""MyDB in the portal: the user's tables with their size, Drop, and quota use against the quota."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from proxcompute.service.portal.web import Ctx, portal_page, render

__all__ = ["drop_table", "mydb_page"]


def mydb_view(ctx: Ctx) -> dict:
    """The user's tables (name, bytes), their use and their quota."""
    mydb = ctx.state.mydb
    tables = [{"name": n, "bytes": size} for n, size in mydb.sizes(ctx.user).items()]
    used = sum(t["bytes"] for t in tables)
    quota = mydb.quota_bytes
    return {"tables": tables, "used": used, "quota": quota, "percent": min(100.0, 100.0 * used / max(quota, 1))}


@portal_page
async def mydb_page(request: Request, ctx: Ctx) -> Response:
    view = await run_in_threadpool(mydb_view, ctx) if ctx.user is not None else None
    return render(ctx, "mydb.html", mydb=view)


@portal_page
async def drop_table(request: Request, ctx: Ctx) -> Response:
    await ctx.form()
    await run_in_threadpool(ctx.state.mydb.drop, ctx.user, request.path_params["name"])
    return RedirectResponse(ctx.url("/mydb"), status_code=303)
