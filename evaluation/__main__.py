"""`make eval`: the hold-out report, 5-fold cross-validation and two baselines, side by side.

Writes results/ (git-ignored): report.md, Rasa's own hold-out report with the confusion matrix
(results/holdout/intent_confusion_matrix.png), the cross-validation report
(results/cross-validation/), and prints the summary table.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml
from sklearn.metrics import precision_recall_fscore_support

from evaluation import robustness
from evaluation import screenshot_set as screenshot_eval
from evaluation.holdout import (
    ROOT,
    Score,
    holdout,
    rasa_classifier,
    score,
    second_holdout,
    tfidf_classifier,
    training,
)

RESULTS = ROOT / "results"
MODEL = ROOT / "models" / "assistant.tar.gz"
DOCS_CONFIG = ROOT / "evaluation" / "config-docs-zh.yml"
RASA = str(Path(sys.executable).parent / "rasa")
# Components that turn a prediction into nlu_fallback: left out of cross-validation, whose
# report should show what the classifier itself confuses.
FALLBACK_COMPONENTS = {"FallbackClassifier", "understanding.unknown_words.UnknownWordsFallback"}


def run(*args: str) -> None:
    print("+ rasa", " ".join(args), flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    subprocess.run(
        [RASA, *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def cv_config() -> Path:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] not in FALLBACK_COMPONENTS]
    path = RESULTS / "config-cv.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def per_intent_table(truth: list[str], predicted: list[str]) -> list[str]:
    labels = sorted(set(truth))
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    rows = ["| intent | precision | recall | F1 | n |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {label} | {precision:.3f} | {recall:.3f} | {f1:.3f} | {support} |"
        for label, precision, recall, f1, support in zip(labels, p, r, f, n, strict=True)
    ]
    return rows


def summary(scores: dict[str, Score]) -> list[str]:
    subsets = sorted(next(iter(scores.values())).subsets)
    head = ["| pipeline | macro-F1 |", *[f" {s} |" for s in subsets], " out_of_scope recall |"]
    rows = ["".join(head), "| --- " * (len(subsets) + 3) + "|"]
    for name, s in scores.items():
        rows.append(
            f"| {name} | {s.overall:.3f} |"
            + "".join(f" {s.subsets[x]:.3f} |" for x in subsets)
            + f" {s.out_of_scope_recall:.3f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-cv", action="store_true", help="leave out cross-validation")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)

    examples, train = holdout(), training()
    texts = [e.text for e in examples]

    run(
        "test",
        "nlu",
        "--model",
        str(MODEL),
        "--nlu",
        "tests/nlu/holdout",
        "--out",
        str(RESULTS / "holdout"),
    )
    if not args.skip_cv:
        run(
            "test",
            "nlu",
            "--nlu",
            "data/nlu",
            "--cross-validation",
            "--folds",
            str(args.folds),
            "--config",
            str(cv_config()),
            "--out",
            str(RESULTS / "cross-validation"),
        )
    run(
        "train",
        "nlu",
        "--config",
        str(DOCS_CONFIG),
        "--nlu",
        "data/nlu",
        "--out",
        str(RESULTS / "baselines"),
        "--fixed-model-name",
        "docs-zh",
    )

    classifiers = {
        "this project": rasa_classifier(MODEL),
        "Rasa docs zh pipeline": rasa_classifier(RESULTS / "baselines" / "docs-zh.tar.gz"),
        "TF-IDF char 1-3 + LinearSVC": tfidf_classifier(train),
    }
    predictions = {name: classify(texts) for name, classify in classifiers.items()}
    scores = {name: score(examples, p) for name, p in predictions.items()}
    second = second_holdout()
    second_scores = {
        name: score(second, classify([e.text for e in second]))
        for name, classify in classifiers.items()
    }
    variants = robustness.perturbed(examples)
    robust = {
        name: robustness.scores(variants, classify([v.text for v in variants]))
        for name, classify in classifiers.items()
    }
    truth = [e.intent for e in examples]

    counts = {s: sum(e.subset == s for e in examples) for s in sorted({e.subset for e in examples})}
    report = [
        "# NLU evaluation",
        "",
        f"Hold-out: {len(examples)} examples, {len(set(truth))} intents "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())}); training: {len(train)} examples.",
        "Macro-F1 over the true intents; a prediction of nlu_fallback counts as a miss.",
        "",
        *summary(scores),
        "",
        "## The second hold-out",
        "",
        f"{len(second)} examples in kinds of phrasing that neither the training data nor the "
        "first hold-out has (tests/nlu/holdout2/, written before the changes it measures): "
        "pinyin typed without characters, contrast, long stories, fillers of speech, dialect "
        "words, longer answers to the assistant's own questions.",
        "",
        *summary(second_scores),
        "",
        "## Robustness",
        "",
        *robustness.table(robust, len(variants)),
        "",
        "Rasa's hold-out report and confusion matrix: `results/holdout/` "
        "(`intent_confusion_matrix.png`, `intent_report.json`, `intent_errors.json`).",
        "Cross-validation (config without fallback components): `results/cross-validation/`.",
        "",
        "## This project, per intent",
        "",
        *per_intent_table(truth, predictions["this project"]),
        *screenshot_eval.report_lines(classifiers),
        "",
    ]
    for name, s in second_scores.items():
        report += [f"## Second hold-out, misclassified: {name} ({len(s.misses)})", ""]
        report += [*[f"- {m}" for m in s.misses], ""]
    for name, s in scores.items():
        report += [
            f"## Misclassified: {name} ({len(s.misses)})",
            "",
            *[f"- {m}" for m in s.misses],
            "",
        ]
    (RESULTS / "report.md").write_text("\n".join(report), encoding="utf-8")
    print("\n".join(summary(scores)))
    print("second hold-out:")
    print("\n".join(summary(second_scores)))
    print("\n".join(robustness.table(robust, len(variants))))
    print("\n".join(line for line in report if line.startswith("| ") and "/ " in line))
    print(f"\nreport: {RESULTS / 'report.md'}")


if __name__ == "__main__":
    main()
