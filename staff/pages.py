"""What every console page shares: templates (autoescaped), security headers, cookies, and the
session and CSRF check (`signed_in`). See staff/web.py for the rules they enforce."""

import asyncio
import hashlib
import hmac
import re
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import settings
from core.db import staff
from core.db.staff import Line

HERE = Path(__file__).parent
SESSION_COOKIE, LOGIN_COOKIE = "staff_session", "staff_login"
HEADERS = {
    # One script, the console's own file (/console.js: the live transcript); nothing inline.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
)
# The assistant's Markdown links as the student saw them: their text, and the address when it is
# a page (a prepared mailto: link is hundreds of characters of percent-escapes).
MAIL_LINK = re.compile(r"\[([^\]]{1,200})\]\(mailto:[^)]{0,4000}\)")
PAGE_LINK = re.compile(r"\[([^\]]{1,200})\]\((https?://[^)\s]{1,500})\)")


def local(moment: datetime | None, layout: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time (naive UTC) as the team reads it: in `TEAM_TIMEZONE` (Asia/Shanghai)."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(settings.team_timezone()).strftime(layout)


def shown_links(text: str) -> str:
    return PAGE_LINK.sub(r"\1（\2）", MAIL_LINK.sub(r"\1（邮件链接）", text))


templates.filters["shown_links"] = shown_links
templates.filters["local"] = local
WHO = {"student": "学生", "assistant": "助手", "note": "通知"}


def who(line: Line) -> str:
    """Who said a transcript line, as the team reads it."""
    return WHO.get(line.sender) or f"客服 {line.agent}"


templates.filters["who"] = who


def same_token(sent: str, expected: str) -> bool:
    """Constant-time comparison on bytes (hmac refuses non-ASCII str, which a sender controls)."""
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Off the event loop: what blocks (a training log of megabytes, a lock a promote waits for,
    a term's outcome figures) while the console also serves the Rasa workers' model pulls."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def page(template: str, http_status: int = 200, **values: Any) -> HTTPResponse:
    values.setdefault("zone", str(settings.team_timezone()))
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
                if not same_token(str(sent), user.csrf_token):
                    return refused(403, "表单已过期，请刷新页面后再试。")
            request.ctx.user = user
            return await handler(request, *args, **kwargs)

        return checked

    return decorate
