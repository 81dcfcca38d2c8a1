"""Screenshots in `make bench`: how long the Rasa server takes to answer one (OCR included), and
its memory once the OCR engine is loaded (the engine loads on the first picture)."""

import base64
import time
from functools import lru_cache
from typing import Any

import requests

from bench.stats import percentile
from harness.screenshot_pages import Screenshot, render

ROUNDS = 3  # each picture of the set this many times


@lru_cache(maxsize=1)
def screenshot_set() -> list[Screenshot]:
    return render()


def measure(url: str, memory: Any) -> dict[str, Any]:
    """Latency per screenshot (p50, p95, ms) and the server's memory before and after (MB).

    `memory()` gives the Rasa server's {"rss_mb", "peak_mb"}."""
    before = memory()
    latencies, answered = [], 0
    for round_number in range(ROUNDS):
        for shot in screenshot_set():
            image = base64.b64encode(shot.data).decode()
            started = time.perf_counter()
            reply = requests.post(
                f"{url}/webhooks/rest/screenshot",
                json={"sender": f"bench-shot-{round_number}", "image": image},
                timeout=120,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            said = " ".join(m.get("text", "") for m in reply.json()) if reply.ok else ""
            answered += shot.shows in said  # (reply.text has the Chinese as \u escapes)
    after = memory()
    return {
        "count": len(latencies),
        "read_right": answered,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "rss_before_mb": before["rss_mb"],
        "rss_after_mb": after["rss_mb"],
        "peak_mb": after["peak_mb"],
    }


def report_lines(ours: dict[str, Any] | None, docs: dict[str, Any] | None) -> list[str]:
    if not ours or not docs:
        return ["", "(screenshots not measured)"]
    rows = [
        ("answer p50 (ms)", "p50_ms"),
        ("answer p95 (ms)", "p95_ms"),
        ("Rasa server RSS before the first picture (MB)", "rss_before_mb"),
        ("Rasa server RSS with the OCR engine loaded (MB)", "rss_after_mb"),
    ]
    return [
        "",
        "## Screenshots (one server, SQLite)",
        "",
        f"The screenshot set (harness/screenshot_pages.py: {ours['count'] // ROUNDS} pictures, the "
        f"pages as phone screenshots and photographed), each sent {ROUNDS} times to "
        "/webhooks/rest/screenshot; the latency includes decoding, OCR, understanding and the "
        "answer. Read right: the reply names the page's message: "
        f"{ours['read_right']} / {ours['count']} (docs-zh server: "
        f"{docs['read_right']} / {docs['count']}).",
        "",
        "| figure | this project | docs-zh |",
        "| --- | --- | --- |",
        *[f"| {name} | {ours[key]:.0f} | {docs[key]:.0f} |" for name, key in rows],
    ]
