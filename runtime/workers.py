"""The Rasa server's worker processes, supervised: one that exits or hangs is replaced.

Sanic 21.12 forks its workers once and waits for them (`serve_multiple`): a worker killed by the
kernel's OOM killer was never replaced and nothing said so, and a worker whose event loop hangs
(a request that spins, a stopped process) kept its share of the port's connections for ever. This
starts the same workers (Sanic's own `serve`, on one shared listening socket) and watches them:

- a worker that exits is replaced at once, and the log says which, why (exit code or signal) and
  how many serve;
- each serving worker's event loop marks a heartbeat every BEAT_SECONDS; one whose mark is older
  than WORKER_HANG_SECONDS (30 by default) is killed (SIGKILL) and replaced the same way,
  whatever made it hang. A worker not serving within START_SECONDS (loading the model) is too;
- a slot whose worker dies START_FAILURES times in a row before serving stops the server, with
  the reason: a model that cannot load is not retried for ever;
- on SIGTERM or SIGINT every worker gets SIGTERM, and SIGKILL after Sanic's graceful shutdown
  time and STOP_MARGIN_SECONDS more: a server that must stop, stops;
- with WORKERS_STATUS_PORT set, `GET /ready` on 127.0.0.1 of that port answers how many workers
  serve (200 when at least one does, 503 when none): for a load balancer on the host and the staff
  console (WORKERS_STATUS_URLS);
- under systemd (`Type=notify`, deploy/systemd/chsi-rasa@.service) it says READY=1 once every
  worker serves, a STATUS line whenever the count changes, and pings the service manager's
  watchdog (WatchdogSec) from its loop, so that a supervisor that hangs is restarted too;
- with several workers, each also serves the app on a Unix socket of its own in a private folder,
  so that a worker can pass on a request about state another one holds (core/siblings.py).

A turn is never lost or answered twice across a replacement: a conversation's turns are queued and
locked outside the worker (stores/lock_store.py), a killed worker's place expires, and duplicate
deliveries get the first delivery's reply (core/deliveries.py).
"""

import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from core import settings, siblings

logger = logging.getLogger(__name__)

BEAT_SECONDS = 0.5
DEFAULT_HANG_SECONDS = 30.0
START_SECONDS = 300.0
START_FAILURES = 3
STOP_MARGIN_SECONDS = 5.0
POLL_SECONDS = 0.2
WATCHDOG_PING_SECONDS = 1.0
PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    """One slot of the server and the process that fills it now."""

    slot: int
    process: Any = None
    started: float = 0.0
    failed_starts: int = 0
    serving: bool = False


@dataclass
class Supervisor:
    """Starts, watches and replaces the workers of one server."""

    settings: dict[str, Any]
    count: int
    beats: Any = None
    workers: list[Worker] = field(default_factory=list)
    replaced: int = 0
    stopping: bool = False
    hang_seconds: float = DEFAULT_HANG_SECONDS

    def __post_init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self.context = context
        self.beats = context.RawArray("d", self.count)
        self.workers = [Worker(slot) for slot in range(self.count)]

    def serving(self) -> int:
        return sum(1 for worker in self.workers if worker.serving)

    def status(self) -> dict[str, int]:
        return {"workers": self.count, "serving": self.serving(), "replaced": self.replaced}

    def start(self, worker: Worker) -> None:
        self.beats[worker.slot] = 0.0
        process = self.context.Process(
            target=run_worker, args=(worker.slot, self.beats, self.settings), daemon=True
        )
        process.start()
        worker.process, worker.started, worker.serving = process, time.monotonic(), False

    def replace(self, worker: Worker, why: str) -> None:
        """Logs why a worker went, and starts another in its slot (or stops the server when the
        slot keeps failing before it ever serves)."""
        was_serving, pid = worker.serving, worker.process.pid
        worker.serving = False
        worker.failed_starts = 0 if was_serving else worker.failed_starts + 1
        if worker.failed_starts >= START_FAILURES:
            logger.error(
                "Worker %d (pid %s) %s before serving, %d times in a row; stopping the server.",
                worker.slot + 1,
                pid,
                why,
                worker.failed_starts,
            )
            raise SystemExit(1)
        try:
            self.start(worker)
        except OSError as error:  # no memory to fork now: the next check tries again
            logger.error("Could not start a worker in slot %d: %s", worker.slot + 1, error)
            worker.failed_starts -= 0 if was_serving else 1
            time.sleep(1)
            return
        self.replaced += 1
        logger.warning(
            "Worker %d (pid %s) %s; replaced by pid %s. %d of %d workers serving.",
            worker.slot + 1,
            pid,
            why,
            worker.process.pid,
            self.serving(),
            self.count,
        )

    def check(self, worker: Worker, now: float) -> None:
        process = worker.process
        if not process.is_alive():
            process.join(0)
            self.replace(worker, exit_reason(process.exitcode))
            return
        beat = self.beats[worker.slot]
        if beat and not worker.serving:
            worker.serving, worker.failed_starts = True, 0
            logger.info(
                "Worker %d (pid %s) serving. %d of %d workers serving.",
                worker.slot + 1,
                process.pid,
                self.serving(),
                self.count,
            )
        if worker.serving and now - beat > self.hang_seconds:
            kill(process)
            self.replace(worker, f"did not answer for {now - beat:.0f} s and was killed")
        elif not worker.serving and now - worker.started > START_SECONDS:
            kill(process)
            self.replace(worker, f"was not serving after {START_SECONDS:.0f} s and was killed")

    def run(self) -> None:
        for worker in self.workers:
            self.start(worker)
        said, ready, next_ping = -1, False, 0.0
        while not self.stopping:
            now = time.monotonic()
            for worker in self.workers:
                self.check(worker, now)
            serving = self.serving()
            if serving != said:
                said = serving
                notify(f"STATUS={serving} of {self.count} workers serving")
            if serving == self.count and not ready:
                ready = True
                notify("READY=1")
            if now >= next_ping:
                next_ping = now + WATCHDOG_PING_SECONDS
                notify("WATCHDOG=1")
            time.sleep(POLL_SECONDS)

    def stop(self, grace: float) -> None:
        """SIGTERM to every worker, SIGKILL to those still there after `grace` seconds."""
        processes = [w.process for w in self.workers if w.process is not None]
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                logger.warning("Worker pid %s did not stop in %.0f s; killed.", process.pid, grace)
                kill(process)


def notify(message: str) -> None:
    """Tells systemd (sd_notify's protocol: one datagram to $NOTIFY_SOCKET); nothing elsewhere."""
    address = settings.read("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as connection:
            connection.setblocking(False)  # a listener that does not read never stalls the loop
            connection.sendto(message.encode("utf-8"), address)
    except OSError:
        pass


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def kill(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    process.join(5)


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the supervisor dies, so no worker outlives it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def run_worker(slot: int, beats: Any, settings: dict[str, Any]) -> None:
    """A worker: Sanic's own serve(), with a heartbeat from its event loop once it serves."""
    from sanic.server import serve

    die_with_parent()
    # The supervisor's own handlers came with fork: until Sanic sets its own (after the model has
    # loaded), SIGTERM stops a starting worker and SIGINT (Ctrl-C) is the supervisor's to handle.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if STATUS.server is not None:
        STATUS.server.socket.close()  # the supervisor's, inherited through fork
    siblings.become(slot)

    async def start_beating(app: Any, loop: Any) -> None:
        def beat() -> None:
            beats[slot] = time.monotonic()
            loop.call_later(BEAT_SECONDS, beat)

        beat()

    async def listen_for_siblings(app: Any, loop: Any) -> None:
        await listen_on_unix_socket(app, loop, settings, siblings.path(slot))

    async def stop_listening_for_siblings(app: Any, loop: Any) -> None:
        server = getattr(app.ctx, "sibling_server", None)
        if server is not None:  # a stopping worker takes no more passed-on requests
            server.close()

    settings["app"].register_listener(start_beating, "after_server_start")
    if siblings.count() > 1:
        settings["app"].register_listener(listen_for_siblings, "after_server_start")
        settings["app"].register_listener(stop_listening_for_siblings, "before_server_stop")
    serve(**settings)


async def listen_on_unix_socket(app: Any, loop: Any, settings: dict[str, Any], path: str) -> None:
    """The same app, served on a Unix socket too (core/siblings.py): Sanic's own protocol, as
    serve() builds it, so that every request is framed and guarded the same way."""
    from functools import partial

    from sanic.server.protocols.http_protocol import HttpProtocol
    from sanic.server.runners import _build_protocol_kwargs
    from sanic.server.socket import bind_unix_socket

    protocol = settings.get("protocol") or HttpProtocol
    factory = partial(
        protocol,
        loop=loop,
        app=app,
        connections=settings.get("connections"),
        signal=settings.get("signal"),
        state={"requests_count": 0},
        unix=path,
        **_build_protocol_kwargs(protocol, app.config),
    )
    sock = bind_unix_socket(path, mode=0o600, backlog=settings.get("backlog", 100))
    # kept: an asyncio server nobody refers to is collected, and its socket closed with it
    app.ctx.sibling_server = await loop.create_server(factory, sock=sock)


class StatusRequest(BaseHTTPRequestHandler):
    """GET /ready: how many workers serve. Nothing else; a slow client is cut off."""

    timeout = 2.0
    supervisor: Supervisor | None = None

    def do_GET(self) -> None:
        supervisor = self.supervisor
        if self.path != "/ready" or supervisor is None:
            self.answer(404, {"error": "not found"})
            return
        status = supervisor.status()
        self.answer(200 if status["serving"] else 503, status)

    def answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("ascii")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass  # no access log


@dataclass
class StatusServer:
    """The status endpoint's server, when one runs (a worker closes its inherited socket)."""

    server: HTTPServer | None = None


STATUS = StatusServer()


def hang_seconds() -> float:
    """WORKER_HANG_SECONDS, or DEFAULT_HANG_SECONDS: how long a serving worker's event loop may
    be silent before it is killed. Longer than any one turn's work on the loop, and than the
    tracker store's synchronous database calls may wait (about 4 s of retries, longer behind a
    PostgreSQL lock): a database that stalls every worker must not get them all killed."""
    raw = settings.checked("WORKER_HANG_SECONDS")  # 1 to 3600
    return float(raw) if raw else DEFAULT_HANG_SECONDS


def status_port() -> int | None:
    raw = settings.checked("WORKERS_STATUS_PORT")
    return int(raw) if raw else None


def serve_status(supervisor: Supervisor) -> None:
    port = status_port()
    if port is None:
        return
    handler = type("Status", (StatusRequest,), {"supervisor": supervisor})
    try:
        STATUS.server = HTTPServer(("127.0.0.1", port), handler)
    except OSError as error:  # the port is taken: the workers serve all the same
        logger.error("No worker status on port %d: %s", port, error)
        return
    threading.Thread(target=STATUS.server.serve_forever, daemon=True).start()
    logger.info("Worker status on http://127.0.0.1:%d/ready", port)


def serve_supervised(server_settings: dict[str, Any], workers: int) -> None:
    """Sanic's serve_multiple (same socket, same settings, same main-process events), with the
    workers supervised as the module's docstring says."""
    from sanic.server.events import trigger_events
    from sanic.server.socket import bind_socket

    server_settings["reuse_port"] = True
    server_settings["run_multiple"] = True
    main_start = server_settings.pop("main_start", None)
    main_stop = server_settings.pop("main_stop", None)
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    trigger_events(main_start, loop)
    if server_settings.get("sock") is None:
        sock = bind_socket(
            server_settings["host"], server_settings["port"], backlog=server_settings["backlog"]
        )
        sock.set_inheritable(True)
        server_settings.update(sock=sock, host=None, port=None)
    folder = tempfile.mkdtemp(prefix="chsi-workers-")  # mode 0700
    siblings.configure(folder, workers)
    if workers > 1:
        logger.info("Workers pass requests to each other through %s.", folder)
    supervisor = Supervisor(server_settings, workers, hang_seconds=hang_seconds())

    def stop_requested(signum: int, _: Any) -> None:
        logger.info("Received %s; stopping the workers.", signal.Signals(signum).name)
        supervisor.stopping = True

    signal.signal(signal.SIGINT, stop_requested)
    signal.signal(signal.SIGTERM, stop_requested)
    serve_status(supervisor)
    grace = float(server_settings["app"].config.GRACEFUL_SHUTDOWN_TIMEOUT) + STOP_MARGIN_SECONDS
    try:
        supervisor.run()
    finally:
        supervisor.stop(grace)
        if STATUS.server is not None:
            STATUS.server.shutdown()
            STATUS.server.server_close()
        trigger_events(main_stop, loop)
        server_settings["sock"].close()
        shutil.rmtree(folder, ignore_errors=True)
        loop.close()


def serve_one_supervised(server_settings: dict[str, Any]) -> None:
    """Sanic's serve_single, as one supervised worker (so that one worker is replaced too)."""
    server_settings.pop("loop", None)
    serve_supervised(server_settings, 1)


def apply() -> None:
    """Makes Sanic apps started by this process run supervised workers."""
    import sanic.app

    sanic.app.serve_multiple = serve_supervised
    sanic.app.serve_single = serve_one_supervised
