"""The action server, started as `python -m runtime.action_server [--port 5055]`.

rasa-sdk's own `rasa run actions` listens on every interface (0.0.0.0) with CORS `*`, answers an
exception with the request body (the conversation, personal data included) and reads bodies of
up to 100 MB, while anyone who reaches the port can post a made-up conversation and so open tickets
or write feedback rows. This starts rasa-sdk's same application, with:
- ACTION_SERVER_HOST, 127.0.0.1 by default: only the Rasa server on this machine reaches it;
- ACTION_SERVER_TOKEN, when set: every call must carry it (endpoints.yml sends it as the `token`
  query parameter), compared in constant time; needed when the action server runs on another
  host (docs/operations.md, "Running the action server elsewhere");
- no CORS (only the Rasa server calls it, never a browser), bodies capped at MAX_REQUEST_BYTES,
  and errors answered without the request body or the exception text;
- a deflate-compressed body (Rasa sends one when COMPRESS_ACTION_SERVER_REQUEST is set) capped at
  MAX_REQUEST_BYTES once inflated too: rasa-sdk inflates it whole, so a few kilobytes could have
  asked for gigabytes.
"""

import argparse
import hmac
import logging
import zlib
from typing import Any

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import http_guard, settings

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5055
# A 300-turn conversation is about 200 KB of events; room to spare.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def create_app(token: str | None = None) -> Any:
    from rasa_sdk.endpoint import create_app as rasa_sdk_app

    http_guard.apply()
    app = rasa_sdk_app("actions", cors_origins=None)
    app.config.REQUEST_MAX_SIZE = MAX_REQUEST_BYTES

    if token:

        @app.on_request
        async def authenticate(request: Request) -> HTTPResponse | None:
            given = (request.args.get("token") or "").encode("utf-8", "replace")
            if request.path != "/health" and not hmac.compare_digest(given, token.encode()):
                return response.json({"error": "unauthorised"}, status=401)
            return None

    async def failed(request: Request, exception: Exception) -> HTTPResponse:
        status = getattr(exception, "status_code", 500)
        if status >= 500:
            logger.error("An action failed: %s", type(exception).__name__)
        return response.json({"error": type(exception).__name__}, status=status)

    @app.on_request
    async def bounded_inflation(request: Request) -> HTTPResponse | None:
        if request.headers.get("Content-Encoding") != "deflate":
            return None
        if inflated_size(request.body or b"", MAX_REQUEST_BYTES) > MAX_REQUEST_BYTES:
            return response.json({"error": "request too large"}, status=413)
        return None

    app.error_handler.add(Exception, failed)
    return app


def inflated_size(body: bytes, limit: int) -> int:
    """How many bytes `body` inflates to, counting no further than limit + 1; a body that is not
    zlib data counts as its own length (rasa-sdk's error then answers it)."""
    inflater = zlib.decompressobj()
    try:
        size = len(inflater.decompress(body, limit + 1))
    except zlib.error:
        return len(body)
    return size


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for problem in settings.problems():
        logging.getLogger(__name__).error("settings: %s", problem)
    host = settings.read("ACTION_SERVER_HOST") or DEFAULT_HOST
    token = settings.read("ACTION_SERVER_TOKEN") or None
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        logger.warning(
            "The action server listens on %s without ACTION_SERVER_TOKEN: anyone who "
            "reaches that address can run the assistant's actions.",
            host,
        )
    logger.info("Action server on http://%s:%d", host, args.port)
    create_app(token).run(host=host, port=args.port, access_log=False, motd=False)


if __name__ == "__main__":
    main()
