"""The console as Rasa's model server: `GET /models/current` (runtime/model_pulling.py pulls it).

- The key: every pull carries MODEL_SERVER_TOKEN (Rasa sends the endpoint's `token` as the query
  parameter `token`), compared in constant time; without it set on the console (or shorter than
  32 characters), no model is served (404). A model holds the training data: it is not for
  anyone who finds the port.
- The answer: the current model's archive (staff/model_registry.py), its SHA-256 as the ETag; a
  pull that names that ETag in If-None-Match gets 304 and no body; 204 before any model is known.
  Both tell Rasa to keep the model it serves.
"""

import hmac
from typing import cast

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from core import settings
from staff import model_registry

CHUNK = 1 << 18
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def token_ok(request: Request) -> bool:
    expected = settings.checked("MODEL_SERVER_TOKEN")
    sent = request.args.get("token", "")
    if not expected or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8"))


def add_routes(app: Sanic) -> None:
    @app.get("/models/current")
    async def current_model(request: Request) -> HTTPResponse:
        if not settings.checked("MODEL_SERVER_TOKEN"):
            return response.text("not found", status=404, headers=NO_STORE)
        if not token_ok(request):
            return response.text("forbidden", status=403, headers=NO_STORE)
        model = model_registry.current()
        if model is None or model.path is None or not model.file_sha256:
            return response.empty(status=204, headers=NO_STORE)
        etag = model.file_sha256
        headers = {**NO_STORE, "ETag": etag}
        if request.headers.get("If-None-Match", "").strip() == etag:
            return response.empty(status=304, headers=headers)
        if not model.path.is_file():
            return response.text(
                "the current model's file is missing", status=503, headers=NO_STORE
            )
        # sent once per worker and model switch (a pull that names the ETag gets a 304), in
        # chunks: a model is tens of megabytes and several workers may ask at once
        streamed = await response.file_stream(
            model.path, headers=headers, mime_type="application/gzip", chunk_size=CHUNK
        )
        return cast(HTTPResponse, streamed)  # Sanic sends a ResponseStream a handler returns
