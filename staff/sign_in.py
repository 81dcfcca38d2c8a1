"""Signing in and out of the console.

scrypt passwords (staff/passwords.py); at most LOGIN_ATTEMPTS failures per name and
ADDRESS_ATTEMPTS per address in LOGIN_WINDOW_SECONDS (shared through Redis when REDIS_URL is set),
then 429. The session is a random token in an HttpOnly, SameSite=Strict cookie; the database keeps
its SHA-256 and an expiry. The sign-in form carries a cookie-bound CSRF token.
"""

import asyncio
import secrets

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core.db import staff
from core.shared_state import SharedState
from staff import passwords
from staff.pages import (
    HEADERS,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    page,
    refused,
    same_token,
    set_cookie,
    signed_in,
    token_hash,
)

# Failed sign-ins allowed per name, and per address (higher: a team may share one address), in
# the window; past either, 429 until the window ends.
LOGIN_ATTEMPTS, ADDRESS_ATTEMPTS, LOGIN_WINDOW_SECONDS = 5, 20, 15 * 60


def add_routes(app: Sanic) -> None:
    attempts = SharedState()

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
