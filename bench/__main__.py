"""`make bench`: how fast, how big, how many, side by side with the documented Chinese pipeline.

    .venv/bin/python -m bench [--quick]

In one run, for two servers trained on the same data, domain and policies — this project's
config.yml, and the Chinese NLU pipeline from Rasa's documentation (evaluation/config-docs-zh.yml)
with the same policies:
- training time and model size;
- on one Rasa server with the embedded SQLite default: cold start (process start to the first
  answer), NLU parse latency alone (/model/parse), per-message latency p50/p95/p99 and throughput
  over REST for 1, 10 and 50 concurrent conversations (bench/load.py, a second process), errors
  and empty replies, resident memory of the Rasa server and the action server;
- long messages (1,000, 10,000 and 100,000 characters of ordinary words) on that server: the
  latency of each and how much the Rasa server's resident memory grew;
- one conversation of 300 messages on that server: turn 300's latency beside turn 10's; and the
  database rows and bytes of a 4-message conversation (bench/long_session.py);
- the same load on two Rasa servers sharing PostgreSQL and Redis, when those are reachable;
- resilience (bench/resilience.py): a worker lost under load (SIGKILL, SIGSTOP) and replaced,
  a 2,000 × U+FDFA message, the admin page's grouping of 500 hostile not-understood messages.
Writes results/bench/report.md (with ratios to the documented pipeline), results/bench/*.png and
results/bench/figures.json, and prints the summary. `--quick` runs smaller loads.
"""

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench import long_session, resilience
from bench import screenshot_latency as screenshot_bench
from bench.flows import FLOWS
from bench.stats import percentile
from core import settings
from harness import databases
from harness.servers import BIN, QUIET_ENV, ROOT, Servers, running

RESULTS = ROOT / "results" / "bench"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# (concurrent conversations, conversations played) per load level
LEVELS = [(1, 20), (10, 50), (50, 150)]
QUICK_LEVELS = [(1, 5), (10, 20), (50, 50)]
PARSE_REQUESTS = 200
LONG_MESSAGE_CHARS = (1_000, 10_000, 100_000)
LONG_MESSAGE_WORDS = (
    "我忘记了学信网的登录密码，手机号也换了，不知道怎么找回，明天就要用，请帮帮我。"
)
TARGETS = {  # the performance targets, for this 2-core machine (docs/measuring.md)
    "p95_single_ms": 30,
    "throughput_50": 80,
    "p95_50_ms": 1000,
    "rasa_anon_mb": 600,  # per worker process
    "rasa_rss_mb": 1024,  # per worker process
    "model_mb": 20,
    "train_s": 120,
    "cold_start_s": 30,
    "long_session_ratio": 1.5,  # turn 300 of one session ÷ turn 10
}


def docs_config(directory: Path) -> Path:
    """Rasa's documented Chinese NLU pipeline with this project's policies."""
    docs = yaml.safe_load((ROOT / "evaluation" / "config-docs-zh.yml").read_text(encoding="utf-8"))
    ours = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    docs["policies"] = ours["policies"]
    docs["assistant_id"] = ours["assistant_id"]
    path = directory / "config-docs-zh-server.yml"
    path.write_text(yaml.safe_dump(docs, allow_unicode=True), encoding="utf-8")
    return path


def train(name: str, config: Path) -> dict[str, Any]:
    started = time.monotonic()
    subprocess.run(
        [
            str(BIN / "rasa"),
            "train",
            "--config",
            str(config),
            "--out",
            str(RESULTS / "models"),
            "--fixed-model-name",
            name,
            "--force",
        ],
        cwd=ROOT,
        env=QUIET_ENV,
        check=True,
        capture_output=True,
        timeout=1800,
    )
    model = RESULTS / "models" / f"{name}.tar.gz"
    return {
        "train_s": time.monotonic() - started,
        "model_mb": model.stat().st_size / 2**20,
        "model": model,
    }


def memory_mb(pids: list[int]) -> dict[str, float]:
    """Resident memory of these processes together: peak and now, and now split into their own
    (anonymous) pages and the mapped files (TensorFlow's shared libraries above all), which the
    page cache shares."""
    totals = {"rss_mb": 0.0, "peak_mb": 0.0, "anon_mb": 0.0, "file_mb": 0.0}
    keys = {"rss_mb": "VmRSS", "peak_mb": "VmHWM", "anon_mb": "RssAnon", "file_mb": "RssFile"}
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        for name, key in keys.items():
            totals[name] += int(status.split(f"{key}:")[1].split()[0]) / 1024
    return totals


def rasa_pids(servers: Servers) -> list[int]:
    """The first Rasa server's worker processes (SANIC_WORKERS > 1), or the server itself."""
    main = servers.pid("rasa0")
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return [int(pid) for pid in children] or [main]


def first_answer_s(servers: Servers) -> float:
    """Seconds from starting the processes to the first non-empty answer to a student."""
    while True:
        try:
            reply = requests.post(
                f"{servers.rasa[0]}/webhooks/rest/webhook",
                json={"sender": "bench-cold", "message": "你好"},
                timeout=30,
            )
            if reply.status_code == 200 and reply.json():
                return time.monotonic() - servers.started
        except requests.RequestException:
            pass
        time.sleep(0.05)


def parse_latency(url: str) -> dict[str, float]:
    texts = [text for flow in FLOWS for text in flow if not text.startswith("/")]
    latencies = []
    with requests.Session() as session:
        for i in range(PARSE_REQUESTS):
            started = time.perf_counter()
            response = session.post(
                f"{url}/model/parse", json={"text": texts[i % len(texts)]}, timeout=30
            )
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
    return {
        "parse_p50_ms": percentile(latencies, 50) * 1000,
        "parse_p95_ms": percentile(latencies, 95) * 1000,
    }


def long_messages(url: str, pids: list[int]) -> list[dict[str, Any]]:
    """Per length: latency, HTTP status and the Rasa server's memory growth (MB) for one message."""
    figures = []
    for chars in LONG_MESSAGE_CHARS:
        text = (LONG_MESSAGE_WORDS * (chars // len(LONG_MESSAGE_WORDS) + 1))[:chars]
        body = json.dumps({"sender": f"bench-long-{chars}", "message": text}, ensure_ascii=False)
        before = memory_mb(pids)
        started = time.perf_counter()
        reply = requests.post(
            f"{url}/webhooks/rest/webhook",
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        latency = time.perf_counter() - started
        after = memory_mb(pids)
        figures.append(
            {
                "chars": chars,
                "status": reply.status_code,
                "latency_ms": latency * 1000,
                "rss_growth_mb": after["rss_mb"] - before["rss_mb"],
                "peak_growth_mb": after["peak_mb"] - before["peak_mb"],
            }
        )
    return figures


def load(urls: list[str], concurrency: int, conversations: int) -> dict[str, Any]:
    command = [
        str(BIN / "python"),
        "-m",
        "bench.load",
        "--concurrency",
        str(concurrency),
        "--conversations",
        str(conversations),
        "--max-seconds",
        "180",
    ]
    for url in urls:
        command += ["--url", url]
    out = subprocess.run(
        command, cwd=ROOT, env=QUIET_ENV, capture_output=True, text=True, check=True, timeout=300
    )
    raw = json.loads(out.stdout)
    latencies = raw["latencies"]
    return {
        "concurrency": concurrency,
        "messages": len(latencies) + raw["errors"],
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "throughput": len(latencies) / raw["duration"],
        "errors": raw["errors"],
        "empty": raw["empty"],
        "latencies": latencies,
    }


def profiled(pid: int, svg: Path) -> subprocess.Popen | None:
    """py-spy recording the Rasa server until interrupted; None when py-spy cannot attach."""
    spy = BIN / "py-spy"
    if not spy.exists():
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--output",
            str(svg),
            "--rate",
            "200",
            "--nonblocking",
            "--subprocesses",  # the workers of a server with several
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    model: Path,
    env: dict[str, str],
    rasa_servers: int,
    levels: list[tuple],
    profile: Path | None = None,
) -> dict[str, Any]:
    """Figures of one set of servers; `profile`: a py-spy flame graph of the 10-conversation
    load."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        running(model, Path(tmp), env, rasa_servers=rasa_servers, enable_api=True) as servers,
    ):
        figures: dict[str, Any] = {"cold_start_s": first_answer_s(servers)}
        figures.update(parse_latency(servers.rasa[0]))
        figures["levels"] = []
        for concurrency, conversations in levels:
            spy = profiled(servers.pid("rasa0"), profile) if profile and concurrency == 10 else None
            figures["levels"].append(load(servers.rasa, concurrency, conversations))
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
        pids = rasa_pids(servers)
        figures["rasa_workers"] = len(pids)
        figures["rasa_memory"] = memory_mb(pids)
        figures["long_messages"] = long_messages(servers.rasa[0], pids)
        figures["actions_memory"] = memory_mb([servers.pid("actions")])
        figures["long_session"] = long_session.long_session(servers.rasa[0])
        figures["stored"] = long_session.stored_per_conversation(
            servers.rasa[0], env["DATABASE_URL"]
        )
        figures["screenshots"] = screenshot_bench.measure(servers.rasa[0], lambda: memory_mb(pids))
    return figures


def sqlite_setup(model: Path, levels: list[tuple], profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-db-") as tmp:
        url = f"sqlite:///{tmp}/assistant.db"
        databases.migrate(url)
        # the default setup: as many workers as `make run` starts here (scripts/run.sh)
        workers = str(settings.default_workers())
        return measure(model, {"DATABASE_URL": url, "SANIC_WORKERS": workers}, 1, levels, profile)


def cluster_setup(model: Path, levels: list[tuple]) -> dict[str, Any] | None:
    try:
        databases.redis_answers(REDIS_URL)
        with databases.new_postgres_database(POSTGRES_URL) as url:
            env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "SANIC_WORKERS": "1"}
            return measure(model, env, 2, levels)
    except Exception as error:
        print(f"bench: two-server setup skipped: {type(error).__name__}: {error}")
        return None


# ---- report --------------------------------------------------------------------------------


def ratio(ours: float, docs: float) -> str:
    return f"{ours / docs:.2f}×" if docs else "–"


def figure_row(name: str, ours: float, docs: float, decimals: int = 0) -> str:
    """One row of a table of figures: this project, docs-zh, and their ratio."""
    return f"| {name} | {ours:.{decimals}f} | {docs:.{decimals}f} | {ratio(ours, docs)} |"


def level_rows(setup: str, ours: dict, docs: dict) -> list[str]:
    rows = []
    for mine, theirs in zip(ours["levels"], docs["levels"], strict=False):
        rows.append(
            f"| {setup} | {mine['concurrency']} | {mine['messages']} | {mine['p50_ms']:.0f} | "
            f"{mine['p95_ms']:.0f} ({ratio(mine['p95_ms'], theirs['p95_ms'])}) | "
            f"{mine['p99_ms']:.0f} | "
            f"{mine['throughput']:.1f} ({ratio(mine['throughput'], theirs['throughput'])}) | "
            f"{mine['errors']} | {mine['empty']} | {theirs['p50_ms']:.0f} / "
            f"{theirs['p95_ms']:.0f} / {theirs['p99_ms']:.0f} | {theirs['throughput']:.1f} |"
        )
    return rows


def verdicts(ours: dict) -> list[str]:
    single, fifty = ours["sqlite"]["levels"][0], ours["sqlite"]["levels"][-1]
    workers = ours["sqlite"].get("rasa_workers", 1)
    checks = [
        ("default setup: single-user p95", single["p95_ms"], TARGETS["p95_single_ms"], "ms", "≤"),
        (
            "default setup, 50 conversations: throughput",
            fifty["throughput"],
            TARGETS["throughput_50"],
            "msg/s",
            "≥",
        ),
        ("default setup, 50 conversations: p95", fifty["p95_ms"], TARGETS["p95_50_ms"], "ms", "≤"),
    ]
    if ours.get("cluster"):
        checks.append(
            (
                "two servers on PostgreSQL + Redis, 50 conversations: throughput",
                ours["cluster"]["levels"][-1]["throughput"],
                TARGETS["throughput_50"],
                "msg/s",
                "≥",
            )
        )
    checks += [
        (
            "Rasa worker's own (anonymous) memory",
            ours["sqlite"]["rasa_memory"]["anon_mb"] / workers,
            TARGETS["rasa_anon_mb"],
            "MB",
            "≤",
        ),
        (
            "Rasa worker's resident memory, peak",
            ours["sqlite"]["rasa_memory"]["peak_mb"] / workers,
            TARGETS["rasa_rss_mb"],
            "MB",
            "≤",
        ),
        ("model size", ours["model_mb"], TARGETS["model_mb"], "MB", "≤"),
        ("training time", ours["train_s"], TARGETS["train_s"], "s", "≤"),
        ("cold start", ours["sqlite"]["cold_start_s"], TARGETS["cold_start_s"], "s", "≤"),
        (
            "turn 300 ÷ turn 10 of one session",
            ours["sqlite"]["long_session"]["ratio"],
            TARGETS["long_session_ratio"],
            "×",
            "≤",
        ),
    ]
    errors = sum(
        level["errors"] + level["empty"]
        for setup in ("sqlite", "cluster")
        if ours.get(setup)
        for level in ours[setup]["levels"]
    )
    lines = ["| target | measured | target | met |", "| --- | --- | --- | --- |"]
    for name, value, target, unit, sense in checks:
        met = value <= target if sense == "≤" else value >= target
        lines.append(
            f"| {name} | {value:.1f} {unit} | {sense} {target} {unit} | {'yes' if met else 'no'} |"
        )
    lines.append(f"| errors and empty replies | {errors} | 0 | {'yes' if errors == 0 else 'no'} |")
    return lines


def plots(results: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "sqlite": "SQLite, 1 server, a worker per core",
        "cluster": "PostgreSQL + Redis, 2 servers",
    }
    for setup in ("sqlite", "cluster"):
        if not all(results[name].get(setup) for name in results):
            continue
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for name, figures in results.items():
            levels = figures[setup]["levels"]
            x = [level["concurrency"] for level in levels]
            left.plot(x, [level["p95_ms"] for level in levels], marker="o", label=f"{name} p95")
            left.plot(
                x,
                [level["p50_ms"] for level in levels],
                marker=".",
                linestyle="--",
                label=f"{name} p50",
            )
            right.plot(x, [level["throughput"] for level in levels], marker="o", label=name)
        left.set(
            xscale="log",
            yscale="log",
            xlabel="concurrent conversations",
            ylabel="latency per message (ms)",
            title=f"latency ({titles[setup]})",
        )
        right.set(
            xscale="log",
            xlabel="concurrent conversations",
            ylabel="messages per second",
            title=f"throughput ({titles[setup]})",
        )
        left.legend(fontsize=8)
        right.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / f"{setup}.png", dpi=110)
        plt.close(fig)


def flame_graphs() -> str:
    found = sorted(p.name for p in RESULTS.glob("profile-*.svg"))
    if not found:
        return "No flame graphs: py-spy is not installed or could not attach to the server."
    return (
        "Flame graphs of the Rasa server under the 10-conversation load (py-spy): "
        + ", ".join(found)
        + "."
    )


def report(results: dict[str, dict], seconds: float) -> str:
    ours, docs = results["project"], results["docs-zh"]
    workers = ours["sqlite"].get("rasa_workers", 1)
    own = ours["sqlite"]["rasa_memory"]["anon_mb"]
    lines = [
        "# Benchmark",
        "",
        f"`make bench` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{seconds / 60:.1f} min. Ratios are this project ÷ the documented pipeline "
        "(evaluation/config-docs-zh.yml with this project's policies), trained on the same data.",
        "",
        "## Targets",
        "",
        *verdicts(ours),
        "",
        "Resident memory includes the pages of mapped files, mostly TensorFlow's shared libraries, "
        f"which the page cache shares and which vary with it (a freshly installed .venv maps more "
        f"of them): after the load the Rasa server's "
        f"{workers} worker processes held {own:.0f} MB of their own ({own / workers:.0f} MB "
        f"each) and {ours['sqlite']['rasa_memory']['file_mb']:.0f} MB of mapped files. Memory "
        "figures below are of all the server's workers together.",
        "",
        "## Per-message latency over REST (ms) and throughput (messages/s)",
        "",
        "| setup | concurrent | messages | p50 | p95 (ratio) | p99 | msg/s (ratio) | errors | "
        "empty | docs-zh p50 / p95 / p99 | docs-zh msg/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *level_rows(
            f"SQLite, 1 server, {workers} workers (default)",
            ours["sqlite"],
            docs["sqlite"],
        ),
    ]
    if ours.get("cluster") and docs.get("cluster"):
        lines += level_rows("PostgreSQL + Redis, 2 servers", ours["cluster"], docs["cluster"])
    else:
        lines += ["", "(two-server setup not measured: PostgreSQL or Redis not reachable)"]
    one_ours, one_docs = ours["sqlite"], docs["sqlite"]

    def memory(figures: dict, server: str, kind: str) -> float:
        return float(figures[f"{server}_memory"][kind])

    lines += [
        "",
        "## One server (default: a worker per core)",
        "",
        "| figure | this project | docs-zh | ratio |",
        "| --- | --- | --- | --- |",
        figure_row("NLU parse p50 (ms)", one_ours["parse_p50_ms"], one_docs["parse_p50_ms"], 1),
        figure_row("NLU parse p95 (ms)", one_ours["parse_p95_ms"], one_docs["parse_p95_ms"], 1),
        figure_row(
            "cold start to first answer (s)", one_ours["cold_start_s"], one_docs["cold_start_s"], 1
        ),
        figure_row(
            "Rasa server memory, peak (MB)",
            memory(one_ours, "rasa", "peak_mb"),
            memory(one_docs, "rasa", "peak_mb"),
        ),
        f"| Rasa server memory after the load: own (anonymous) / mapped files (MB) | "
        f"{memory(one_ours, 'rasa', 'anon_mb'):.0f} / {memory(one_ours, 'rasa', 'file_mb'):.0f} | "
        f"{memory(one_docs, 'rasa', 'anon_mb'):.0f} / {memory(one_docs, 'rasa', 'file_mb'):.0f} | "
        f"{ratio(memory(one_ours, 'rasa', 'anon_mb'), memory(one_docs, 'rasa', 'anon_mb'))} |",
        figure_row(
            "action server memory, peak (MB)",
            memory(one_ours, "actions", "peak_mb"),
            memory(one_docs, "actions", "peak_mb"),
        ),
        figure_row("model size (MB)", ours["model_mb"], docs["model_mb"], 1),
        figure_row("training time (s)", ours["train_s"], docs["train_s"]),
        "",
        *screenshot_bench.report_lines(one_ours.get("screenshots"), one_docs.get("screenshots")),
        "",
        "## Long messages (one server, SQLite)",
        "",
        "The channels read at most 2,000 characters of a message and the NLU pipeline its first "
        "NLU_MAX_CHARS (300); a longer one is answered from its beginning with a note.",
        "",
        "| characters | this project: status, latency (ms), RSS growth (MB) | "
        "docs-zh: status, latency (ms), RSS growth (MB) |",
        "| --- | --- | --- |",
        *[
            f"| {mine['chars']:,} | {mine['status']}, {mine['latency_ms']:.0f}, "
            f"{mine['rss_growth_mb']:.1f} | {theirs['status']}, {theirs['latency_ms']:.0f}, "
            f"{theirs['rss_growth_mb']:.1f} |"
            for mine, theirs in zip(
                one_ours["long_messages"], one_docs["long_messages"], strict=False
            )
        ],
        "",
        "## A long conversation, and what one costs in the database (one server, SQLite)",
        "",
        f"One conversation of {one_ours['long_session']['turns']} messages in one session, one "
        "at a time (bench/long_session.py): median latency of turns 5–25 and of the last 20. "
        "Then the stored events of 4-message conversations.",
        "",
        "| figure | this project | docs-zh |",
        "| --- | --- | --- |",
        *[
            f"| {name} | {one_ours[group][key]:.{places}f} | {one_docs[group][key]:.{places}f} |"
            for name, group, key, places in (
                ("turn 10, median (ms)", "long_session", "early_ms", 0),
                ("turn 300, median (ms)", "long_session", "late_ms", 0),
                ("turn 300 ÷ turn 10", "long_session", "ratio", 2),
                ("events per 4-message conversation", "stored", "events_per_conversation", 1),
                ("KB of events per 4-message conversation", "stored", "kb_per_conversation", 1),
            )
        ],
        "",
        *resilience.report_lines(ours.get("resilience")),
        "Plots: sqlite.png" + (", cluster.png" if ours.get("cluster") else "") + ".",
        flame_graphs(),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    args = parser.parse_args()
    levels = QUICK_LEVELS if args.quick else LEVELS
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob("profile-*.svg"):
        old.unlink()
    started = time.monotonic()
    configs = {"project": ROOT / "config.yml", "docs-zh": docs_config(RESULTS)}
    results: dict[str, dict] = {}
    for name, config in configs.items():
        print(f"bench: training {name} …", flush=True)
        results[name] = train(name, config)
        print(
            f"bench: {name}: {results[name]['train_s']:.0f} s, "
            f"{results[name]['model_mb']:.1f} MB; one server on SQLite …",
            flush=True,
        )
        profile = RESULTS / f"profile-{name}.svg"
        results[name]["sqlite"] = sqlite_setup(results[name]["model"], levels, profile)
        print(f"bench: {name}: two servers on PostgreSQL + Redis …", flush=True)
        results[name]["cluster"] = cluster_setup(results[name]["model"], levels)
    print("bench: resilience (a worker lost under load, hostile input) …", flush=True)
    results["project"]["resilience"] = resilience.measure(results["project"]["model"])
    plots(results)
    text = report(results, time.monotonic() - started)
    (RESULTS / "report.md").write_text(text, encoding="utf-8")
    for figures in results.values():
        figures["model"] = str(figures["model"])
        for setup in ("sqlite", "cluster"):
            for level in (figures.get(setup) or {}).get("levels", []):
                level.pop("latencies")
    (RESULTS / "figures.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(text)
    print(f"bench: report in {RESULTS / 'report.md'}")


if __name__ == "__main__":
    main()
