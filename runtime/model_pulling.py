"""Each Rasa worker pulls the model to serve from the model server, with no restart (#27 item 6).

Rasa's own mechanism, `endpoints.yml` `models:` (url, token, `wait_time_between_pulls`), asks the
URL every so often with `If-None-Match: <the fingerprint it serves>` and loads what comes back
with a new ETag. The staff console is that server (`GET /models/current`, staff/model_server.py).
Three things in Rasa 3.6's version would lose students' messages, so `load_agent` is wrapped:

- With a model server configured, Rasa ignores `--model` and starts with no model at all when the
  server cannot be reached (a console that starts later, or is down): every message then fails.
  Here the local model is loaded first, with its SHA-256 as the fingerprint (the ETag the console
  gives the same archive, so the first pull of it is a 304), and the server is asked after.
- Rasa loads a pulled model inside the worker's event loop (`Agent.load_model`): for the seconds
  it takes, that worker answers nobody, and the supervisor may take it for hung. Here the new
  MessageProcessor is built in a thread while the loop keeps answering with the old one; then the
  agent's processor, domain and responses are swapped in one step of the loop. A turn already
  running finishes with the processor it started with; the next one gets the new model. No message
  is dropped or answered twice (the lock store and deliveries are not touched).
- A model that does not load is logged and skipped; the model served stays. Its ETag is then
  what the worker asks with, so that the console answers 304 instead of sending it again every
  pull, until the console serves another model.
- Rasa's server starts without waiting for the model server when it has a local model (the first
  pull runs in the background at once); only a worker with no model at all waits, for at most
  FIRST_PULL_SECONDS.
- The workers of one host load a pulled model one at a time (var/model-loading.lock, held until
  the old model is let go): while a worker builds the new model it holds two, and two workers
  doing so at once would hold four. A turn still running on the old model keeps it a moment more.

An empty `MODEL_SERVER_URL` (endpoints.yml expands it) means no model server: the local model,
as before.
"""

import asyncio
import fcntl
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import memory, settings

logger = logging.getLogger(__name__)

PULL_JOB = "pull-model-from-server"
CHUNK = 1 << 20
FIRST_PULL_SECONDS = 60  # a worker with no local model waits this long for the model server
FAILED: set[str] = set()  # ETags of models that did not load in this worker
LOADING_LOCK = Path(__file__).resolve().parent.parent / "var" / "model-loading.lock"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        while chunk := archive.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pull_seconds(server: Any) -> int:
    raw = str(server.kwargs.get("wait_time_between_pulls") or "").strip()
    return (
        int(raw)
        if raw.isascii() and raw.isdigit() and int(raw) > 0
        else settings.model_pull_seconds()
    )


def swap(agent: Any, processor: Any, fingerprint: str) -> None:
    """What Agent.load_model does after building the processor, in one step of the loop."""
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator

    agent.processor = processor
    agent.domain = processor.domain
    agent._set_fingerprint(fingerprint)
    agent.tracker_store.domain = agent.domain
    if isinstance(agent.nlg, TemplatedNaturalLanguageGenerator):
        agent.nlg.responses = agent.domain.responses if agent.domain else {}


def loading_lock() -> int | None:
    """Takes this host's model-loading lock (blocking; run in a thread); its descriptor, or None
    when the lock file cannot be opened (then the model loads without it)."""
    try:
        LOADING_LOCK.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOADING_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        logger.warning("No model-loading lock at %s: loading without it.", LOADING_LOCK)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


def asked_with(agent: Any) -> str | None:
    """The ETag to send as If-None-Match: the last model that failed here, else the served one."""
    return getattr(agent, "failed_fingerprint", None) or agent.fingerprint


async def update_from_server(server: Any, agent: Any) -> bool:
    """Asks the model server once; loads and serves a new model. True when it switched."""
    from rasa.core import agent as rasa_agent
    from rasa.core.processor import MessageProcessor

    with tempfile.TemporaryDirectory(prefix="pulled-model-") as folder:
        try:
            fingerprint = await rasa_agent._pull_model_and_fingerprint(
                server, asked_with(agent), folder
            )
        except Exception:  # Rasa's own catches only aiohttp's errors
            logger.exception("Asking the model server failed; the model served stays.")
            return False
        if not fingerprint:
            return False
        if fingerprint in FAILED:  # served again after another: asked with it from now on
            agent.failed_fingerprint = fingerprint
            return False
        agent.failed_fingerprint = None
        if fingerprint == agent.fingerprint:  # back to the model served here (after a failure)
            return False
        archives = sorted(Path(folder).iterdir())
        if len(archives) != 1:
            return False
        build = functools.partial(
            MessageProcessor,
            model_path=archives[0],
            tracker_store=agent.tracker_store,
            lock_store=agent.lock_store,
            action_endpoint=agent.action_endpoint,
            generator=agent.nlg,
            http_interpreter=agent.http_interpreter,
        )
        loop = asyncio.get_running_loop()
        lock = await loop.run_in_executor(None, loading_lock)
        try:
            try:
                processor = await loop.run_in_executor(None, build)
            except Exception:
                FAILED.add(fingerprint)
                agent.failed_fingerprint = fingerprint
                logger.exception("The model %s did not load; the model served stays.", fingerprint)
                return False
            swap(agent, processor, fingerprint)
            del processor
            memory.hand_back_free_memory()  # the old model's memory, before the next worker loads
        finally:
            if lock is not None:
                os.close(lock)
    logger.info(
        "Now serving the model %s from the model server (worker %d).", fingerprint[:16], os.getpid()
    )
    return True


async def keep_pulling(server: Any, agent: Any) -> None:
    try:
        await update_from_server(server, agent)
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("Pulling the model failed; trying again at the next interval.")


def loading_local_first(load_agent: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Rasa's load_agent with the local model loaded first, then the model server's pulled."""
    if getattr(load_agent, "loads_local_first", False):
        return load_agent

    @functools.wraps(load_agent)
    async def load(
        model_path: str | None = None,
        model_server: Any = None,
        remote_storage: str | None = None,
        endpoints: Any = None,
        loop: Any = None,
    ) -> Any:
        server = endpoints.model if endpoints is not None and endpoints.model else model_server
        if endpoints is not None:
            endpoints.model = None
        agent = await load_agent(
            model_path=model_path,
            model_server=None,
            remote_storage=remote_storage,
            endpoints=endpoints,
            loop=loop,
        )
        if server is None or not str(server.url or "").strip():
            return agent
        from rasa.core import jobs

        agent.model_server = server
        if agent.is_ready() and model_path and Path(model_path).is_file():
            agent._set_fingerprint(file_sha256(Path(model_path)))
        if not agent.is_ready():  # nothing to answer with: wait for the server, boundedly
            first = asyncio.ensure_future(update_from_server(server, agent))
            try:  # shielded: a pull still loading when the wait ends goes on, and is not lost
                await asyncio.wait_for(asyncio.shield(first), FIRST_PULL_SECONDS)
            except asyncio.TimeoutError:
                logger.error("The model server gave no model in %d s.", FIRST_PULL_SECONDS)
        # the first pull at once in the background (jobs run in this loop), not awaited here
        (await jobs.scheduler()).add_job(
            keep_pulling,
            "interval",
            seconds=pull_seconds(server),
            args=[server, agent],
            id=PULL_JOB,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(timezone.utc),
            misfire_grace_time=None,  # run late rather than skip, when the loop was busy
        )
        logger.info("Pulling the model from %s every %d s.", server.url, pull_seconds(server))
        return agent

    load.loads_local_first = True  # type: ignore[attr-defined]
    return load
