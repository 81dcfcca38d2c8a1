"""The ticket queue and a ticket's page: claim, release, resolve, notes, and the live takeover's
buttons (take over, say, hand back), which go through staff/agent_takeover.py. Who may end a
colleague's work is decided in one place (staff/rights.py)."""

import contextlib
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from rasa.shared.core.domain import Domain
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import faq_facts, parsing
from core.db import queries, staff, takeover_claims
from core.db.models import TICKET_STATUSES, Ticket, utcnow
from core.db.staff import Line
from staff import canned_replies, rights, saved_tests
from staff.agent_takeover import call, hand_back, one_step_at_a_time
from staff.pages import HEADERS, Handler, local, page, refused, shown_links, signed_in, who

MAX_NOTE_CHARS = 4000
MAX_REPLY_CHARS = 2000  # what the channels deliver of one message (channels/limits.py)
ACTIONS = {"claim": "claimed", "release": "open", "resolve": "resolved"}
DOMAIN_FILE = Path(__file__).resolve().parent.parent / "domain.yml"


@functools.lru_cache(maxsize=1)
def domain() -> Domain:
    """The assistant's domain (its slots shape a story), loaded once."""
    return Domain.load(str(DOMAIN_FILE))


MAX_TICKET = 2**31 - 1  # a larger number overflows SQLite's and PostgreSQL's integer
# The queue: a student who wrote in the last LIVE minutes is marked as there; a ticket whose
# student has written nothing since it was opened, LEFT minutes ago, only took the contacts.
LIVE = timedelta(minutes=5)
LEFT = timedelta(minutes=30)


@dataclass
class Waiting:
    """A ticket as the queue shows it: how long it has waited, and whether its student is there."""

    ticket: Ticket
    waited: str
    last_student: datetime | None
    live: bool
    left: bool


def how_long(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时 {minutes % 60} 分"
    return f"{minutes // 1440} 天"


def queue(tickets: list[Ticket], now: datetime) -> list[Waiting]:
    """The tickets with their waits and their students' last messages (naive UTC times)."""
    last = queries.last_student_messages([t.conversation_id for t in tickets])
    found = []
    for ticket in tickets:
        wrote = last.get(ticket.conversation_id)
        since_ticket = wrote is not None and wrote > ticket.created_at
        found.append(
            Waiting(
                ticket=ticket,
                waited=how_long(now - ticket.created_at),
                last_student=wrote,
                live=wrote is not None and now - wrote <= LIVE,
                left=ticket.status == "open"
                and not since_ticket
                and now - ticket.created_at > LEFT,
            )
        )
    return found


def saved_number(request: Request) -> int | None:
    """The test just saved from this page (?saved_test=N), if the query says one."""
    raw = request.args.get("saved_test", "")
    return int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None


def existing_ticket(number: int | str) -> Ticket | None:
    """The ticket, or None; `number` is a str when the route also has a pattern segment
    (sanic-routing), and one past a 32-bit integer would overflow the database."""
    number = int(number)
    return queries.get_ticket(number) if 0 < number <= MAX_TICKET else None


def with_ticket(handler: Handler) -> Handler:
    """The route's ticket (its `number`) given to the handler in place of the number; 404 when
    there is none."""

    @wraps(handler)
    async def found(request: Request, number: int | str, **kwargs: Any) -> HTTPResponse:
        ticket = existing_ticket(number)
        if ticket is None:
            return refused(404, "没有这个工单。")
        return await handler(request, ticket, **kwargs)

    return found


def already_told(transcript: list[Line]) -> list[str]:
    """The links, phone numbers and email addresses the assistant already gave the student, in
    the order given: what the agent need not repeat."""
    found: list[str] = []
    for line in transcript:
        if line.sender != "assistant":
            continue
        for pattern in (faq_facts.URL, faq_facts.PHONE, faq_facts.EMAIL):
            found += [fact for fact in pattern.findall(line.text) if fact not in found]
    return found


def add_routes(app: Sanic) -> None:
    @app.get("/tickets")
    @signed_in()
    async def ticket_queue(request: Request) -> HTTPResponse:
        status = request.args.get("status", "open")
        status = status if status in TICKET_STATUSES else "open"
        topic = request.args.get("topic", "")[:64]
        found = queries.list_tickets(status=status, limit=200, oldest_first=True, topic=topic)
        waiting = queue(found, utcnow())
        return page(
            "tickets.html",
            user=request.ctx.user,
            tickets=[w for w in waiting if not w.left],
            left=[w for w in waiting if w.left],
            live_minutes=int(LIVE.total_seconds() // 60),
            left_minutes=int(LEFT.total_seconds() // 60),
            status=status,
            statuses=TICKET_STATUSES,
            topic=topic,
        )

    @app.get("/tickets/<number:int>")
    @signed_in()
    @with_ticket
    async def ticket_page(request: Request, ticket: Ticket) -> HTTPResponse:
        transcript = staff.transcript(ticket.conversation_id)
        return page(
            "ticket.html",
            user=request.ctx.user,
            ticket=ticket,
            notes=staff.notes(ticket.id),
            transcript=transcript,
            last_student=next(
                (line.at for line in reversed(transcript) if line.sender == "student"), None
            ),
            held=takeover_claims.holder(ticket.conversation_id),
            max_reply=MAX_REPLY_CHARS,
            canned=canned_replies.listed(),
            told=already_told(transcript),
            saved_test=saved_number(request),
        )

    @app.get("/tickets/<number:int>/messages")
    @signed_in()
    async def new_messages(request: Request, number: int) -> HTTPResponse:
        """The transcript's lines after event `after`, as JSON, the last event shown, and whether
        the conversation is still taken over: what /console.js polls while the agent holds it."""
        ticket = existing_ticket(number)
        if ticket is None:
            return response.json({"error": "no such ticket"}, status=404, headers=HEADERS)
        after_id = parsing.ascii_int(request.args.get("after", "0")) or 0
        transcript = staff.transcript(ticket.conversation_id, after_id=after_id)
        lines = [
            {
                "sender": line.sender,
                "who": who(line),
                "at": local(line.at, "%H:%M:%S"),
                "text": shown_links(line.text),
            }
            for line in transcript
        ]
        held = takeover_claims.holder(ticket.conversation_id)
        last = transcript[-1].event_id if transcript else after_id
        return response.json(
            {"last": last, "lines": lines, "held": held is not None}, headers=HEADERS
        )

    @app.post("/tickets/<number:int>/takeover")
    @signed_in()
    @with_ticket
    async def take_over(request: Request, ticket: Ticket) -> HTTPResponse:
        agent = request.ctx.user.name
        if ticket.status == "resolved":
            return refused(409, "这个工单已经解决了；要继续跟进，请先在队列里重新打开。")
        if ticket.status == "claimed" and ticket.claimed_by != agent:
            return refused(409, f"这个工单已由 {ticket.claimed_by} 认领。")
        async with one_step_at_a_time(ticket.conversation_id):
            before = takeover_claims.holder(ticket.conversation_id)
            if before is not None and before.agent == agent:  # a second submit: done already
                return response.redirect(f"/tickets/{ticket.id}#reply", status=303, headers=HEADERS)
            held = takeover_claims.take(ticket.conversation_id, ticket.id, agent)
            if held is None:
                return refused(409, "另一位同事已经接管了这段对话。")
            outcome = await call("pause", ticket.conversation_id, agent)
            if not outcome.ok:
                takeover_claims.release(ticket.conversation_id, agent)
                return refused(502, outcome.message)
        if ticket.status == "open":
            with contextlib.suppress(ValueError):  # claimed meanwhile: the takeover holds anyway
                queries.change_status(ticket.id, "claimed", staff=agent)
        staff.add_note(ticket.id, agent, "接管了对话，助手暂停回答。")
        return response.redirect(f"/tickets/{ticket.id}#reply", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/say")
    @signed_in()
    @with_ticket
    async def say(request: Request, ticket: Ticket) -> HTTPResponse:
        agent = request.ctx.user.name
        text = str((request.form or {}).get("text", "")).strip()
        if not text or len(text) > MAX_REPLY_CHARS:
            return refused(400, f"回复不能为空，最多 {MAX_REPLY_CHARS} 个字。")
        if not takeover_claims.touch(ticket.conversation_id, agent):
            return refused(409, "你没有接管这段对话（可能已超时交回助手），请先接管。")
        outcome = await call("say", ticket.conversation_id, agent, text=text)
        if not outcome.ok:
            return refused(502, outcome.message)
        return response.redirect(f"/tickets/{ticket.id}#reply", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/handback")
    @signed_in()
    @with_ticket
    async def give_back(request: Request, ticket: Ticket) -> HTTPResponse:
        agent = request.ctx.user.name
        held = takeover_claims.holder(ticket.conversation_id)
        if held is None:
            return refused(409, "这段对话现在没有被接管。")
        why_not = rights.may_end(agent, request.ctx.user.role, ticket, held)
        if why_not:
            return refused(403, why_not)
        outcome = await hand_back(held, "ended", agent)
        if not outcome.ok:
            return refused(502, outcome.message)
        return response.redirect(f"/tickets/{ticket.id}", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/<action:claim|release|resolve>")
    @signed_in()
    @with_ticket
    async def ticket_action(request: Request, ticket: Ticket, action: str) -> HTTPResponse:
        number = ticket.id
        held = takeover_claims.holder(ticket.conversation_id)
        if action in ("release", "resolve"):
            why_not = rights.may_end(request.ctx.user.name, request.ctx.user.role, ticket, held)
            if why_not:
                return refused(403, why_not)
        if held is not None and action in ("release", "resolve"):
            # a released or resolved case must not leave the student with a silent assistant
            ended = "resolved" if action == "resolve" else "ended"
            outcome = await hand_back(held, ended, request.ctx.user.name)
            if not outcome.ok:
                return refused(502, outcome.message)
        try:
            queries.change_status(number, ACTIONS[action], staff=request.ctx.user.name)
        except ValueError:
            return refused(409, "这个工单的状态已经变了，请刷新页面。")
        return response.redirect(f"/tickets/{number}", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/save-test")
    @signed_in(role="admin")
    @with_ticket
    async def save_test(request: Request, ticket: Ticket) -> HTTPResponse:
        """The ticket's conversation as a Rasa test story (staff/saved_tests.py)."""
        name = f"ticket {ticket.id}, saved by {request.ctx.user.name} {utcnow():%Y-%m-%d %H:%M}"
        try:
            number = saved_tests.save(ticket.conversation_id, name, request.ctx.user.name, domain())
        except saved_tests.NotSavable as why:
            return refused(409, str(why))
        return response.redirect(
            f"/tickets/{ticket.id}?saved_test={number}", status=303, headers=HEADERS
        )

    @app.post("/tickets/<number:int>/notes")
    @signed_in()
    @with_ticket
    async def add_note(request: Request, ticket: Ticket) -> HTTPResponse:
        text = str((request.form or {}).get("text", "")).strip()
        if not text or len(text) > MAX_NOTE_CHARS:
            return refused(400, f"备注不能为空，最多 {MAX_NOTE_CHARS} 个字。")
        staff.add_note(ticket.id, request.ctx.user.name, text)
        return response.redirect(f"/tickets/{ticket.id}", status=303, headers=HEADERS)
