"""The staff console: a web page for the support team, on its own port (`python -m staff console`).

Pages are rendered on the server (Jinja2, autoescaped: a student's text is always shown as text).
The one script is the console's own /console.js, which keeps a taken-over conversation's transcript
current (it inserts text, never markup); the Content-Security-Policy allows no other. Every page
and action needs a signed-in session; admin pages need the admin role.
- Routes: signing in and out (staff/sign_in.py: scrypt passwords, attempts limited per name and
  per address), the ticket queue and a ticket's page with the live takeover (staff/tickets.py),
  the admin pages (staff/admin.py).
- Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when
  STAFF_SECURE_COOKIES=1, behind TLS); the database keeps its SHA-256 and an expiry.
- CSRF: every form carries the session's token (sign-in: a cookie-bound one) and every POST is
  refused (403) without the right one.
"""

import asyncio
import logging

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import http_guard
from staff import (
    admin,
    canned_replies,
    model_pages,
    model_registry,
    model_server,
    outcome_pages,
    sign_in,
    tickets,
)
from staff.agent_takeover import keep_handing_back
from staff.pages import HEADERS, HERE, refused, signed_in

logger = logging.getLogger(__name__)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_REQUEST_BYTES = 64 * 1024


def create_app(name: str = "staff_console") -> Sanic:
    http_guard.apply()
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES
    app.config.FORWARDED_SECRET = None

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

    @app.get("/")
    @signed_in()
    async def home(_: Request) -> HTTPResponse:
        return response.redirect("/tickets", status=303, headers=HEADERS)

    sign_in.add_routes(app)
    tickets.add_routes(app)
    admin.add_routes(app)
    model_pages.add_routes(app)
    outcome_pages.add_routes(app)
    canned_replies.add_routes(app)
    model_server.add_routes(app)

    @app.after_server_start
    async def start_handing_back(app: Sanic, _: object) -> None:
        app.add_task(keep_handing_back())

    @app.before_server_start
    async def register_repository_model(_: Sanic, __: object) -> None:
        """`make train`'s model, served when it is new (staff/model_registry.py): before the
        console answers, so that no Rasa worker pulls the model it replaces meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, model_registry.register_repository_model)
        except Exception:
            logger.exception("The repository's model could not be registered.")

    return app
