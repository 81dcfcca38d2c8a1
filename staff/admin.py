"""The console's admin pages: what the assistant did not understand (grouped, exportable as NLU
YAML), what it answered that deserves a second look, whether its answers helped (table and CSV),
tickets per topic per day (SVG), and how many workers each Rasa server has serving."""

import asyncio
import threading
from datetime import timedelta

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core.db import queries
from core.db.models import utcnow
from staff import improve, servers
from staff.pages import HEADERS, page, signed_in

CHART_DAYS = 14


# This console's grouping of the texts it has seen: a page view groups only the new ones.
INDEX = improve.GroupIndex()
INDEX_LOCK = threading.Lock()


def grouped_with_index(rows: list) -> list[improve.Group]:
    with INDEX_LOCK:  # the executor's threads share the index
        return improve.grouped(rows, INDEX)


# One grouping per kind of the review list: a text's group number belongs to its own index.
REVIEW_INDEXES = {kind: improve.GroupIndex() for kind in improve.REVIEW_KINDS}


def review_grouped(kind: str, rows: list[queries.ReviewRow]) -> list[improve.ReviewGroup]:
    with INDEX_LOCK:
        return improve.review_groups(rows, REVIEW_INDEXES[kind])


async def review_lists() -> dict[str, list[improve.ReviewGroup]]:
    """Each kind's groups, worked out off the event loop as the not-understood ones are."""
    loop = asyncio.get_running_loop()
    lists = {}
    for kind in improve.REVIEW_KINDS:
        rows = queries.review_rows(kind, improve.MAX_GROUPED)
        lists[kind] = await loop.run_in_executor(None, review_grouped, kind, rows)
    return lists


async def unanswered_groups() -> list[improve.Group]:
    """Off the event loop: new texts still cost a comparison or two each."""
    rows = queries.unanswered_rows(improve.MAX_GROUPED)
    return await asyncio.get_running_loop().run_in_executor(None, grouped_with_index, rows)


def add_routes(app: Sanic) -> None:
    @app.get("/admin/unanswered")
    @signed_in(role="admin")
    async def unanswered(request: Request) -> HTTPResponse:
        groups = await unanswered_groups()
        return page(
            "unanswered.html", user=request.ctx.user, groups=groups, intents=improve.intents()
        )

    @app.get("/admin/review")
    @signed_in(role="admin")
    async def review(request: Request) -> HTTPResponse:
        return page(
            "review.html",
            user=request.ctx.user,
            lists=await review_lists(),
            kinds=improve.REVIEW_KINDS,
            not_understood=sum(group.count for group in await unanswered_groups()),
        )

    @app.post("/admin/unanswered/export")
    @signed_in(role="admin")
    async def export(request: Request) -> HTTPResponse:
        """The groups given an intent, as NLU YAML to review before it joins data/nlu/."""
        form = request.form or {}
        known = set(improve.intents())
        groups = await unanswered_groups()
        chosen: dict[str, list[str]] = {}
        for number, group in enumerate(groups):
            intent = str(form.get(f"intent-{number}", ""))
            if intent in known:
                chosen.setdefault(intent, []).extend(group.texts)
        return response.text(
            improve.nlu_yaml(chosen),
            content_type="application/x-yaml; charset=utf-8",
            headers={**HEADERS, "Content-Disposition": 'attachment; filename="unanswered-nlu.yml"'},
        )

    @app.get("/admin/feedback")
    @signed_in(role="admin")
    async def feedback(request: Request) -> HTTPResponse:
        return page("feedback.html", user=request.ctx.user, counts=queries.feedback_by_answer())

    @app.get("/admin/feedback.csv")
    @signed_in(role="admin")
    async def feedback_csv(_: Request) -> HTTPResponse:
        return response.text(
            improve.feedback_csv(queries.feedback_by_answer()),
            content_type="text/csv; charset=utf-8",
            headers={**HEADERS, "Content-Disposition": 'attachment; filename="feedback.csv"'},
        )

    @app.get("/admin/servers")
    @signed_in(role="admin")
    async def server_status(request: Request) -> HTTPResponse:
        return page("servers.html", user=request.ctx.user, servers=await servers.statuses())

    @app.get("/admin/topics.svg")
    @signed_in(role="admin")
    async def topics_chart(_: Request) -> HTTPResponse:
        since = utcnow() - timedelta(days=CHART_DAYS)
        rows = queries.tickets_per_topic_per_day(since)
        svg = await asyncio.get_running_loop().run_in_executor(None, improve.topics_chart, rows)
        return response.text(svg, content_type="image/svg+xml", headers=HEADERS)
