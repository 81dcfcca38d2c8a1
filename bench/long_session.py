"""How a turn's cost grows with the conversation, and what a conversation costs in the database.

- One conversation of LONG_TURNS messages within one session (the bench flows' messages, in
  order, over and over), one at a time over REST: the median latency of turns 5–25 ("turn 10")
  beside that of the last 20 ("turn 300"). Rasa re-reads the session every turn, so without
  stores/tracker_store.py's compaction the second grows with the session's length.
- The stored events of conversations of 4 messages: rows and bytes per conversation, read from
  the events table of the server's DATABASE_URL.
"""

import statistics
import time
from typing import Any

import requests
import sqlalchemy as sa

from bench.flows import FLOWS

LONG_TURNS = 300
SHORT_CONVERSATIONS = 20


def _messages() -> list[str]:
    return [text for flow in FLOWS for text in flow]


def long_session(url: str, turns: int = LONG_TURNS) -> dict[str, Any]:
    """Latency of each turn of one conversation of `turns` messages; the early and late medians."""
    texts, latencies, empty = _messages(), [], 0
    with requests.Session() as session:
        for turn in range(turns):
            started = time.perf_counter()
            reply = session.post(
                f"{url}/webhooks/rest/webhook",
                json={"sender": "bench-long-session", "message": texts[turn % len(texts)]},
                timeout=60,
            )
            latencies.append(time.perf_counter() - started)
            reply.raise_for_status()
            empty += not reply.json()
    early = statistics.median(latencies[4:25]) * 1000
    late = statistics.median(latencies[-20:]) * 1000
    return {
        "turns": turns,
        "early_ms": early,
        "late_ms": late,
        "ratio": late / early,
        "empty": empty,
    }


def stored_per_conversation(url: str, database_url: str) -> dict[str, float]:
    """Plays SHORT_CONVERSATIONS conversations of 4 messages; their stored rows and bytes each."""
    texts = _messages()
    with requests.Session() as session:
        for number in range(SHORT_CONVERSATIONS):
            for turn in range(4):
                session.post(
                    f"{url}/webhooks/rest/webhook",
                    json={"sender": f"bench-short-{number}", "message": texts[number + turn]},
                    timeout=60,
                ).raise_for_status()
    engine = sa.create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            rows, size = connection.execute(
                sa.text(
                    "SELECT count(*), sum(length(data)) FROM events "
                    "WHERE sender_id LIKE 'bench-short-%'"
                )
            ).one()
    finally:
        engine.dispose()
    return {
        "events_per_conversation": rows / SHORT_CONVERSATIONS,
        "kb_per_conversation": (size or 0) / SHORT_CONVERSATIONS / 1024,
    }
