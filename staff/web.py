"""The staff console: a web page for the support team, on its own port (`python -m staff console`).

Pages are rendered on the server (Jinja2, autoescaped: a student's text is always shown as text).
The one script is the console's own /console.js, which keeps a taken-over conversation's transcript
current (it inserts text, never markup); the Content-Security-Policy allows no other. Every page
and action needs a signed-in session; admin pages need the admin role.
- Sign-in: scrypt passwords (staff/passwords.py); at most LOGIN_ATTEMPTS failures per name and
  ADDRESS_ATTEMPTS per address in LOGIN_WINDOW_SECONDS (shared through Redis when REDIS_URL is
  set), then 429.
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when
  STAFF_SECURE_COOKIES=1, behind TLS); the database keeps its SHA-256 and an expiry.
- CSRF: every form carries the session's token (sign-in: a cookie-bound one) and every POST is
  refused (403) without the right one.
"""

import asyncio
import contextlib
import secrets
from functools import wraps
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import http_guard, parsing
from core.db import queries, staff, takeovers
from core.db.models import TICKET_STATUSES, Ticket
from core.shared_state import SharedState
from staff import admin, passwords, rights
from staff.pages import (
    HEADERS,
    HERE,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Handler,
    page,
    refused,
    same_token,
    set_cookie,
    shown_links,
    signed_in,
    token_hash,
    who,
)
from staff.takeover import call, hand_back, keep_handing_back, one_step_at_a_time

# Failed sign-ins allowed per name, and per address (higher: a team may share one address), in
# the window; past either, 429 until the window ends.
LOGIN_ATTEMPTS, ADDRESS_ATTEMPTS, LOGIN_WINDOW_SECONDS = 5, 20, 15 * 60
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_REQUEST_BYTES = 64 * 1024
MAX_NOTE_CHARS = 4000
MAX_REPLY_CHARS = 2000  # what the channels deliver of one message (channels/limits.py)
ACTIONS = {"claim": "claimed", "release": "open", "resolve": "resolved"}
MAX_TICKET = 2**31 - 1  # a larger number overflows SQLite's and PostgreSQL's integer


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


def create_app(name: str = "staff_console") -> Sanic:
    http_guard.apply()
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES
    app.config.FORWARDED_SECRET = None
    attempts = SharedState()

    @app.on_request
    async def readable_form(request: Request) -> HTTPResponse | None:
        """Sanic parses a form when a handler first reads it and raises on a part it cannot
        decode (charset=utf-7 with bad bytes, an unknown charset): answered 500. Read it here
        first, so that any handler reads a form that parsed, and a bad one gets 400."""
        if request.method == "POST" and request.content_type.startswith(FORM_TYPES):
            try:
                _ = request.form
            except Exception:
                return refused(400, "表单无法读取，请刷新页面后再试。")
        return None

    @app.get("/console.css")
    async def style(_: Request) -> HTTPResponse:
        css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
        return response.text(css, content_type="text/css; charset=utf-8", headers=HEADERS)

    @app.get("/console.js")
    async def script(_: Request) -> HTTPResponse:
        code = (HERE / "static" / "console.js").read_text(encoding="utf-8")
        return response.text(code, content_type="text/javascript; charset=utf-8", headers=HEADERS)

    @app.get("/login")
    async def login_form(_: Request) -> HTTPResponse:
        csrf = secrets.token_urlsafe(24)
        reply = page("login.html", csrf=csrf, user=None)
        set_cookie(reply, LOGIN_COOKIE, csrf, 3600)
        return reply

    @app.post("/login")
    async def login(request: Request) -> HTTPResponse:
        form = request.form or {}
        sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE) or ""
        if not expected or not same_token(sent, expected):
            return refused(403, "表单已过期，请刷新页面后再试。")
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:256]
        keys = [f"staff-login:ip:{request.ip}", f"staff-login:name:{name}"]
        # Counted before the password is checked, atomically: attempts sent at once each take
        # their own number, so the limit holds however many arrive together.
        counts = [await attempts.add(key, 1, LOGIN_WINDOW_SECONDS) for key in keys]
        if counts[0] > ADDRESS_ATTEMPTS or counts[1] > LOGIN_ATTEMPTS:
            for key in keys:  # a refused attempt checks nothing: it does not count
                await attempts.add(key, -1, LOGIN_WINDOW_SECONDS)
            return refused(429, "登录失败次数太多，请 15 分钟后再试。")
        stored = staff.password_hash_of(name)
        # scrypt takes ~0.1 s of CPU: off the event loop, so other pages keep answering
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, passwords.matches, password, stored):
            csrf = secrets.token_urlsafe(24)
            reply = page(
                "login.html", http_status=401, csrf=csrf, user=None, failed=True, name=name
            )
            set_cookie(reply, LOGIN_COOKIE, csrf, 3600)
            return reply
        for key in keys:  # a sign-in that succeeds is not a failure
            await attempts.add(key, -1, LOGIN_WINDOW_SECONDS)
        token = secrets.token_urlsafe(32)
        staff.open_session(name, token_hash(token), secrets.token_urlsafe(32))
        reply = response.redirect("/tickets", status=303, headers=HEADERS)
        set_cookie(reply, SESSION_COOKIE, token, staff.SESSION_HOURS * 3600)
        return reply

    @app.post("/logout")
    @signed_in()
    async def logout(request: Request) -> HTTPResponse:
        staff.close_session(token_hash(request.cookies.get(SESSION_COOKIE) or ""))
        reply = response.redirect("/login", status=303, headers=HEADERS)
        set_cookie(reply, SESSION_COOKIE, "", 0)
        return reply

    @app.get("/")
    @signed_in()
    async def home(_: Request) -> HTTPResponse:
        return response.redirect("/tickets", status=303, headers=HEADERS)

    @app.get("/tickets")
    @signed_in()
    async def ticket_queue(request: Request) -> HTTPResponse:
        status = request.args.get("status", "open")
        status = status if status in TICKET_STATUSES else "open"
        topic = request.args.get("topic", "")[:64]
        found = queries.list_tickets(status=status, limit=200, oldest_first=True, topic=topic)
        return page(
            "tickets.html",
            user=request.ctx.user,
            tickets=found,
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
            held=takeovers.holder(ticket.conversation_id),
            max_reply=MAX_REPLY_CHARS,
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
                "at": line.at.strftime("%H:%M:%S"),
                "text": shown_links(line.text),
            }
            for line in transcript
        ]
        held = takeovers.holder(ticket.conversation_id)
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
            before = takeovers.holder(ticket.conversation_id)
            if before is not None and before.agent == agent:  # a second submit: done already
                return response.redirect(f"/tickets/{ticket.id}#reply", status=303, headers=HEADERS)
            held = takeovers.take(ticket.conversation_id, ticket.id, agent)
            if held is None:
                return refused(409, "另一位同事已经接管了这段对话。")
            outcome = await call("pause", ticket.conversation_id, agent)
            if not outcome.ok:
                takeovers.release(ticket.conversation_id, agent)
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
        if not takeovers.touch(ticket.conversation_id, agent):
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
        held = takeovers.holder(ticket.conversation_id)
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
        held = takeovers.holder(ticket.conversation_id)
        if action in ("release", "resolve"):
            why_not = rights.may_end(request.ctx.user.name, request.ctx.user.role, ticket, held)
            if why_not:
                return refused(403, why_not)
        if held is not None and action in ("release", "resolve"):
            # a released or resolved case must not leave the student with a silent assistant
            outcome = await hand_back(held, "ended", request.ctx.user.name)
            if not outcome.ok:
                return refused(502, outcome.message)
        try:
            queries.change_status(number, ACTIONS[action], staff=request.ctx.user.name)
        except ValueError:
            return refused(409, "这个工单的状态已经变了，请刷新页面。")
        return response.redirect(f"/tickets/{number}", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/notes")
    @signed_in()
    @with_ticket
    async def add_note(request: Request, ticket: Ticket) -> HTTPResponse:
        text = str((request.form or {}).get("text", "")).strip()
        if not text or len(text) > MAX_NOTE_CHARS:
            return refused(400, f"备注不能为空，最多 {MAX_NOTE_CHARS} 个字。")
        staff.add_note(ticket.id, request.ctx.user.name, text)
        return response.redirect(f"/tickets/{ticket.id}", status=303, headers=HEADERS)

    admin.add_routes(app)

    @app.after_server_start
    async def start_handing_back(app: Sanic, _: object) -> None:
        app.add_task(keep_handing_back())

    return app
