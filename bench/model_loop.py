"""`make bench`: what the improvement loop costs the students (#27), on one server (two workers,
SQLite) with the staff console as its model server.

    .venv/bin/python -m bench.model_loop        (also run by `make bench`, for this project only)

- A student's latency while a candidate trains on the same machine (`nice 10`), interleaved: the
  job is paused (SIGSTOP) and resumed (SIGCONT) in turns of WINDOW_SECONDS, so that "training"
  and "not training" alternate A B A B through one training, on the same servers, and the
  machine's drift falls on both alike. Medians of the windows' p50 and p95.
- The training: full (the seconds the job ran, its paused windows left out) and fine-tuned, and
  the job's peak resident memory (the gate holds both models).
- Promotion and rollback under a load of 10 conversations: the seconds from the click until the
  running server answers the newly taught phrasing and every worker logged the switch (its pid),
  messages lost (an error or an empty answer) and stored twice, and the workers' resident memory
  before, at its highest during the swap (two models held for a moment), and after.
"""

import contextlib
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from bench.stats import percentile
from harness import databases
from harness.servers import BIN, QUIET_ENV, ROOT, free_port, running, workers_serving
from staff import model_registry

WINDOW_SECONDS = 15
WINDOWS = 6  # three with the training paused, three with it running
PHRASING = "学信网上我叫啥名来着登不进去"  # read as nothing by the repository's model
TAUGHT_ANSWER = "找回用户名"
SWITCH_LIMIT_SECONDS = 180
MESSAGES = ("你好", "学信网密码忘了", PHRASING, "用户名忘了怎么办", "谢谢")


def staff(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "python"), "-m", "staff", *args],
        cwd=ROOT,
        env={**QUIET_ENV, **env},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"staff {' '.join(args)}: {result.stderr[-2000:]}")
    return result.stdout


def ask(url: str, sender: str, text: str) -> tuple[bool, str, float]:
    started = time.monotonic()
    try:
        reply = requests.post(
            f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60
        )
        answered = reply.status_code == 200 and bool(reply.json())
        words = " ".join(m.get("text", "") for m in reply.json()) if answered else ""
    except (requests.RequestException, ValueError):
        answered, words = False, ""
    return answered, words, time.monotonic() - started


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def job_pid(store: Path) -> int | None:
    raw = (
        (store / "training.lock").read_text().strip() if (store / "training.lock").exists() else ""
    )
    return int(raw) if raw.isdigit() else None


def rasa_train_running(group: int) -> bool:
    """Whether the job's `rasa train` is among its processes (not the gate after it)."""
    for pid in group_pids(group):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # python …/.venv/bin/rasa train …: the script runs under its interpreter
        if any(a.endswith(b"/rasa") and b == b"train" for a, b in itertools.pairwise(arguments)):
            return True
    return False


def group_pids(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def latency_while_training(url: str, env: dict[str, str], store: Path) -> dict[str, Any]:
    """Starts a full training and alternates paused and running windows; one student asks."""
    staff(env, "models", "train", "--mode", "full", "--by", "bench")
    deadline = time.monotonic() + 60
    while (job := job_pid(store)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if job is None:
        raise RuntimeError("the training job did not start")
    time.sleep(20)  # past the data copy, into rasa train
    windows: dict[str, list[dict[str, float]]] = {"paused": [], "training": []}
    paused_seconds = 0.0
    peak = 0.0
    for number in range(WINDOWS):
        kind = "paused" if number % 2 == 0 else "training"
        sign = signal.SIGSTOP if kind == "paused" else signal.SIGCONT
        for pid in group_pids(job):
            os.kill(pid, sign)
        # stopped, `rasa train` cannot end during the window: the pause is the training's only
        # when it was still running (the gate after it is not in the recorded training seconds)
        pausing_training = kind == "paused" and rasa_train_running(job)
        started, times = time.monotonic(), list[float]()
        while time.monotonic() - started < WINDOW_SECONDS:
            answered, _, seconds = ask(url, f"bench-train-{number}", MESSAGES[len(times) % 5])
            times.append(seconds * 1000)
            peak = max(peak, sum(rss_mb(pid) for pid in group_pids(job)))
        if pausing_training:
            paused_seconds += time.monotonic() - started
        windows[kind].append({"p50": percentile(times, 50), "p95": percentile(times, 95)})
    for pid in group_pids(job):
        os.kill(pid, signal.SIGCONT)
    while job_pid(store) is not None and os.path.exists(f"/proc/{job}"):
        peak = max(peak, sum(rss_mb(pid) for pid in group_pids(job)))
        time.sleep(1)
    # paused_s: the windows that paused `rasa train` itself, left out of its recorded seconds
    figures: dict[str, Any] = {"paused_s": paused_seconds, "job_peak_mb": peak}
    for kind, found in windows.items():
        figures[kind] = {
            "p50": sorted(w["p50"] for w in found),
            "p95": sorted(w["p95"] for w in found),
        }
    return figures


class Load:
    """Ten conversations, one message after another each, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: dict[str, int] = {f"bench-swap-{n}": 0 for n in range(10)}
        self.lost = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.talk, args=(s,)) for s in self.sent]

    def talk(self, sender: str) -> None:
        number = 0
        while not self.stop.is_set():
            answered, _, _ = ask(self.url, sender, MESSAGES[number % len(MESSAGES)])
            number += 1
            self.sent[sender] += 1
            self.lost += not answered
            time.sleep(0.2)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)


def until_answered(
    url: str, taught: bool, worker_pids: list[int], peak: list[float], log: Path, sha256: str
) -> float:
    """Seconds until answers agree and every worker logged that it serves the model `sha256`."""
    started, agreeing, number = time.monotonic(), 0, 0
    while time.monotonic() - started < SWITCH_LIMIT_SECONDS:
        _, words, _ = ask(url, f"bench-probe-{taught}-{number}", PHRASING)
        number += 1
        agreeing = agreeing + 1 if (TAUGHT_ANSWER in words) == taught else 0
        peak[0] = max(peak[0], sum(rss_mb(pid) for pid in worker_pids))
        switched = {str(pid) for pid in worker_pids} <= workers_serving(log, sha256)
        if agreeing >= 8 and switched:
            return time.monotonic() - started
        time.sleep(0.25)
    return float("nan")


def stored_twice(database: str, sent: dict[str, int]) -> int:
    engine = sa.create_engine(database)
    query = sa.text(
        "SELECT sender_id, sum(type_name = 'user') - sum(type_name = 'rewind') FROM events "
        "GROUP BY sender_id"
    )
    with engine.connect() as connection:
        counts = dict(connection.execute(query).all())
    engine.dispose()
    return sum(max(0, counts.get(sender, 0) - count) for sender, count in sent.items())


def swaps(
    url: str, env: dict[str, str], database: str, main: int, log: Path, served: str
) -> dict[str, Any]:
    """Promotes the trained candidate, then rolls back, under load."""
    passed = [model for model in records(env) if model.status == "passed"]
    if not passed:
        return {"error": "no candidate passed the gate"}
    pids = [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]
    before = sum(rss_mb(pid) for pid in pids)
    peak = [before]
    with Load(url) as load:
        time.sleep(5)
        staff(env, "models", "promote", str(passed[0].id), "--by", "bench")
        promoted = until_answered(url, True, pids, peak, log, passed[0].file_sha256 or "")
        staff(env, "models", "rollback", "--by", "bench")
        rolled_back = until_answered(url, False, pids, peak, log, served)
        time.sleep(3)
    return {
        "promote_s": promoted,
        "rollback_s": rolled_back,
        "messages": sum(load.sent.values()),
        "lost": load.lost,
        "stored_twice": stored_twice(database, load.sent),
        "workers_rss_before_mb": before,
        "workers_rss_peak_mb": peak[0],
        "workers_rss_after_mb": sum(rss_mb(pid) for pid in pids),
        "workers": len(pids),
    }


def records(env: dict[str, str]) -> list[Any]:
    """The console's model records, read as the console reads them."""
    saved = {name: os.environ.get(name) for name in ("DATABASE_URL", "MODEL_STORE_DIR")}
    os.environ.update({name: env[name] for name in saved})
    try:
        return model_registry.all_models()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def console_running(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "staff", "console", "--port", str(port)],
        cwd=ROOT,
        env={**QUIET_ENV, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def measure(model: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-model-loop-") as tmp:
        database = f"sqlite:///{tmp}/assistant.db"
        databases.migrate(database)
        store = Path(tmp) / "models"
        env = {
            "DATABASE_URL": database,
            "MODEL_STORE_DIR": str(store),
            "MODEL_SERVER_TOKEN": "bench-" + os.urandom(16).hex(),
            "MODEL_PULL_SECONDS": "2",
            "SANIC_WORKERS": "2",
        }
        staff(env, "label", PHRASING, "--intent", "forgot_username", "--by", "bench")
        with console_running(env, Path(tmp) / "console.log") as console:
            served = {**env, "MODEL_SERVER_URL": f"{console}/models/current"}
            with running(model, Path(tmp), served) as servers:
                url, main = servers.rasa[0], servers.pid("rasa0")
                figures: dict[str, Any] = {"training": latency_while_training(url, env, store)}
                full = next(m for m in records(env) if m.mode == "full")
                figures["full"] = {"status": full.status, "seconds": full.seconds or 0.0}
                figures["full"]["seconds"] -= figures["training"]["paused_s"]
                figures["swap"] = swaps(
                    url,
                    env,
                    database,
                    main,
                    servers.logs["rasa0"],
                    model_registry.file_sha256(model),
                )
                staff(env, "models", "train", "--mode", "finetune", "--by", "bench", "--wait")
                tuned = next(m for m in records(env) if m.mode == "finetune")
                figures["finetune"] = {"status": tuned.status, "seconds": tuned.seconds or 0.0}
    return figures


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.0f} ({ordered[0]:.0f}–{ordered[-1]:.0f})"


def report_lines(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    training, swap = figures["training"], figures["swap"]
    lines = [
        "## The improvement loop (one server, two workers, SQLite, this project)",
        "",
        f"One student's latency while a candidate trains (`nice 10`), the job paused and resumed "
        f"in turns of {WINDOW_SECONDS} s through one training: median of the windows (lowest–"
        "highest).",
        "",
        "| | p50 (ms) | p95 (ms) |",
        "| --- | --- | --- |",
        f"| training paused | {spread(training['paused']['p50'])} | "
        f"{spread(training['paused']['p95'])} |",
        f"| training running | {spread(training['training']['p50'])} | "
        f"{spread(training['training']['p95'])} |",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| full training (s), then the gate: {figures['full']['status']} | "
        f"{figures['full']['seconds']:.0f} |",
        f"| fine-tuned training (s, `--epoch-fraction 0.2`), then the gate: "
        f"{figures['finetune']['status']} | {figures['finetune']['seconds']:.0f} |",
        f"| the training job's peak resident memory (MB, with the gate's two models) | "
        f"{training['job_peak_mb']:.0f} |",
    ]
    if "error" in swap:
        return [*lines, f"| promotion | not measured: {swap['error']} |", ""]
    lines += [
        f"| promote → every worker answers with it (s, pulls every 2 s) | "
        f"{swap['promote_s']:.1f} |",
        f"| roll back → every worker answers with the old one (s) | {swap['rollback_s']:.1f} |",
        f"| messages of 10 conversations meanwhile: sent, lost, stored twice | "
        f"{swap['messages']}, {swap['lost']}, {swap['stored_twice']} |",
        f"| the {swap['workers']} workers' resident memory (MB): before, highest during the "
        f"swaps, after | {swap['workers_rss_before_mb']:.0f}, {swap['workers_rss_peak_mb']:.0f}, "
        f"{swap['workers_rss_after_mb']:.0f} |",
        "",
    ]
    return lines


def main() -> None:
    figures = measure(ROOT / "models" / "assistant.tar.gz")
    print("\n".join(report_lines(figures)))


if __name__ == "__main__":
    main()
