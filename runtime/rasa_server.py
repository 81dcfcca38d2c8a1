"""The Rasa command line with the project's patches applied: `python -m runtime.rasa_server run …`.

`make run`, `make shell`, the tests and the benchmark start the Rasa server this way, so the
measured fixes of runtime/rasa_patches.py are applied where the server starts; the tests' and the
gate's `rasa test core` run this way too (a command: evaluation/ imports no runtime/), so a model
is tested as it is served (`rasa test core` on tests/stories: 10.3 and 10.9 s, against 14.8 and
16.2 s through Rasa's own `rasa`, in turns). The tests that load the model in their own
processes apply the patches themselves (tests/conftest.py, tests/test_rasa_patches.py).
Any arguments are Rasa's own (`rasa run --help`). A `run` without `--cors` takes its origins from
CORS_ORIGINS (comma-separated, as the socket.io channel reads it), so a systemd unit
(deploy/systemd) needs no shell to split them.

Once a worker has loaded the model, the memory the loading used and freed (the unpacked archive,
its JSON) is handed back to the system: about 12 MB of each worker's own memory (make bench).
"""

import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from core import http_guard, memory, settings
from runtime import model_pulling, rasa_patches, workers


def with_cors_from_environment(argv: list[str]) -> list[str]:
    origins = settings.cors_origins()
    if argv[1:2] != ["run"] or "--cors" in argv or not origins:
        return argv
    return [*argv, "--cors", *origins]


def trimmed_after_loading(load: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Rasa's load_agent_on_start, then hand_back_free_memory."""
    if getattr(load, "trims_memory", False):
        return load

    @functools.wraps(load)
    async def load_then_trim(*args: Any, **kwargs: Any) -> Any:
        agent = await load(*args, **kwargs)
        memory.hand_back_free_memory()
        return agent

    load_then_trim.trims_memory = True  # type: ignore[attr-defined]
    return load_then_trim


def closing_pooled_sessions(close: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Rasa's close_resources, then the worker's pooled action-server sessions are closed."""
    if getattr(close, "closes_pooled_sessions", False):
        return close

    @functools.wraps(close)
    async def close_then_sessions(*args: Any, **kwargs: Any) -> None:
        try:
            await close(*args, **kwargs)
        finally:
            await rasa_patches.close_pooled_sessions()

    close_then_sessions.closes_pooled_sessions = True  # type: ignore[attr-defined]
    return close_then_sessions


NEUTRAL_ROOT = "ok"
HIDDEN_PATHS = ("/", "/version")


def without_version(configure: Callable[..., Any]) -> Callable[..., Any]:
    """Rasa's configure_app, then `GET /` answers a neutral word instead of "Hello from Rasa:
    3.6.21", and `/version` (Rasa's version and its model's) is not found: neither tells an
    attacker which known bugs to try. `/` stays a liveness check."""
    if getattr(configure, "hides_version", False):
        return configure

    @functools.wraps(configure)
    def configure_then_hide(*args: Any, **kwargs: Any) -> Any:
        from sanic import response

        app = configure(*args, **kwargs)

        @app.on_request
        async def neutral(request: Any) -> Any:
            if request.path not in HIDDEN_PATHS:
                return None
            if request.path == "/":
                return response.text(NEUTRAL_ROOT)
            return response.json({"error": "not found"}, status=404)

        return app

    configure_then_hide.hides_version = True  # type: ignore[attr-defined]
    return configure_then_hide


# endpoints.yml's `models:` expands these; unset means no model server (runtime/model_pulling.py)
EXPANDED_BY_ENDPOINTS = ("MODEL_SERVER_URL", "MODEL_SERVER_TOKEN", "MODEL_PULL_SECONDS")


def main() -> None:
    for problem in settings.problems():  # said first, where whoever starts the server looks
        print(f"settings: {problem}", file=sys.stderr)
    sys.argv = with_cors_from_environment(sys.argv)
    rasa_patches.apply()
    http_guard.apply()
    if sys.argv[1:2] == ["run"]:
        workers.apply()
    settings.expand_as_empty(EXPANDED_BY_ENDPOINTS)
    import rasa.core.agent
    import rasa.core.run

    rasa.core.agent.load_agent = model_pulling.loading_local_first(rasa.core.agent.load_agent)

    rasa.core.run.load_agent_on_start = trimmed_after_loading(rasa.core.run.load_agent_on_start)
    rasa.core.run.close_resources = closing_pooled_sessions(rasa.core.run.close_resources)
    rasa.core.run.configure_app = without_version(rasa.core.run.configure_app)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
