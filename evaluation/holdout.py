"""Scoring intent predictions on the hold-out sets.

- The first (tests/nlu/holdout/<subset>.yml): general, traditional characters, typos, colloquial.
- The second (tests/nlu/holdout2/<kind>.yml), written on 2026-12-03 in kinds of phrasing that
  neither the training data nor the first has (pinyin typed without characters, contrast, long
  stories with the question at the end, fillers of speech, dialect words, longer answers to the
  assistant's own questions), before any change it measures: whether work on understanding
  generalises.
- Fresh long stories (tests/nlu/long_stories.yml), written after understanding/question_focus.py
  was designed on the second hold-out's long stories and before it was measured.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parent.parent
HOLDOUT_DIR = ROOT / "tests" / "nlu" / "holdout"
SECOND_HOLDOUT_DIR = ROOT / "tests" / "nlu" / "holdout2"
LONG_STORIES = ROOT / "tests" / "nlu" / "long_stories.yml"
TRAINING_DIR = ROOT / "data" / "nlu"
OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Example:
    """One labelled question and the hold-out subset it belongs to."""

    text: str
    intent: str
    subset: str  # the hold-out file's name: general, traditional, typos, colloquial


def read_examples(path: Path, subset: str = "") -> list[Example]:
    examples = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
        if "intent" in block:
            examples += [
                Example(line[2:].strip(), block["intent"], subset or path.stem)
                for line in block["examples"].splitlines()
                if line.startswith("- ")
            ]
    return examples


def holdout(directory: Path = HOLDOUT_DIR) -> list[Example]:
    return [e for path in sorted(directory.glob("*.yml")) for e in read_examples(path)]


def second_holdout() -> list[Example]:
    return holdout(SECOND_HOLDOUT_DIR)


def long_stories() -> list[Example]:
    return read_examples(LONG_STORIES, "long_stories")


def training() -> list[Example]:
    return [e for path in sorted(TRAINING_DIR.glob("*.yml")) for e in read_examples(path, "train")]


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-F1 over the intents that occur in `truth`; any other prediction (nlu_fallback
    included) counts as a miss."""
    labels = sorted(set(truth))
    return float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))


@dataclass
class Score:
    """A classifier's macro-F1 on the hold-out, overall and per subset, and its misses."""

    overall: float
    subsets: dict[str, float]
    out_of_scope_recall: float
    misses: list[str]


def score(examples: Sequence[Example], predicted: Sequence[str]) -> Score:
    truth = [e.intent for e in examples]
    subsets = {}
    for name in sorted({e.subset for e in examples}):
        idx = [i for i, e in enumerate(examples) if e.subset == name]
        subsets[name] = macro_f1([truth[i] for i in idx], [predicted[i] for i in idx])
    oos = [p for e, p in zip(examples, predicted, strict=True) if e.intent == OUT_OF_SCOPE]
    return Score(
        overall=macro_f1(truth, predicted),
        subsets=subsets,
        out_of_scope_recall=sum(p == OUT_OF_SCOPE for p in oos) / len(oos) if oos else 0.0,
        misses=[
            f"[{e.subset}] {e.text!r}: {e.intent} -> {p}"
            for e, p in zip(examples, predicted, strict=True)
            if e.intent != p
        ],
    )


def rasa_classifier(model_path: Path) -> Callable[[list[str]], list[str]]:
    """A function that classifies texts with a trained Rasa model, as the server would."""
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # Rasa's debug log would print every message's text
    agent = Agent.load(str(model_path))

    def classify(texts: list[str]) -> list[str]:
        async def run() -> list[str]:
            return [(await agent.parse_message(t))["intent"]["name"] for t in texts]

        return asyncio.run(run())

    return classify


def tfidf_classifier(train: Sequence[Example]) -> Callable[[list[str]], list[str]]:
    """Baseline 2: TF-IDF of character 1-3-grams and a linear SVM, on the raw text."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
        LinearSVC(C=1.0, random_state=2026),
    )
    model.fit([e.text for e in train], [e.intent for e in train])
    return lambda texts: list(model.predict(texts))
