"""The help page with its chat widget, served by the Rasa server at /webhooks/help/.

Registered like a channel (credentials.yml) so that `make run` serves it on the same port as the
REST channel it talks to; it receives no messages itself. The widget (help/widget.js, no external
scripts or fonts) posts to /webhooks/rest/webhook of the server it was loaded from, or of the
`data-server` given in an embedding page. The page is rendered with the "cannot reach the
assistant" text of channels/replies.yml, the one place that text and its contacts live.
"""

import html
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.replies import replies

ASSETS = Path(__file__).with_name("help")
TYPES = {
    "widget.js": "application/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
}
# The page loads its own script and style only, and talks to its own server only; nothing inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@lru_cache(maxsize=1)
def page() -> str:
    template = (ASSETS / "index.html").read_text(encoding="utf-8")
    return template.replace("{{unreachable}}", html.escape(replies()["unreachable"], quote=True))


class HelpPage(InputChannel):
    """Serves the help page and its widget's files; takes no messages itself."""

    @classmethod
    def name(cls) -> str:
        return "help"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        pages = Blueprint("custom_webhook_HelpPage", __name__)

        @pages.route("/", methods=["GET"])
        async def index(request: Request) -> HTTPResponse:
            # the page's assets are relative: serve it at .../help/, with the slash
            if not request.path.endswith("/"):
                return response.redirect(request.path + "/")
            return response.html(page(), headers=SECURITY_HEADERS)

        @pages.route("/<name>", methods=["GET"])
        async def asset(request: Request, name: str) -> HTTPResponse:
            if not name:
                return response.html(page(), headers=SECURITY_HEADERS)
            if name not in TYPES:
                return response.text(
                    "not found", status=404, headers={"X-Content-Type-Options": "nosniff"}
                )
            return response.text(
                (ASSETS / name).read_text(encoding="utf-8"),
                content_type=TYPES[name],
                headers={"X-Content-Type-Options": "nosniff"},
            )

        return pages
