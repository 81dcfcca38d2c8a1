"""The console's admin pages: what the assistant did not understand (grouped, exportable as NLU
YAML), what it answered that deserves a second look, whether its answers helped (table and CSV),
tickets per topic per day (SVG), and how many workers each Rasa server has serving."""

import asyncio
import re
import threading
from datetime import timedelta
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core.db import queries
from core.db.models import FAQ_GAP, REVIEW_KINDS, utcnow
from staff import improve, improvements, servers
from staff.pages import HEADERS, page, refused, signed_in

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
    """Each kind's groups without what was labelled, worked out off the event loop as the
    not-understood ones are."""
    loop = asyncio.get_running_loop()
    lists = {}
    for kind in improve.REVIEW_KINDS:
        rows = queries.review_rows(kind, improve.MAX_GROUPED)
        lists[kind] = await loop.run_in_executor(None, review_grouped, kind, rows)
    return lists


async def unanswered_groups() -> list[improve.Group]:
    """Off the event loop: new texts still cost a comparison or two each. Without what was
    labelled."""
    rows = queries.unanswered_rows(improve.MAX_GROUPED)
    return await asyncio.get_running_loop().run_in_executor(None, grouped_with_index, rows)


async def groups_of(source: str) -> list[improve.Group]:
    """The groups of one review list, as its page shows them now."""
    if source == "not_understood":
        return await unanswered_groups()
    return [review.group for review in (await review_lists())[source]]


LIST_PAGES = {"not_understood": "/admin/unanswered", **{k: "/admin/review" for k in REVIEW_KINDS}}


COUNT = re.compile(r"[0-9]{1,4}")


def chosen_groups(
    form: Any, groups: list[improve.Group], verdicts: set[str]
) -> tuple[list[tuple[str, improve.Group]], int]:
    """(verdict, group) for each group the form gives a verdict (`intent-N`), found by the key
    of the members it showed (`group-N`: the lists regroup as students write), and how many
    named a group that has changed since (not labelled: nobody saw what it holds now)."""
    current = {improve.group_key(group.texts): group for group in groups}
    chosen, stale = [], 0
    for number in range(improve.MAX_GROUPED):  # a page shows at most this many groups
        verdict = str(form.get(f"intent-{number}", ""))
        if verdict not in verdicts:
            continue
        group = current.get(str(form.get(f"group-{number}", "")))
        if group is None:
            stale += 1
        else:
            chosen.append((verdict, group))
    return chosen, stale


def labelled_note(request: Request) -> str:
    """What the last labelling did, for the page it returns to."""
    args = request.args
    saved, stale = args.get("saved", ""), args.get("stale", "")
    if not (COUNT.fullmatch(saved) and COUNT.fullmatch(stale)):
        return ""
    note = f"已保存 {int(saved)} 组的标注。"
    if int(stale):
        note += f"{int(stale)} 组在你标注时有了变化，没有保存，请再看一遍。"
    return note


def add_routes(app: Sanic) -> None:
    @app.get("/admin/unanswered")
    @signed_in(role="admin")
    async def unanswered(request: Request) -> HTTPResponse:
        groups = await unanswered_groups()
        return page(
            "unanswered.html",
            user=request.ctx.user,
            groups=groups,
            intents=improve.intents(),
            group_key=improve.group_key,
            done=labelled_note(request),
        )

    @app.get("/admin/review")
    @signed_in(role="admin")
    async def review(request: Request) -> HTTPResponse:
        return page(
            "review.html",
            user=request.ctx.user,
            lists=await review_lists(),
            kinds=improve.REVIEW_KINDS,
            intents=improve.intents(),
            group_key=improve.group_key,
            done=labelled_note(request),
            not_understood=sum(group.count for group in await unanswered_groups()),
        )

    @app.post("/admin/labels")
    @signed_in(role="admin")
    async def label(request: Request) -> HTTPResponse:
        """Each group given a verdict is labelled, by the signed-in admin, now (chosen_groups)."""
        form = request.form or {}
        source = str(form.get("source", ""))
        if source not in LIST_PAGES:
            return refused(400, "没有这个列表。")
        verdicts = set(improve.intents()) | {FAQ_GAP}
        chosen, stale = chosen_groups(form, await groups_of(source), verdicts)
        for verdict, group in chosen:
            queries.save_labels(group.texts, source, verdict, request.ctx.user.name)
        saved = len(chosen)
        return response.redirect(
            f"{LIST_PAGES[source]}?saved={saved}&stale={stale}", status=303, headers=HEADERS
        )

    @app.get("/admin/labels")
    @signed_in(role="admin")
    async def labels(request: Request) -> HTTPResponse:
        found = queries.labels(limit=None)
        return page(
            "labels.html",
            user=request.ctx.user,
            not_exported=improvements.not_exported_or_why(found),
            training=[label for label in found if label.intent != FAQ_GAP],
            gaps=[label for label in found if label.intent == FAQ_GAP],
        )

    @app.post("/admin/unanswered/export")
    @signed_in(role="admin")
    async def export(request: Request) -> HTTPResponse:
        """The groups given an intent, as NLU YAML to review before it joins data/nlu/."""
        form = request.form or {}
        picked, _ = chosen_groups(form, await unanswered_groups(), set(improve.intents()))
        chosen: dict[str, list[str]] = {}
        for intent, group in picked:
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
