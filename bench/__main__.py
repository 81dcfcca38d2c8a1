"""`make bench`: how fast, how big, how many, side by side with the documented Chinese pipeline.

    .venv/bin/python -m bench [--quick]

For two servers trained on the same data, domain and policies (this project's config.yml, and the
Chinese NLU pipeline from Rasa's documentation, evaluation/config-docs-zh.yml, with the same
policies):
- training time and model size;
- both pipelines' servers up at once, each with its own embedded SQLite database, loaded in turns
  (`rounds_of_load`: ROUNDS rounds, the order alternating, so the host's drift falls on both):
  NLU parse latency alone (/model/parse), per-message latency p50/p95/p99 and throughput over
  REST for 1, 10 and 50 concurrent conversations (bench/load.py, a second process), errors and
  empty replies; each figure the median of the rounds, each ratio taken within a round;
- on those servers afterwards: cold start (process start to the first answer), resident memory of
  the Rasa server and the action server, long messages (1,000, 10,000 and 100,000 characters:
  latency and memory growth), one conversation of 300 messages (turn 300 beside turn 10), the
  database rows and bytes of a 4-message conversation (bench/long_session.py), screenshots;
- the same rounds on two Rasa servers per pipeline sharing PostgreSQL and Redis, when those are
  reachable;
- resilience (bench/resilience.py): a worker lost under load (SIGKILL, SIGSTOP) and replaced, a
  2,000 × U+FDFA message, the admin page's grouping of 500 hostile not-understood messages,
  seven large pictures at once and the workers' memory after them;
- the improvement loop (bench/model_loop.py): a student's latency while a candidate trains
  (interleaved), full and fine-tuned training times, promotion and rollback under load (time
  until every worker serves, messages lost or stored twice, the workers' memory);
- the outcomes dashboard (bench/outcomes.py): 100,000 generated conversations' outcomes, a page
  of 结果 on SQLite and PostgreSQL, and how fast outcomes are brought up to date from events.
Writes results/bench/report.md (bench/report.py), results/bench/*.png and
results/bench/figures.json, and prints the summary. `--quick` runs smaller loads and two rounds.
"""

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from bench import long_session, model_loop, outcomes, report, resilience
from bench import screenshot_latency as screenshot_bench
from bench.flows import FLOWS
from bench.report import RESULTS
from bench.stats import percentile
from core import settings
from harness import databases
from harness.servers import BIN, QUIET_ENV, ROOT, Servers, running

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# (concurrent conversations, conversations played) per load level
LEVELS = [(1, 20), (10, 50), (50, 150)]
QUICK_LEVELS = [(1, 5), (10, 20), (50, 50)]
# the pipelines take turns this many times (bench/__main__.py: rounds_of_load)
ROUNDS = 3
PARSE_REQUESTS = 200
LONG_MESSAGE_CHARS = (1_000, 10_000, 100_000)
LONG_MESSAGE_WORDS = (
    "我忘记了学信网的登录密码，手机号也换了，不知道怎么找回，明天就要用，请帮帮我。"
)


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


def rounds_of_load(
    sets: dict[str, Servers], levels: list[tuple], rounds: int, profile: bool
) -> dict[str, list[dict[str, Any]]]:
    """The pipelines take turns on servers that are all up: in each round, each pipeline gets the
    parse requests and every load level while the other waits; the order alternates (A B, B A,
    …), so a drift of the host's speed falls on both. `profile`: py-spy flame graphs of each
    pipeline's 10-conversation load in the first round."""
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in sets}
    names = list(sets)
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            servers = sets[name]
            figures: dict[str, Any] = parse_latency(servers.rasa[0])
            figures["levels"] = []
            for concurrency, conversations in levels:
                svg = RESULTS / f"profile-{name}.svg"
                first = profile and number == 0 and concurrency == 10
                spy = profiled(servers.pid("rasa0"), svg) if first else None
                figures["levels"].append(load(servers.rasa, concurrency, conversations))
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
            per_round[name].append(figures)
            print(f"bench: round {number + 1}/{rounds}: {name} done", flush=True)
    return per_round


def one_server_figures(servers: Servers, database_url: str) -> dict[str, Any]:
    """Memory, long messages, a long conversation, stored bytes and screenshots, on servers that
    have taken the rounds' load."""
    pids = rasa_pids(servers)
    figures: dict[str, Any] = {"rasa_workers": len(pids), "rasa_memory": memory_mb(pids)}
    figures["long_messages"] = long_messages(servers.rasa[0], pids)
    figures["actions_memory"] = memory_mb([servers.pid("actions")])
    figures["long_session"] = long_session.long_session(servers.rasa[0])
    figures["stored"] = long_session.stored_per_conversation(servers.rasa[0], database_url)
    figures["screenshots"] = screenshot_bench.measure(servers.rasa[0], lambda: memory_mb(pids))
    return figures


def side_by_side(
    models: dict[str, Path],
    environments: dict[str, dict[str, str]],
    rasa_servers: int,
    levels: list[tuple],
    rounds: int,
    profile: bool = False,
) -> dict[str, dict[str, Any]]:
    """Both pipelines' servers up at once (each with its own database), started one after the
    other for their cold starts, then loaded in turns (`rounds_of_load`). Per pipeline: the
    median of each figure over the rounds, with the rounds themselves kept for the ratios."""
    with contextlib.ExitStack() as stack:
        sets: dict[str, Servers] = {}
        figures: dict[str, dict[str, Any]] = {}
        for name, model in models.items():
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
            env = environments[name]
            sets[name] = stack.enter_context(
                running(model, tmp, env, rasa_servers=rasa_servers, enable_api=True)
            )
            figures[name] = {"cold_start_s": first_answer_s(sets[name])}
        per_round = rounds_of_load(sets, levels, rounds, profile)
        for name, servers in sets.items():
            figures[name].update(medians(per_round[name]))
            figures[name]["rounds"] = per_round[name]
            if rasa_servers == 1:
                figures[name].update(
                    one_server_figures(servers, environments[name]["DATABASE_URL"])
                )
    return figures


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds, and its lowest and highest as `<name>_spread`."""
    summary: dict[str, Any] = {}
    for key in ("parse_p50_ms", "parse_p95_ms"):
        summary.update(median_of(key, [r[key] for r in rounds]))
    summary["levels"] = []
    for at in range(len(rounds[0]["levels"])):
        level = [r["levels"][at] for r in rounds]
        figures: dict[str, Any] = {
            "concurrency": level[0]["concurrency"],
            "messages": sum(one["messages"] for one in level),
            "errors": sum(one["errors"] for one in level),
            "empty": sum(one["empty"] for one in level),
            "latencies": [x for one in level for x in one["latencies"]],
        }
        for key in ("p50_ms", "p95_ms", "p99_ms", "throughput"):
            figures.update(median_of(key, [one[key] for one in level]))
        summary["levels"].append(figures)
    return summary


def median_of(key: str, values: list[float]) -> dict[str, Any]:
    return {key: statistics.median(values), f"{key}_spread": (min(values), max(values))}


def sqlite_setup(models: dict[str, Path], levels: list[tuple], rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-db-") as tmp:
        environments = {}
        for name in models:
            url = f"sqlite:///{tmp}/{name}.db"
            databases.migrate(url)
            # the default setup: as many workers as `make run` starts here (scripts/run.sh)
            workers = str(settings.default_workers())
            environments[name] = {"DATABASE_URL": url, "SANIC_WORKERS": workers}
        return side_by_side(models, environments, 1, levels, rounds, profile=True)


def redis_database(number: int) -> str:
    """REDIS_URL with its database number moved on by `number`: each pipeline's servers keep
    their locks and duplicate checks apart."""
    base, _, index = REDIS_URL.rpartition("/")
    return f"{base}/{int(index or 0) + number}"


def cluster_setup(models: dict[str, Path], levels: list[tuple], rounds: int) -> dict | None:
    try:
        databases.redis_answers(REDIS_URL)
        with contextlib.ExitStack() as stack:
            environments = {
                name: {
                    "DATABASE_URL": stack.enter_context(
                        databases.new_postgres_database(POSTGRES_URL)
                    ),
                    "REDIS_URL": redis_database(number),
                    "SANIC_WORKERS": "1",
                }
                for number, name in enumerate(models)
            }
            return side_by_side(models, environments, 2, levels, rounds)
    except Exception as error:
        print(f"bench: two-server setup skipped: {type(error).__name__}: {error}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads, two rounds")
    args = parser.parse_args()
    levels, rounds = (QUICK_LEVELS, 2) if args.quick else (LEVELS, ROUNDS)
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
            f"bench: {name}: {results[name]['train_s']:.0f} s, {results[name]['model_mb']:.1f} MB",
            flush=True,
        )
    models = {name: results[name]["model"] for name in configs}
    print(f"bench: one server each on SQLite, {rounds} rounds …", flush=True)
    for name, figures in sqlite_setup(models, levels, rounds).items():
        results[name]["sqlite"] = figures
    print(f"bench: two servers each on PostgreSQL + Redis, {rounds} rounds …", flush=True)
    cluster = cluster_setup(models, levels, rounds) or {}
    for name in configs:
        results[name]["cluster"] = cluster.get(name)
    print("bench: resilience (a worker lost under load, hostile input) …", flush=True)
    results["project"]["resilience"] = resilience.measure(results["project"]["model"])
    print("bench: the improvement loop (training beside students, promote, roll back)", flush=True)
    results["project"]["model_loop"] = model_loop.measure(results["project"]["model"])
    print("bench: the outcomes dashboard on 100,000 generated conversations", flush=True)
    results["project"]["outcomes"] = outcomes.measure()
    report.plots(results)
    text = report.report(results, time.monotonic() - started)
    (RESULTS / "report.md").write_text(text, encoding="utf-8")
    for figures in results.values():
        figures["model"] = str(figures["model"])
        for setup in ("sqlite", "cluster"):
            for level in (figures.get(setup) or {}).get("levels", []):
                level.pop("latencies")
            for one in (figures.get(setup) or {}).get("rounds", []):
                for level in one["levels"]:
                    level.pop("latencies")
    (RESULTS / "figures.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(text)
    print(f"bench: report in {RESULTS / 'report.md'}")


if __name__ == "__main__":
    main()
