"""`make bench`: what losing a worker costs under load, and what hostile input costs.

    .venv/bin/python -m bench.resilience        (also run by `make bench`, for this project only)

- Worker replacement (runtime/workers.py): the default setup (a worker per core, SQLite) under a
  load of 10 conversations; one worker gets SIGKILL (the OOM killer), then another SIGSTOP (a
  hang). For each: seconds until every worker serves again, and what the load saw meanwhile
  (messages answered, errors, p95 latency). The load does not retry, so a turn in flight on the
  lost worker shows as an error here; the widget and WeChat resend with the same message id
  (tests/test_supervisor.py shows those answered, once).
- Hostile input on that server: a message of 2,000 × U+FDFA (18 characters each once NFKC reads
  it), and a normal message sent to the server while it is read.
- The console's grouping of 500 not-understood messages that are reorderings of one sentence
  (staff/improve.py): the first page view, and the next one.
"""

import concurrent.futures
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.stats import percentile
from core import settings
from harness import databases
from harness.servers import BIN, QUIET_ENV, ROOT, free_port, running
from staff import improve

LOAD_SECONDS = 40
KILL_AFTER_SECONDS = 8
HANG_SECONDS = 10  # WORKER_HANG_SECONDS: the default


def worker_pids(main: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]


def serving(status: str) -> int:
    try:
        return int(requests.get(f"{status}/ready", timeout=2).json()["serving"])
    except (requests.RequestException, ValueError, KeyError):
        return -1


def loss_under_load(url: str, status: str, main: int, how: signal.Signals) -> dict[str, Any]:
    """Sends `how` to a worker during a load; seconds until all serve again, what the load saw."""
    workers = len(worker_pids(main))
    load = subprocess.Popen(
        [str(BIN / "python"), "-m", "bench.load", "--url", url, "--concurrency", "10"]
        + ["--conversations", "100000", "--max-seconds", str(LOAD_SECONDS)],
        cwd=ROOT,
        env=QUIET_ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(KILL_AFTER_SECONDS)
    victim = worker_pids(main)[0]
    sent = time.monotonic()
    os.kill(victim, how)
    while victim in worker_pids(main) or serving(status) < workers:
        if time.monotonic() - sent > LOAD_SECONDS:
            break
        time.sleep(0.1)
    back = time.monotonic() - sent
    played = json.loads(load.communicate(timeout=LOAD_SECONDS + 120)[0])
    latencies = played["latencies"]
    return {
        "signal": how.name,
        "back_s": back,
        "answered": len(latencies),
        "errors": played["errors"],
        "empty": played["empty"],
        "p95_ms": percentile(latencies, 95) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
    }


def timed_post(url: str, text: str, sender: str) -> tuple[int, float]:
    started = time.perf_counter()
    reply = requests.post(
        f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60
    )
    return reply.status_code, (time.perf_counter() - started) * 1000


def hostile_message(url: str) -> dict[str, Any]:
    """2,000 × U+FDFA, and a normal message sent 0.1 s after it."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        hostile = pool.submit(timed_post, url, "\ufdfa" * 2000, "bench-fdfa")
        time.sleep(0.1)
        normal = pool.submit(timed_post, url, "学信网密码忘了", "bench-beside")
        (status, hostile_ms), (_, normal_ms) = hostile.result(), normal.result()
    return {"status": status, "hostile_ms": hostile_ms, "normal_ms": normal_ms}


def grouping() -> dict[str, float]:
    base = "学信网账号被别人注册了怎么办我的身份证号码显示已经被注册请问怎么处理"
    shuffle, texts = random.Random(5), set[str]()
    while len(texts) < improve.MAX_GROUPED:
        characters = list(base)
        shuffle.shuffle(characters)
        texts.add("".join(characters))
    now = datetime.now()
    rows = [(text, 1, now, now) for text in sorted(texts)]
    index = improve.GroupIndex()
    started = time.perf_counter()
    improve.grouped(rows, index)
    first = time.perf_counter() - started
    started = time.perf_counter()
    improve.grouped(rows, index)
    again = time.perf_counter() - started
    return {"messages": len(rows), "first_view_ms": first * 1000, "next_view_ms": again * 1000}


def measure(model: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-resilience-") as tmp:
        url = f"sqlite:///{tmp}/assistant.db"
        databases.migrate(url)
        port = free_port()
        env = {
            "DATABASE_URL": url,
            "SANIC_WORKERS": str(max(2, settings.default_workers())),
            "WORKERS_STATUS_PORT": str(port),
        }
        status = f"http://127.0.0.1:{port}"
        with running(model, Path(tmp), env) as servers:
            main = servers.pid("rasa0")
            deadline = time.monotonic() + 120
            while serving(status) < len(worker_pids(main)) and time.monotonic() < deadline:
                time.sleep(0.2)
            figures: dict[str, Any] = {"workers": len(worker_pids(main))}
            figures["losses"] = [
                loss_under_load(servers.rasa[0], status, main, how)
                for how in (signal.SIGKILL, signal.SIGSTOP)
            ]
            figures["hostile"] = hostile_message(servers.rasa[0])
    figures["grouping"] = grouping()
    return figures


def report_lines(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    lines = [
        "## Resilience (one server, SQLite, this project)",
        "",
        f"{figures['workers']} workers under a load of 10 conversations; one worker lost "
        f"{KILL_AFTER_SECONDS} s into a {LOAD_SECONDS} s load (the load does not resend, so a "
        "turn in flight on the lost worker counts as an error here).",
        "",
        "| lost by | all workers serving again after (s) | answered | errors | empty | "
        "p95 (ms) | slowest (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for loss in figures["losses"]:
        lines.append(
            f"| {loss['signal']} | {loss['back_s']:.1f} | {loss['answered']} | {loss['errors']} "
            f"| {loss['empty']} | {loss['p95_ms']:.0f} | {loss['max_ms']:.0f} |"
        )
    hostile, grouped = figures["hostile"], figures["grouping"]
    lines += [
        "",
        f"A SIGSTOP is noticed after WORKER_HANG_SECONDS ({HANG_SECONDS} s), then the worker is "
        "replaced like a killed one.",
        "",
        "| hostile input | figure |",
        "| --- | --- |",
        f"| 2,000 × U+FDFA: status, latency (ms) | {hostile['status']}, "
        f"{hostile['hostile_ms']:.0f} |",
        f"| a normal message sent meanwhile (ms) | {hostile['normal_ms']:.0f} |",
        f"| admin page grouping of {grouped['messages']} reorderings of one sentence: first view "
        f"(ms) | {grouped['first_view_ms']:.0f} |",
        f"| the same, next view (ms) | {grouped['next_view_ms']:.1f} |",
        "",
    ]
    return lines


def main() -> None:
    model = ROOT / "models" / "assistant.tar.gz"
    figures = measure(model)
    print("\n".join(report_lines(figures)))


if __name__ == "__main__":
    main()
