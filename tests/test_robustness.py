"""evaluation/robustness.py: the perturbed hold-out is the same from run to run, and perturbed."""

from evaluation.holdout import holdout
from evaluation.robustness import KINDS, perturbed, scores


def test_the_perturbed_set_is_reproducible_and_changes_every_example_it_keeps() -> None:
    examples = holdout()[:60]
    first, second = perturbed(examples), perturbed(examples)
    assert [v.text for v in first] == [v.text for v in second]
    originals = {e.text for e in examples}
    assert all(v.text not in originals for v in first)
    assert {v.subset for v in first} == set(KINDS)
    assert len(first) >= 2 * len(examples)


def test_scores_per_kind() -> None:
    variants = perturbed(holdout()[:60])
    perfect = scores(variants, [v.intent for v in variants])
    assert perfect == {"all": 1.0, **{kind: 1.0 for kind in KINDS}}
