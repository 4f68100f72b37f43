"""The science-platform portal, served by the TAP service at ``/``.

Pages (module-level handlers, Jinja2 templates with autoescaping, the portal's own CSS and
JavaScript, nothing fetched from elsewhere): the catalog browser
(:mod:`~proxcompute.service.portal.catalogs`), the query editor
(:mod:`~proxcompute.service.portal.editor`), jobs and results
(:mod:`~proxcompute.service.portal.jobs`), MyDB
(:mod:`~proxcompute.service.portal.mydb_pages`) and sign-in
(:mod:`~proxcompute.service.portal.account`). Every query runs as a UWS job of the same
job store and runner as ``/async``, so the portal adds no second way to run anything.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from proxcompute.service.portal.account import sign_in, sign_in_page, sign_out
from proxcompute.service.portal.catalogs import catalog_page, catalogs_page, coverage_png
from proxcompute.service.portal.editor import editor_page, submit_query
from proxcompute.service.portal.jobs import (
    abort_job,
    delete_job,
    download,
    job_page,
    job_sky,
    job_status,
    jobs_page,
)
from proxcompute.service.portal.mydb_pages import drop_table, mydb_page, share_table
from proxcompute.service.portal.web import HERE, PortalState

__all__ = ["PortalState", "portal_routes"]


def portal_routes(prefix: str = "") -> list[BaseRoute]:
    """Every route of the portal under ``prefix`` ("" serves it at ``/``)."""
    p = prefix.rstrip("/")
    job = p + "/jobs/{job_id}"
    return [
        Route(p + "/", catalogs_page, methods=["GET"]),
        Route(p + "/catalogs", catalogs_page, methods=["GET"]),
        Route(p + "/catalogs/{name}", catalog_page, methods=["GET"]),
        Route(p + "/catalogs/{name}/coverage.png", coverage_png, methods=["GET"]),
        Route(p + "/query", editor_page, methods=["GET"]),
        Route(p + "/query", submit_query, methods=["POST"]),
        Route(p + "/jobs", jobs_page, methods=["GET"]),
        Route(job, job_page, methods=["GET"]),
        Route(job + "/status", job_status, methods=["GET"]),
        Route(job + "/abort", abort_job, methods=["POST"]),
        Route(job + "/delete", delete_job, methods=["POST"]),
        Route(job + "/result.{fmt}", download, methods=["GET"]),
        Route(job + "/sky.png", job_sky, methods=["GET"]),
        Route(p + "/mydb", mydb_page, methods=["GET"]),
        Route(p + "/mydb/{name}/drop", drop_table, methods=["POST"]),
        Route(p + "/mydb/{name}/share", share_table, methods=["POST"]),
        Route(p + "/mydb/{name}/unshare", share_table, methods=["POST"]),
        Route(p + "/signin", sign_in_page, methods=["GET"]),
        Route(p + "/signin", sign_in, methods=["POST"]),
        Route(p + "/signout", sign_out, methods=["POST"]),
        Mount(p + "/static", StaticFiles(directory=HERE / "static"), name="portal-static"),
    ]
