"""The catalog browser: the tables a user may read, their columns, row counts and coverage maps."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from proxcompute.errors import ProxError
from proxcompute.service.portal.web import Ctx, portal_page, render
from proxcompute.service.vosi import TableInfo
from proxcompute.storage.atomic import atomic_write

__all__ = ["catalog_page", "catalogs_page", "coverage_png", "readable_tables"]


class NoSuchCatalog(ProxError, LookupError):
    """A catalog the user may not read or that does not exist (deliberately the same 404)."""


@dataclass(frozen=True)
class CatalogSummary:
    """What the browser shows of one table."""

    info: TableInfo
    rows: int  # -1: unknown
    partitions: int
    has_coverage: bool


def readable_tables(ctx: Ctx) -> list[TableInfo]:
    """Every table ``ctx.user`` may read (public catalogs and the user's MyDB tables)."""
    return list(ctx.state.registry_for(ctx.user)[1])


def _summary(ctx: Ctx, info: TableInfo) -> CatalogSummary:
    registry = ctx.state.registry_for(ctx.user)[0]
    cat = registry.open(registry.lookup(info.name.split(".")[-1], info.name.rpartition(".")[0] or None))
    plan = getattr(cat, "plan", None)
    if plan is None:  # a plain Arrow table
        return CatalogSummary(info, cat.num_rows, 0, False)
    pixels = tuple(getattr(plan.source, "pixels", ()) or ())
    return CatalogSummary(info, int(plan.source.total_rows), len(pixels), bool(pixels))


def _find(ctx: Ctx, name: str) -> TableInfo:
    for t in readable_tables(ctx):
        if t.name.lower() == name.lower():
            return t
    raise NoSuchCatalog(f"no catalog {name!r} that you may read")


@portal_page
async def catalogs_page(request: Request, ctx: Ctx) -> Response:
    summaries = await run_in_threadpool(lambda: [_summary(ctx, t) for t in readable_tables(ctx)])
    return render(ctx, "catalogs.html", catalogs=summaries)


@portal_page
async def catalog_page(request: Request, ctx: Ctx) -> Response:
    info = _find(ctx, request.path_params["name"])
    summary = await run_in_threadpool(_summary, ctx, info)
    return render(ctx, "catalog.html", c=summary)


def _coverage_file(ctx: Ctx, info: TableInfo) -> Path:
    """The cached PNG coverage map of a catalog (drawn once per version of its partition list)."""
    registry = ctx.state.registry_for(ctx.user)[0]
    cat = registry.open(registry.lookup(info.name.split(".")[-1], info.name.rpartition(".")[0] or None))
    pixels = tuple(cat.plan.source.pixels)
    key = hashlib.sha256(repr((info.name, pixels)).encode()).hexdigest()[:24]
    path = ctx.portal.cache_dir / f"coverage-{key}.png"
    if path.exists():
        return path
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.4), dpi=100)
    ax = fig.add_subplot(projection="mollweide")
    cat.plot_coverage(ax=ax)
    ax.set_title(f"{info.name}: {len(pixels):,} partitions", fontsize="medium")
    fig.subplots_adjust(0.04, 0.06, 0.88, 0.92)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


@portal_page
async def coverage_png(request: Request, ctx: Ctx) -> Response:
    info = _find(ctx, request.path_params["name"])
    path = await run_in_threadpool(_coverage_file, ctx, info)
    return FileResponse(path, media_type="image/png", headers={"cache-control": "private, max-age=300"})
