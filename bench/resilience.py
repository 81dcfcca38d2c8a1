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
- Seven large text pictures at once from one student and one from another meanwhile: how many
  were read, and the other's latency; the workers' resident memory afterwards.
- The console's grouping of 500 not-understood messages that are reorderings of one sentence
  (staff/improve.py): the first page view, and the next one.
"""

import base64
import concurrent.futures
import io
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
from channels.replies import replies
from core import settings
from harness import databases
from harness.servers import BIN, QUIET_ENV, ROOT, free_port, running
from staff import improve

LOAD_SECONDS = 60
KILL_AFTER_SECONDS = 8
HANG_SECONDS = 30  # WORKER_HANG_SECONDS: the default


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


def text_picture() -> bytes:
    """A 2,000 × 2,000 picture full of text: the costliest kind to read."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (2000, 2000), "white")
    draw = ImageDraw.Draw(picture)
    for y in range(0, 2000, 24):
        draw.text((10, y), "证件号码已被注册 学信网账号 忘记密码 " * 8, fill="black")
    encoded = io.BytesIO()
    picture.save(encoded, "PNG")
    return encoded.getvalue()


def post_picture(url: str, data: bytes, sender: str) -> tuple[str, float]:
    started = time.perf_counter()
    reply = requests.post(
        f"{url}/webhooks/rest/screenshot",
        json={"sender": sender, "image": base64.b64encode(data).decode()},
        timeout=90,
    )
    said = reply.json()[0].get("text", "") if reply.status_code == 200 else str(reply.status_code)
    return said, (time.perf_counter() - started) * 1000


def screenshot_fairness(url: str, main: int) -> dict[str, Any]:
    """Seven large pictures at once from one student, and one from another student meanwhile;
    then the workers' resident memory."""
    data = text_picture()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        flood = [pool.submit(post_picture, url, data, "bench-flood") for _ in range(7)]
        time.sleep(0.2)
        other = pool.submit(post_picture, url, data, "bench-other")
        results = [f.result() for f in flood]
        said, other_ms = other.result()
    one_at_a_time = sum(1 for text, _ in results if text == replies()["screenshot_one_at_a_time"])
    rss = 0.0
    for pid in worker_pids(main):
        status = Path(f"/proc/{pid}/status").read_text()
        rss += int(status.split("VmRSS:")[1].split()[0]) / 1024
    return {
        "flood_read": sum(1 for text, _ in results if text.startswith("我看到截图")),
        "flood_one_at_a_time": one_at_a_time,
        "other_read": said.startswith("我看到截图"),
        "other_ms": other_ms,
        "workers_rss_mb": rss,
    }


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
            figures["pictures"] = screenshot_fairness(servers.rasa[0], main)
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
    hostile, grouped, pictures = figures["hostile"], figures["grouping"], figures["pictures"]
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
        f"| 7 text pictures (2,000 × 2,000) at once from one student: read, told to wait | "
        f"{pictures['flood_read']}, {pictures['flood_one_at_a_time']} |",
        f"| another student's picture meanwhile: read, latency (ms) | "
        f"{'yes' if pictures['other_read'] else 'no'}, {pictures['other_ms']:.0f} |",
        f"| the workers' resident memory after those pictures (MB, all workers) | "
        f"{pictures['workers_rss_mb']:.0f} |",
        "",
    ]
    return lines


def main() -> None:
    model = ROOT / "models" / "assistant.tar.gz"
    figures = measure(model)
    print("\n".join(report_lines(figures)))


if __name__ == "__main__":
    main()
