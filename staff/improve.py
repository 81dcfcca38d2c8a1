"""What the console's admin pages make of the statistics: not-understood messages grouped,
examples exported as Rasa NLU YAML for review, feedback as CSV, tickets per topic as a chart."""

import csv
import difflib
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.db.queries import FeedbackCount
from core.yaml_files import read_yaml

DOMAIN = Path(__file__).resolve().parent.parent / "domain.yml"
# Messages this alike (difflib's ratio on the masked text) are one group: the same question with
# a word or a placeholder changed.
SIMILAR = 0.75
MAX_GROUPED = 500  # the most frequent messages considered; grouping is quadratic


@dataclass
class Group:
    """Near-identical not-understood messages, the most frequent first."""

    texts: list[str] = field(default_factory=list)
    count: int = 0
    first_seen: datetime = datetime.max
    last_seen: datetime = datetime.min


def alike(first: str, second: str) -> bool:
    """True when difflib's ratio is at least SIMILAR; its two cheap upper bounds are tried first
    (same answer, about a third of the time on 500 distinct messages)."""
    matcher = difflib.SequenceMatcher(None, first, second)
    return (
        matcher.real_quick_ratio() >= SIMILAR
        and matcher.quick_ratio() >= SIMILAR
        and matcher.ratio() >= SIMILAR
    )


def grouped(rows: list[tuple[str, int, datetime, datetime]]) -> list[Group]:
    groups: list[Group] = []
    for text, count, first, last in rows[:MAX_GROUPED]:
        home = next((g for g in groups if alike(g.texts[0], text)), None)
        if home is None:
            home = Group()
            groups.append(home)
        home.texts.append(text)
        home.count += count
        home.first_seen, home.last_seen = min(home.first_seen, first), max(home.last_seen, last)
    return sorted(groups, key=lambda g: (-g.count, g.texts[0]))


def intents() -> list[str]:
    """The intents an example can be filed under: the domain's, in its order."""
    return [str(name) for name in read_yaml(DOMAIN)["intents"]]


def nlu_yaml(chosen: dict[str, list[str]]) -> str:
    """Rasa NLU training data for review: intent -> examples (one line each)."""
    lines = ['version: "3.1"', "", "nlu:"]
    for intent, texts in sorted(chosen.items()):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {' '.join(text.split())}" for text in texts if text.strip()]
    return "\n".join(lines) + "\n"


def feedback_csv(counts: list[FeedbackCount]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["answer", "asked", "helped", "did_not_help", "helped_share"])
    for c in counts:
        total = c.helpful + c.not_helpful
        writer.writerow([c.answer, total, c.helpful, c.not_helpful, f"{c.rate:.3f}"])
    return out.getvalue()


def topics_chart(rows: list[tuple[str, str, int]]) -> str:
    """Tickets opened per topic per day, as an SVG bar chart (matplotlib, no script inside)."""
    # Figure, not pyplot: no global state, so charts can be drawn in the console's worker threads
    from matplotlib.figure import Figure

    days = sorted({day for day, _, _ in rows})
    topics = sorted({topic for _, topic, _ in rows})
    figure = Figure(figsize=(8, 3.2))
    axes = figure.subplots()
    bottom = [0] * len(days)
    for topic in topics:
        heights = [sum(n for d, t, n in rows if d == day and t == topic) for day in days]
        axes.bar([d[5:] for d in days], heights, bottom=bottom, label=topic)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("tickets")
    if topics:
        axes.legend(fontsize=8)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    return out.getvalue()
