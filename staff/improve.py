"""What the console's admin pages make of the statistics: not-understood messages grouped, the
answered messages worth a second look grouped by kind, examples exported as Rasa NLU YAML for
review, feedback as CSV, tickets per topic as a chart."""

import csv
import difflib
import hashlib
import io
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.db.queries import FeedbackCount, ReviewRow
from core.yaml_files import read_yaml

DOMAIN = Path(__file__).resolve().parent.parent / "domain.yml"
# Messages this alike (difflib's ratio on the masked text) are one group: the same question with
# a word or a placeholder changed.
SIMILAR = 0.75
MAX_GROUPED = 500  # the most frequent messages shown
# What grouping compares of a message: the FAQ's questions are a sentence or two, and difflib's
# ratio grows with the square of the length.
COMPARED_CHARS = 80
# A new message is checked against at most this many groups, those sharing most of its MinHash
# bands first: each message costs about the same, however many messages and groups there are.
MAX_CANDIDATES = 12
# MinHash over character bigrams: BANDS bands of ROWS hashes each. Texts alike enough to group
# share a band with high probability; texts made of the same characters in other orders do not.
BANDS, ROWS = 6, 2
# The index forgets everything past this many texts and starts again (memory stays bounded).
MAX_INDEXED = 20_000


@dataclass
class Group:
    """Near-identical not-understood messages, the most frequent first."""

    texts: list[str] = field(default_factory=list)
    count: int = 0
    first_seen: datetime = datetime.max
    last_seen: datetime = datetime.min


def alike(first: str, second: str) -> bool:
    """True when difflib's ratio (on the first COMPARED_CHARS characters) is at least SIMILAR; its
    two cheap upper bounds are tried first."""
    matcher = difflib.SequenceMatcher(None, first[:COMPARED_CHARS], second[:COMPARED_CHARS])
    return (
        matcher.real_quick_ratio() >= SIMILAR
        and matcher.quick_ratio() >= SIMILAR
        and matcher.ratio() >= SIMILAR
    )


def bands(text: str) -> list[tuple[int, ...]]:
    """The text's MinHash bands over its character bigrams (a one-character text: itself)."""
    text = text[:COMPARED_CHARS]
    grams = {text[i : i + 2] for i in range(max(1, len(text) - 1))}
    encoded = [gram.encode("utf-8", "surrogatepass") for gram in grams]
    minima = [min(zlib.crc32(gram, seed) for gram in encoded) for seed in range(BANDS * ROWS)]
    return [(band, *minima[band * ROWS : (band + 1) * ROWS]) for band in range(BANDS)]


class GroupIndex:
    """Which group each not-understood text belongs to, worked out once per new text.

    A new text is compared with the representatives (first texts) of the groups that share a
    MinHash band with it, at most MAX_CANDIDATES of them: the cost of a text does not grow with
    the number of texts. Comparing every pair with difflib made the admin page quadratic in what
    anonymous students send (80 reorderings of the same characters: 10.9 s a view)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.group_of: dict[str, int] = {}
        self.representatives: list[str] = []
        self.buckets: dict[tuple[int, ...], list[int]] = {}

    def place(self, text: str) -> int:
        known = self.group_of.get(text)
        if known is not None:
            return known
        keys = bands(text)
        shared: dict[int, int] = {}
        for key in keys:
            for group in self.buckets.get(key, ()):
                shared[group] = shared.get(group, 0) + 1
        candidates = sorted(shared, key=lambda g: (-shared[g], g))[:MAX_CANDIDATES]
        home = next((g for g in candidates if alike(self.representatives[g], text)), None)
        if home is None:
            home = len(self.representatives)
            self.representatives.append(text)
        for key in keys:
            members = self.buckets.setdefault(key, [])
            if home not in members[-1:]:
                members.append(home)
        self.group_of[text] = home
        return home


def grouped(
    rows: list[tuple[str, int, datetime, datetime]], index: GroupIndex | None = None
) -> list[Group]:
    """The rows (text, count, first seen, last seen) in groups of near-identical texts, the most
    asked first; `index` keeps the grouping of texts seen before (the console keeps one)."""
    index = index or GroupIndex()
    if len(index.group_of) + len(rows) > MAX_INDEXED:
        index.clear()  # between views only: group numbers of one view never mix
    groups: dict[int, Group] = {}
    for text, count, first, last in rows[:MAX_GROUPED]:
        home = groups.setdefault(index.place(text), Group())
        home.texts.append(text)
        home.count += count
        home.first_seen, home.last_seen = min(home.first_seen, first), max(home.last_seen, last)
    return sorted(groups.values(), key=lambda g: (-g.count, g.texts[0]))


# What each kind of the review list means, as the console and `python -m staff review` say it.
REVIEW_KINDS = {
    "unsure": "答了，但没把握（最可能的意图分数低，或前两个意图分数接近）",
    "did_not_help": "答了，学生说没帮上忙",
    "handed_off": "答了，两轮之内学生还是转了人工",
}


@dataclass
class ReviewGroup:
    """Near-identical answered messages of one kind, each with the intent the assistant chose."""

    group: Group
    intents: dict[str, str]  # text -> the intent chosen (the most frequent, if several)


def review_groups(rows: list[ReviewRow], index: GroupIndex | None = None) -> list[ReviewGroup]:
    """The rows of one kind in groups of near-identical texts, the most frequent first."""
    chosen: dict[str, tuple[int, str]] = {}
    counts: dict[str, tuple[int, datetime, datetime]] = {}
    for row in rows:
        if row.count > chosen.get(row.text, (0, ""))[0]:
            chosen[row.text] = (row.count, row.intent)
        count, first, last = counts.get(row.text, (0, datetime.max, datetime.min))
        counts[row.text] = (count + row.count, min(first, row.first_seen), max(last, row.last_seen))
    merged = [(text, *seen) for text, seen in counts.items()]
    merged.sort(key=lambda r: (-r[1], r[0]))
    return [
        ReviewGroup(group, {text: chosen[text][1] for text in group.texts})
        for group in grouped(merged, index)
    ]


def group_key(texts: list[str]) -> str:
    """What names a group in a form: a digest of its members, so that a group that gained or lost
    a message since the page was shown is not taken for the one the reviewer saw."""
    return hashlib.sha256("\n".join(sorted(texts)).encode("utf-8", "surrogatepass")).hexdigest()


def intents() -> list[str]:
    """The intents an example can be filed under: the domain's, in its order."""
    return [str(name) for name in read_yaml(DOMAIN)["intents"]]


def trainable(text: str) -> bool:
    """Whether `text` is read back from an NLU file as itself: printable (YAML refuses control
    characters), and no entity markup ("[手机号](不常用)" would train an entity, "[x]{y}" stop
    the training)."""
    from rasa.shared.exceptions import RasaException
    from rasa.shared.nlu.training_data import entities_parser

    if not text or not all(char.isprintable() for char in text):
        return False
    try:
        marked = entities_parser.find_entities_in_training_example(text)
        return not marked and entities_parser.replace_entities(text) == text
    except RasaException:  # markup Rasa refuses: the training would stop on it
        return False


def nlu_yaml(chosen: dict[str, list[str]], comments: tuple[str, ...] = ()) -> str:
    """Rasa NLU training data: intent -> examples (one line each), those an NLU file cannot hold
    as they are (trainable) left out; `comments` go under the version line."""
    header = [f"# {comment}" for comment in comments] or [""]
    lines = ['version: "3.1"', *header, "nlu:"]
    for intent, texts in sorted(chosen.items()):
        examples = [" ".join(text.split()) for text in texts]
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in examples if trainable(text)]
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
