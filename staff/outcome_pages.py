"""The outcomes dashboard (admins): what the students' sessions came to, per topic, channel and
day, each flow's funnel and the human help, as tables with their CSV and two charts. Figures are
defined and counted in staff/outcomes.py; `python -m staff report --week` prints the same."""

from __future__ import annotations

import csv
import io

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from staff import outcomes
from staff.pages import HEADERS, in_thread, page, refused, signed_in

DEFAULT_DAYS = 7
# Conversations a page view brings up to date before counting (the rest: the next view, or
# `python -m staff report`): a view after a quiet night must not replay a day of traffic.
REFRESH_ON_VIEW = 2000


def days_of(request: Request) -> int | None:
    raw = str(request.args.get("days", DEFAULT_DAYS))[:4]
    days = int(raw) if raw.isdigit() else 0
    return days if 1 <= days <= outcomes.MAX_DAYS else None


def counted(days: int) -> outcomes.Figures:
    outcomes.refresh(REFRESH_ON_VIEW)
    return outcomes.figures(*outcomes.window(days))


def as_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([as_text(cell) for cell in row])
    return out.getvalue()


def as_text(cell: str) -> str:
    """A cell that starts like a formula, quoted: a spreadsheet shows it, does not run it."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell != "-" else cell


def add_routes(app: Sanic) -> None:
    @app.get("/admin/outcomes")
    @signed_in(role="admin")
    async def dashboard(request: Request) -> HTTPResponse:
        days = days_of(request)
        if days is None:
            return refused(400, f"days 要在 1 到 {outcomes.MAX_DAYS} 之间。")
        found = await in_thread(counted, days)
        return page(
            "outcomes.html",
            user=request.ctx.user,
            days=days,
            found=found,
            tables=outcomes.tables(found),
            worst=found.worst_steps(),
            flows=outcomes.FLOWS,
            percent=outcomes.percent,
        )

    @app.get("/admin/outcomes/<file:str>")
    @signed_in(role="admin")
    async def table_or_chart(request: Request, file: str) -> HTTPResponse:
        """A table as CSV (`topics.csv`) or a chart as SVG (`days.svg`)."""
        name, _, kind = file.partition(".")
        days = days_of(request)
        known = outcomes.TABLES if kind == "csv" else outcomes.CHARTS if kind == "svg" else ()
        if days is None or name not in known:
            return refused(404, "没有这张表或图。")
        found = await in_thread(counted, days)
        if kind == "svg":
            drawn = await in_thread(outcomes.charts, found, name)
            return response.text(drawn[name], content_type="image/svg+xml", headers=HEADERS)
        return response.text(
            as_csv(outcomes.csv_rows(found, name)),
            content_type="text/csv; charset=utf-8",
            headers={
                **HEADERS,
                "Content-Disposition": f'attachment; filename="outcomes-{name}-{days}d.csv"',
            },
        )
