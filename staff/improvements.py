"""The repository stays the source of truth for what the support team accepted (#27 item 7).

Labels live in the console's database (staff/admin.py); training reads only the repository. So
`python -m staff improvements export` writes the accepted labels as files a developer commits:

- data/nlu/reviewed.yml: every label that names an intent, as Rasa NLU training data (it joins
  the next `make train` like any file in data/nlu/);
- docs/faq-gaps.md: the questions marked 「FAQ 没有答案」, for whoever owns the content (not
  training data).

An export merges: the examples already in reviewed.yml stay (a purged or older database loses
nothing), a text labelled again moves to its new intent, and a text since marked an FAQ gap leaves
the training data. `python -m staff improvements status` and the console's 已标注 page say how
many labels the files do not hold yet: a fresh checkout's `make train` trains on the files, so a
label that was never exported and committed is not in it, and the console says so rather than
losing it silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import yaml

from core.db.models import FAQ_GAP
from core.db.queries import Label
from staff import improve

ROOT = Path(__file__).resolve().parent.parent
REVIEWED = ROOT / "data" / "nlu" / "reviewed.yml"
GAPS = ROOT / "docs" / "faq-gaps.md"
COMMENTS = (
    "Examples the support team labelled in the staff console (python -m staff improvements",
    "export): student messages as stored, masked. Review the diff before committing it.",
)


def exported_examples(path: Path = REVIEWED) -> dict[str, str]:
    """Text -> intent of the examples reviewed.yml holds now."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
        for line in str(block.get("examples", "")).splitlines():
            if line.startswith("- ") and block.get("intent"):
                found[line[2:].strip()] = str(block["intent"])
    return found


def one_line(text: str) -> str:
    return " ".join(text.split())


def merged(existing: dict[str, str], labels: Iterable[Label]) -> dict[str, str]:
    """The examples after an export: the file's, then each label (the latest last) on top."""
    examples = dict(existing)
    for label in sorted(labels, key=labelled_at):
        text = one_line(label.text)
        if label.intent == FAQ_GAP or not improve.trainable(text):
            examples.pop(text, None)
        else:
            examples[text] = label.intent
    return examples


def nlu_yaml(examples: dict[str, str]) -> str:
    by_intent: dict[str, list[str]] = {}
    for text, intent in sorted(examples.items()):
        by_intent.setdefault(intent, []).append(text)
    return improve.nlu_yaml(by_intent, COMMENTS)


def exported_gaps(path: Path = GAPS) -> set[str]:
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line[2:].strip() for line in lines if line.startswith("- ")}


def merged_gaps(existing: set[str], labels: Iterable[Label]) -> list[str]:
    """The file's gaps and the labelled ones, less the texts since labelled with an intent."""
    gaps = set(existing)
    for label in sorted(labels, key=labelled_at):
        text = one_line(label.text)
        if label.intent == FAQ_GAP:
            gaps.add(text)
        else:
            gaps.discard(text)
    return sorted(gaps)


def gaps_markdown(gaps: list[str]) -> str:
    lines = [
        "# Questions the FAQ does not answer",
        "",
        "Students asked these and the support team marked them 「FAQ 没有答案」 in the staff",
        "console (masked; written by `python -m staff improvements export`). For whoever owns the",
        "FAQ's content: the assistant can only answer what the source says.",
        "",
    ]
    lines += [f"- {text}" for text in gaps] or ["(none yet)"]
    return "\n".join(lines) + "\n"


def not_exported(labels: Iterable[Label], path: Path = REVIEWED) -> int:
    """How many labelled texts the training file does not hold as labelled at last: with
    another intent or none, or as training data though marked an FAQ gap since."""
    held = exported_examples(path)
    latest = {one_line(label.text): label.intent for label in sorted(labels, key=labelled_at)}
    return sum(
        1
        for text, intent in latest.items()
        if (
            (text in held)
            if intent == FAQ_GAP
            else (held.get(text) != intent and improve.trainable(text))
        )
    )


def not_exported_or_why(labels: Iterable[Label], path: Path = REVIEWED) -> int | str:
    """not_exported, or why the file cannot be read (for the console: never a 500)."""
    try:
        return not_exported(labels, path)
    except (OSError, ValueError, yaml.YAMLError) as error:
        return f"{path.name} 读不出来（{type(error).__name__}），请开发同事检查"


def untrainable(labels: Iterable[Label]) -> list[str]:
    """Labelled texts an NLU file cannot hold as they are (see trainable): left out of it."""
    return sorted(
        {
            one_line(label.text)
            for label in labels
            if label.intent != FAQ_GAP and not improve.trainable(one_line(label.text))
        }
    )


def labelled_at(label: Label) -> datetime:
    return label.labelled_at


def export(labels: list[Label], nlu_path: Path = REVIEWED, gaps_path: Path = GAPS) -> int:
    """Writes both files; returns how many training examples reviewed.yml holds."""
    examples = merged(exported_examples(nlu_path), labels)
    nlu_path.write_text(nlu_yaml(examples), encoding="utf-8")
    gaps = merged_gaps(exported_gaps(gaps_path), labels)
    gaps_path.write_text(gaps_markdown(gaps), encoding="utf-8")
    return len(examples)
