"""The staff console: a web page for the support team, on its own port (`python -m staff console`).

Pages are rendered on the server (Jinja2, autoescaped: a student's text is always shown as text)
with no script at all, so the Content-Security-Policy allows none. Every page and action needs a
signed-in session; admin pages need the admin role.
- Sign-in: scrypt passwords (staff/passwords.py); at most LOGIN_ATTEMPTS failures per name and
  ADDRESS_ATTEMPTS per address in LOGIN_WINDOW_SECONDS (shared through Redis when REDIS_URL is
  set), then 429.
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when
  STAFF_SECURE_COOKIES=1, behind TLS); the database keeps its SHA-256 and an expiry.
- CSRF: every form carries the session's token (sign-in: a cookie-bound one) and every POST is
  refused (403) without the right one.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import settings
from core.db import queries, staff
from core.db.models import TICKET_STATUSES
from core.shared_state import SharedState
from staff import passwords

HERE = Path(__file__).parent
SESSION_COOKIE, LOGIN_COOKIE = "staff_session", "staff_login"
# Failed sign-ins allowed per name, and per address (higher: a team may share one address), in
# the window; past either, 429 until the window ends.
LOGIN_ATTEMPTS, ADDRESS_ATTEMPTS, LOGIN_WINDOW_SECONDS = 5, 20, 15 * 60
MAX_REQUEST_BYTES = 64 * 1024
MAX_NOTE_CHARS = 4000
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ACTIONS = {"claim": "claimed", "release": "open", "resolve": "resolved"}
Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
)
# The assistant's Markdown links as the student saw them: their text, and the address when it is
# a page (a prepared mailto: link is hundreds of characters of percent-escapes).
MAIL_LINK = re.compile(r"\[([^\]]{1,200})\]\(mailto:[^)]{0,4000}\)")
PAGE_LINK = re.compile(r"\[([^\]]{1,200})\]\((https?://[^)\s]{1,500})\)")


def shown_links(text: str) -> str:
    return PAGE_LINK.sub(r"\1（\2）", MAIL_LINK.sub(r"\1（邮件链接）", text))


templates.filters["shown_links"] = shown_links


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def page(template: str, http_status: int = 200, **values: Any) -> HTTPResponse:
    html = templates.get_template(template).render(**values)
    return response.html(html, status=http_status, headers=HEADERS)


def refused(status: int, message: str) -> HTTPResponse:
    return page("message.html", http_status=status, message=message, user=None)


def set_cookie(reply: HTTPResponse, name: str, value: str, seconds: int) -> None:
    reply.cookies[name] = value
    cookie = reply.cookies[name]
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["path"] = "/"
    cookie["max-age"] = seconds
    if settings.staff_secure_cookies():
        cookie["secure"] = True


def signed_in(role: str | None = None) -> Callable[[Handler], Handler]:
    """The route needs a session (and `role`); POSTs need the session's CSRF token too."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            token = request.cookies.get(SESSION_COOKIE) or ""
            user = staff.signed_in(token_hash(token)) if token else None
            if user is None:
                if request.method == "GET":
                    return response.redirect("/login", status=303, headers=HEADERS)
                return refused(401, "请先登录。")
            if role and user.role != role:
                return refused(403, "这个页面只对管理员开放。")
            if request.method == "POST":
                sent = (request.form or {}).get("csrf", "")
                if not hmac.compare_digest(str(sent), user.csrf_token):
                    return refused(403, "表单已过期，请刷新页面后再试。")
            request.ctx.user = user
            return await handler(request, *args, **kwargs)

        return checked

    return decorate


def create_app(name: str = "staff_console") -> Sanic:
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES
    app.config.FORWARDED_SECRET = None
    attempts = SharedState()

    @app.get("/console.css")
    async def style(_: Request) -> HTTPResponse:
        css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
        return response.text(css, content_type="text/css; charset=utf-8", headers=HEADERS)

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
        if not expected or not hmac.compare_digest(sent, expected):
            return refused(403, "表单已过期，请刷新页面后再试。")
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:256]
        keys = [f"staff-login:ip:{request.ip}", f"staff-login:name:{name}"]
        counts = [int(await attempts.get(key) or 0) for key in keys]
        if counts[0] >= ADDRESS_ATTEMPTS or counts[1] >= LOGIN_ATTEMPTS:
            return refused(429, "登录失败次数太多，请 15 分钟后再试。")
        if not passwords.matches(password, staff.password_hash_of(name)):
            for key, count in zip(keys, counts, strict=True):
                await attempts.set(key, str(count + 1), LOGIN_WINDOW_SECONDS)
            csrf = secrets.token_urlsafe(24)
            reply = page(
                "login.html", http_status=401, csrf=csrf, user=None, failed=True, name=name
            )
            set_cookie(reply, LOGIN_COOKIE, csrf, 3600)
            return reply
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
    async def ticket_page(request: Request, number: int) -> HTTPResponse:
        ticket = queries.get_ticket(number)
        if ticket is None:
            return refused(404, f"没有 {number} 号工单。")
        return page(
            "ticket.html",
            user=request.ctx.user,
            ticket=ticket,
            notes=staff.notes(number),
            transcript=staff.transcript(ticket.conversation_id),
        )

    @app.post("/tickets/<number:int>/<action:claim|release|resolve>")
    @signed_in()
    async def ticket_action(request: Request, number: int, action: str) -> HTTPResponse:
        try:
            queries.change_status(number, ACTIONS[action], staff=request.ctx.user.name)
        except ValueError:
            return refused(409, "这个工单的状态已经变了，请刷新页面。")
        return response.redirect(f"/tickets/{number}", status=303, headers=HEADERS)

    @app.post("/tickets/<number:int>/notes")
    @signed_in()
    async def add_note(request: Request, number: int) -> HTTPResponse:
        text = str((request.form or {}).get("text", "")).strip()
        if queries.get_ticket(number) is None:
            return refused(404, f"没有 {number} 号工单。")
        if not text or len(text) > MAX_NOTE_CHARS:
            return refused(400, f"备注不能为空，最多 {MAX_NOTE_CHARS} 个字。")
        staff.add_note(number, request.ctx.user.name, text)
        return response.redirect(f"/tickets/{number}", status=303, headers=HEADERS)

    @app.get("/admin/unanswered")
    @signed_in(role="admin")
    async def unanswered(request: Request) -> HTTPResponse:
        return page("unanswered.html", user=request.ctx.user, rows=queries.top_unanswered(200))

    return app
