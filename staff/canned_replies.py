"""Canned replies: short replies the support team keeps ready, with the FAQ's links and numbers,
inserted into a takeover's reply with a click or Alt+1…9 (staff/static/console.js). Admins edit
them at /admin/replies; each is checked against the FAQ when saved (core/faq_facts.py), as the
assistant's own answers are: a link, phone number or email the FAQ does not give, or a time it
does not promise, is refused with the reason, and what the admin typed is shown again."""

from __future__ import annotations

import sqlalchemy as sa
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import faq_facts
from core.db.engine import session_scope
from core.db.models import CannedReply, utcnow
from staff.pages import HEADERS, page, refused, signed_in

MAX_TITLE = 40
MAX_TEXT = 2000  # what the channels deliver of one message, as a takeover's reply
MAX_REPLIES = 50
SHORTCUTS = 9  # Alt+1 … Alt+9


class Refused(ValueError):
    """The reply was not saved; `problems` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def listed() -> list[CannedReply]:
    with session_scope() as db:
        found = list(db.execute(sa.select(CannedReply).order_by(CannedReply.id)).scalars())
        db.expunge_all()
    return found


def problems(title: str, text: str) -> list[str]:
    found = []
    if not title.strip() or len(title) > MAX_TITLE:
        found.append(f"标题要有 1 到 {MAX_TITLE} 个字。")
    if not text.strip() or len(text) > MAX_TEXT:
        found.append(f"回复要有 1 到 {MAX_TEXT} 个字。")
    return found + faq_facts.unsupported(text)


def save(number: int | None, title: str, text: str, by: str) -> int:
    """Saves a new reply (`number` None) or changes one; returns its number."""
    title, text = title.strip(), text.strip()
    wrong = problems(title, text)
    if wrong:
        raise Refused(wrong)
    with session_scope() as db:
        if number is None:
            if db.execute(sa.select(sa.func.count()).select_from(CannedReply)).scalar_one() >= (
                MAX_REPLIES
            ):
                raise Refused([f"最多 {MAX_REPLIES} 条常用回复。"])
            reply = CannedReply(title=title, text=text, updated_by=by, updated_at=utcnow())
            db.add(reply)
            db.flush()
            return int(reply.id)
        found = db.get(CannedReply, number)
        if found is None:
            raise Refused(["没有这条常用回复。"])
        found.title, found.text, found.updated_by, found.updated_at = title, text, by, utcnow()
        return number


def delete(number: int) -> bool:
    with session_scope() as db:
        return bool(db.execute(sa.delete(CannedReply).where(CannedReply.id == number)).rowcount)


def add_routes(app: Sanic) -> None:
    def shown(request: Request, status: int = 200, **values: object) -> HTTPResponse:
        return page(
            "replies.html",
            http_status=status,
            user=request.ctx.user,
            replies=listed(),
            max_title=MAX_TITLE,
            max_text=MAX_TEXT,
            note=str(request.args.get("note", ""))[:40],
            **values,
        )

    @app.get("/admin/replies")
    @signed_in(role="admin")
    async def replies(request: Request) -> HTTPResponse:
        return shown(request)

    @app.post("/admin/replies")
    @signed_in(role="admin")
    async def add(request: Request) -> HTTPResponse:
        return changed(request, None)

    @app.post("/admin/replies/<number:int>")
    @signed_in(role="admin")
    async def edit(request: Request, number: int) -> HTTPResponse:
        return changed(request, number)

    @app.post("/admin/replies/<number:int>/delete")
    @signed_in(role="admin")
    async def remove(request: Request, number: int) -> HTTPResponse:
        if not 0 < number < 2**31 or not delete(number):
            return refused(404, "没有这条常用回复。")
        return response.redirect("/admin/replies?note=deleted", status=303, headers=HEADERS)

    def changed(request: Request, number: int | None) -> HTTPResponse:
        form = request.form or {}
        title = str(form.get("title", ""))[: MAX_TITLE * 4]
        text = str(form.get("text", ""))[: MAX_TEXT * 2]
        if number is not None and not 0 < number < 2**31:
            return refused(404, "没有这条常用回复。")
        try:
            save(number, title, text, request.ctx.user.name)
        except Refused as error:  # shown again with what was typed, and why
            return shown(
                request,
                422,
                problems=error.problems,
                typed={"number": number, "title": title, "text": text},
            )
        return response.redirect("/admin/replies?note=saved", status=303, headers=HEADERS)
