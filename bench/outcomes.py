"""The outcomes dashboard on a term's data: 100,000 conversations' sessions with a realistic mix,
generated here (never the real database), on SQLite and on PostgreSQL; and what it costs to bring
the outcomes up to date from the tracker store's events.

    python -m bench.outcomes [--conversations 100000]

Prints, per database, the seconds of what a dashboard page does (bring the outcomes up to date
with nothing new, count the figures, lay out the tables, draw the charts) for the last 7 and the
last 92 days, the median of 5 runs; and the conversations per second `refresh()` reads from
events written as the Rasa server writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from harness import databases

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
RUNS = 5
TERM_DAYS = 92
REFRESHED_CONVERSATIONS = 2000
# The mix: (outcome, share, step); topics and channels as a term's traffic might split.
MIX = (
    ("resolved_assumed", 0.46, ""),
    ("resolved_confirmed", 0.18, ""),
    ("handed_off", 0.12, ""),
    ("taken_over", 0.04, ""),
    ("gave_up", 0.09, "registered_before"),
    ("gave_up", 0.03, "answer_failed"),
    ("not_understood", 0.05, ""),
    ("no_question", 0.03, ""),
)
TOPICS = (("password", 0.45), ("username", 0.2), ("both", 0.05), ("duplicate_id", 0.3))
CHANNELS = (("wechat", 0.55), ("socketio", 0.3), ("wecom", 0.1), ("rest", 0.05))


def pick(choices: tuple[tuple[Any, ...], ...], draw: float) -> tuple[Any, ...]:
    for choice in choices:
        draw -= choice[1]
        if draw <= 0:
            return choice
    return choices[-1]


def sessions(count: int, now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """`count` sessions spread over the last term, busier in its first weeks (term start)."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        ago = timedelta(days=TERM_DAYS * rng.random() ** 1.6, seconds=rng.randrange(86400))
        started = now - ago
        outcome, _, step = pick(MIX, rng.random())
        topic = pick(TOPICS, rng.random())[0] if outcome != "no_question" else ""
        flow = "duplicate_id" if topic == "duplicate_id" else ("account" if topic else "")
        handoff = taken = None
        if outcome in ("handed_off", "taken_over"):
            handoff = started + timedelta(minutes=2)
        if outcome == "taken_over":
            taken = started + timedelta(minutes=2 + rng.randrange(1, 90))
        rows.append(
            {
                "conversation_id": f"bench-{number}",
                "first_event_id": number * 40 + 1,
                "last_event_id": number * 40 + 37,
                "started_at": started,
                "ended_at": started + timedelta(minutes=rng.randrange(1, 20)),
                "channel": pick(CHANNELS, rng.random())[0],
                "topic": topic,
                "outcome": outcome,
                "step": step,
                "flow": flow,
                "flow_step": rng.randrange(1, 5) if flow else 0,
                "handoff_at": handoff,
                "taken_at": taken,
                "agent_first_at": taken + timedelta(seconds=40) if taken else None,
                "takeover_seconds": float(rng.randrange(60, 1800)) if taken else None,
                "takeover_end": rng.choice(("handed_back", "timed_out")) if taken else None,
            }
        )
    return rows


def median_seconds(work: Callable[[], Any]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def counted(days: int) -> Any:
    from staff import outcomes

    return outcomes.figures(*outcomes.window(days))


def page(days: int, chart: str | None) -> None:
    """What one request of the dashboard does: the page (its tables) or one of its charts."""
    from staff import outcome_pages, outcomes

    found = outcome_pages.counted(days)
    if chart is None:
        outcomes.tables(found)
    else:
        outcomes.charts(found, chart)


def dashboard(url: str, count: int) -> dict[str, Any]:
    from core.db.engine import session_scope
    from core.db.models import SessionOutcome
    from staff import outcomes

    os.environ["DATABASE_URL"] = url
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = sessions(count, now)
    started = time.perf_counter()
    with session_scope() as db:
        for start in range(0, len(rows), 5000):
            db.execute(sa.insert(SessionOutcome), rows[start : start + 5000])
    figures: dict[str, Any] = {"insert_s": time.perf_counter() - started, "sessions": count}
    for days in (7, TERM_DAYS):
        requests = {
            name: median_seconds(functools.partial(page, days, chart))
            for name, chart in (("page", None), ("days.svg", "days"), ("funnel.svg", "funnel"))
        }
        figures[f"{days}d"] = {
            "sessions_in_window": sum(outcomes.figures(*outcomes.window(days)).outcomes.values()),
            "requests_s": requests,
            "page_s": max(requests.values()),
            "figures_s": median_seconds(functools.partial(counted, days)),
        }
    return figures


def refresh_rate(url: str, conversations: int) -> dict[str, float]:
    """Writes `conversations` realistic conversations' events through the tracker store, then
    times one refresh that reads them all."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from staff import outcomes
    from stores.tracker_store import MaskingSQLTrackerStore

    os.environ["DATABASE_URL"] = url
    store = MaskingSQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), host=url)
    base = time.time() - 3 * 86400
    for number in range(conversations):
        events = [
            ActionExecuted("action_session_start"),
            SessionStarted(),
            ActionExecuted("action_listen"),
            UserUttered("学信网密码忘了", {"name": "forgot_password", "confidence": 0.9}),
            SlotSet("topic", "password"),
            ActionExecuted("utter_forgot_password"),
            ActionExecuted("action_listen"),
            UserUttered("找回了", {"name": "affirm", "confidence": 0.9}),
            ActionExecuted("action_record_feedback"),
            ActionExecuted("utter_glad"),
            ActionExecuted("action_listen"),
        ]
        tracker = DialogueStateTracker(f"r{number}", store.domain.slots)
        for position, event in enumerate(events):
            event.timestamp = base + number + position
            tracker.update(event)
        asyncio.run(store.save(tracker))
    started = time.perf_counter()
    read = outcomes.refresh()
    seconds = time.perf_counter() - started
    return {"conversations": read, "seconds": seconds, "per_second": read / seconds}


def measure(count: int = 100_000) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-outcomes-") as tmp:
        url = f"sqlite:///{tmp}/outcomes.db"
        databases.migrate(url)
        results["sqlite"] = dashboard(url, count)
        url = f"sqlite:///{tmp}/refresh.db"
        databases.migrate(url)
        results["sqlite"]["refresh"] = refresh_rate(url, REFRESHED_CONVERSATIONS)
    try:
        with databases.new_postgres_database(POSTGRES_ADMIN_URL) as url:
            results["postgresql"] = dashboard(url, count)
        with databases.new_postgres_database(POSTGRES_ADMIN_URL) as url:
            results["postgresql"]["refresh"] = refresh_rate(url, REFRESHED_CONVERSATIONS)
    except sa.exc.OperationalError as error:
        results["postgresql"] = {"error": f"not reachable: {type(error).__name__}"}
    return results


def report_lines(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    sqlite = figures["sqlite"]
    lines = [
        f"## The outcomes dashboard on a term's data ({sqlite['sessions']:,} sessions, generated)",
        "",
        f"The slowest of the three requests of 结果 (the page, its two charts: each brings the "
        f"outcomes up to date with nothing new, counts, lays out or draws), median of {RUNS} runs; "
        "and `refresh()` reading "
        f"{REFRESHED_CONVERSATIONS:,} conversations' events written as the Rasa server writes "
        "them.",
        "",
        "| database | last 7 days: sessions, slowest request (s) | last 92 days: sessions, "
        "slowest request (s) | "
        "refresh (conversations/s) |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("sqlite", "postgresql"):
        one = figures.get(name) or {}
        if "error" in one:
            lines.append(f"| {name} | {one['error']} | | |")
            continue
        week, term = one["7d"], one[f"{TERM_DAYS}d"]
        lines.append(
            f"| {name} | {week['sessions_in_window']:,}, {week['page_s']:.2f} | "
            f"{term['sessions_in_window']:,}, {term['page_s']:.2f} | "
            f"{one['refresh']['per_second']:.0f} |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    args = parser.parse_args()
    figures = measure(args.conversations)
    print("\n".join(report_lines(figures)))
    print(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
