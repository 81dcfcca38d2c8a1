"""The gate: a candidate model is scored beside the served one, and refused when it is worse
(#27 item 5). staff/candidates.py runs it after training; the console shows its report.

Scored, both models on the same texts:
- the hold-out set (tests/nlu/holdout/), macro-F1 overall and per intent;
- the second hold-out and the hold-out perturbed (evaluation/robustness.py), reported;
- the accepted labels: each labelled text must be read as its label's intent;
- the test stories (tests/stories/) and the conversations saved as tests in the console, with
  Rasa's own `rasa test core`: every story must be predicted exactly (its user texts through the
  candidate's NLU, its actions through its policies).

Refused, each with its reason, when: the hold-out macro-F1 is lower than the served model's by
more than GATE_F1_MARGIN; any test story or saved conversation fails; any accepted label is not
learned. Every text whose predicted intent changes between the two models is listed, so that a
reviewer sees what students will be answered differently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from sklearn.metrics import precision_recall_fscore_support

from evaluation.holdout import ROOT, Example, holdout, macro_f1, rasa_classifier, second_holdout
from evaluation.robustness import perturbed

STORIES_DIR = ROOT / "tests" / "stories"
MAX_LISTED = 200  # changed answers shown at most (the count is always given)

Classifier = Callable[[list[str]], list[str]]


def per_intent(truth: Sequence[str], served: Sequence[str], candidate: Sequence[str]) -> list[dict]:
    """F1 per intent of the truth, both models, the largest change first."""
    labels = sorted(set(truth))
    rows = []
    f1 = {}
    for name, predicted in (("served", served), ("candidate", candidate)):
        _, _, scores, support = precision_recall_fscore_support(
            truth, predicted, labels=labels, zero_division=0
        )
        f1[name] = dict(zip(labels, scores, strict=True))
        counts = dict(zip(labels, support, strict=True))
    for intent in labels:
        before, after = float(f1["served"][intent]), float(f1["candidate"][intent])
        rows.append(
            {
                "intent": intent,
                "served": round(before, 4),
                "candidate": round(after, 4),
                "change": round(after - before, 4),
                "count": int(counts[intent]),
            }
        )
    return sorted(rows, key=lambda row: (row["change"], row["intent"]))


def cached(classify: Classifier, cache: Path | None) -> Classifier:
    """The served model's readings are the same for every candidate: kept per model archive."""
    if cache is None:
        return classify

    def reading(texts: list[str]) -> list[str]:
        known: dict[str, str] = {}
        if cache.exists():
            try:
                known = json.loads(cache.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                known = {}
        missing = sorted({text for text in texts if text not in known})
        if missing:
            known.update(zip(missing, classify(missing), strict=True))
            part = cache.with_suffix(".part")
            part.write_text(json.dumps(known, ensure_ascii=False), encoding="utf-8")
            part.replace(cache)
        return [known[text] for text in texts]

    return reading


def story_names(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(story.get("story")) for story in data.get("stories") or []]


def run_stories(model: Path, saved_yaml: str, work: Path, log: Callable[[str], None]) -> dict:
    """`rasa test core` on the test stories and the saved conversations; which stories failed."""
    stories = work / "stories"
    stories.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for path in sorted(STORIES_DIR.glob("*.yml")):
        (stories / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        names += story_names(path)
    saved = story_names_from_text(saved_yaml)
    if saved:
        (stories / "zz_saved_in_console.yml").write_text(saved_yaml, encoding="utf-8")
        names += saved
    out = work / "results"
    command = [
        str(Path(sys.executable).parent / "rasa"),
        "test",
        "core",
        "--model",
        str(model),
        "--stories",
        str(stories),
        "--out",
        str(out),
        "--no-plot",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    log(result.stdout[-3000:] + result.stderr[-3000:])
    failed_file = out / "failed_test_stories.yml"
    if result.returncode != 0 or not out.exists():
        return {"count": len(names), "saved": len(saved), "failed": ["(rasa test core failed)"]}
    failed = []
    if failed_file.exists() and failed_file.read_text(encoding="utf-8").strip():
        failed = story_names(failed_file)
    return {"count": len(names), "saved": len(saved), "failed": failed}


def story_names_from_text(text: str) -> list[str]:
    if not text.strip():
        return []
    data = yaml.safe_load(text) or {}
    return [str(story.get("story")) for story in data.get("stories") or []]


def changed_readings(
    sets: dict[str, list[Example]], served: dict[str, list[str]], candidate: dict[str, list[str]]
) -> list[dict]:
    """Every text read as another intent by the candidate than by the served model."""
    changed = []
    for name, examples in sets.items():
        for example, before, after in zip(examples, served[name], candidate[name], strict=True):
            if before != after:
                changed.append(
                    {
                        "set": name,
                        "text": example.text,
                        "expected": example.intent,
                        "served": before,
                        "candidate": after,
                    }
                )
    return changed


def decide(report: dict[str, Any], margin: float) -> list[str]:
    """The reasons to refuse the candidate (empty: it passes)."""
    reasons = []
    served, candidate = report["holdout"]["served"], report["holdout"]["candidate"]
    if candidate < served - margin:
        reasons.append(
            f"留出集宏平均 F1 从 {served:.3f} 降到 {candidate:.3f}，降幅超过允许的 {margin:.3f}。"
        )
    stories = report["stories"]
    if stories["failed"]:
        reasons.append(
            f"{len(stories['failed'])} 个测试对话没有通过：" + "、".join(stories["failed"][:10])
        )
    not_learned = report["labels"]["not_learned"]
    if not_learned:
        first = "；".join(f"「{row['text']}」应为 {row['intent']}" for row in not_learned[:5])
        reasons.append(f"{len(not_learned)} 条已接受的标注没有学会：{first}")
    return reasons


def gate(
    candidate: Path,
    served: Path,
    labels: Sequence[tuple[str, str]],
    saved_stories: str,
    work: Path,
    margin: float,
    log: Callable[[str], None] = print,
    served_cache: Path | None = None,
    classifiers: tuple[Classifier, Classifier] | None = None,
    stories: Callable[[Path, str, Path, Callable[[str], None]], dict] = run_stories,
) -> dict[str, Any]:
    """The report of the candidate beside the served model, with `reasons` to refuse it."""
    sets = {
        "holdout": holdout(),
        "second_holdout": second_holdout(),
        "perturbed": perturbed(holdout()),
        "labels": [Example(text, intent, "labels") for text, intent in labels],
    }
    if classifiers is None:
        log("== loading the served model and the candidate")
        classifiers = (
            cached(rasa_classifier(served), served_cache),
            rasa_classifier(candidate),
        )
    read_served, read_candidate = classifiers
    predicted: dict[str, dict[str, list[str]]] = {"served": {}, "candidate": {}}
    for name, examples in sets.items():
        texts = [example.text for example in examples]
        log(f"== reading {len(texts)} texts of {name} with both models")
        predicted["served"][name] = read_served(texts) if texts else []
        predicted["candidate"][name] = read_candidate(texts) if texts else []
    report: dict[str, Any] = {}
    for name in ("holdout", "second_holdout", "perturbed"):
        truth = [example.intent for example in sets[name]]
        report[name] = {
            "count": len(truth),
            "served": round(macro_f1(truth, predicted["served"][name]), 4) if truth else 0.0,
            "candidate": round(macro_f1(truth, predicted["candidate"][name]), 4) if truth else 0.0,
        }
    report["per_intent"] = per_intent(
        [example.intent for example in sets["holdout"]],
        predicted["served"]["holdout"],
        predicted["candidate"]["holdout"],
    )
    report["labels"] = {
        "count": len(sets["labels"]),
        "not_learned": [
            {"text": example.text, "intent": example.intent, "predicted": reading}
            for example, reading in zip(
                sets["labels"], predicted["candidate"]["labels"], strict=True
            )
            if reading != example.intent
        ],
    }
    changed = changed_readings(sets, predicted["served"], predicted["candidate"])
    report["changed_count"] = len(changed)
    report["changed"] = changed[:MAX_LISTED]
    log("== the test stories and the saved conversations (rasa test core)")
    report["stories"] = stories(candidate, saved_stories, work, log)
    report["margin"] = margin
    report["reasons"] = decide(report, margin)
    return report
